"""A camera RAW's noise level, read from its mosaic before development, for `--sigma auto` on RAW files.

Why not the estimator's map of the development: LibRaw's AHD demosaicing correlates the noise, and the estimator,
trained on other noise, reads a development's noise at high levels as two thirds of what it is and at base ISO
reads the photo's fine texture as noise (BENCHMARKS.md, "RAW on whole photos"). In the mosaic the noise is still
what the sensor made: independent from pixel to pixel, the same function of the signal on every colour site, and
Poisson-Gaussian -- variance ``shot * x + read`` at a normalized raw value x (Foi et al., "Practical
Poissonian-Gaussian noise modeling and fitting for single-image raw-data", IEEE TIP 2008).

``fit_mosaic_noise`` fits that line: each colour site's plane is cut into blocks; a block's noise variance is read
by Immerkaer's 3x3 operator (zero on planes and gradients of the signal); in each brightness bin the quietest blocks
stand for noise alone, since texture only adds to a block's reading -- the bin's low quantile, divided by where
that quantile falls for pure noise. ``developed_noise_map`` carries the fit through the development LibRaw made
(white balance, colour matrix, sRGB tone curve) to the noise of each developed pixel (``raw_noise_map``), which the
RAW model, trained on such developments, takes as it is, and ``needed_level`` turns into the level the general model
needs (``NEEDED_LEVEL``; runtime.Denoiser.raw_level chooses).
"""

from __future__ import annotations

import functools

import numpy as np

from denoise.linear_dng import multipliers_of, srgb_to_linear, to_camera_rgb
from denoise.noise import immerkaer_residual

BLOCK = 8  # pixels of one colour site's plane per block side
BINS = 12  # brightness bins of equal block counts
MIN_BLOCKS_PER_BIN = 8  # fewer blocks in all than BINS times this: too small a RAW to fit, the estimator is used
QUANTILE = 0.05  # the share of a bin's blocks (its quietest) that stands for noise alone
CLIPPED_ABOVE = 0.9  # normalized raw values above this may be clipped at the white level: left out of the fit
MAP_STEP = 4  # the developed map is computed on blocks of MAP_STEP x MAP_STEP pixels (noise varies slowly)


def block_readings(plane: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean value, noise variance read by the operator) of each BLOCK x BLOCK block of one colour site's plane."""
    residual = immerkaer_residual(plane) / 6.0  # unit gain on white noise
    inner = plane[1:-1, 1:-1]
    rows, cols = residual.shape[0] // BLOCK, residual.shape[1] // BLOCK

    def per_block(values):
        return values[:rows * BLOCK, :cols * BLOCK].reshape(rows, BLOCK, cols, BLOCK).mean(axis=(1, 3)).ravel()

    return per_block(inner), per_block(residual * residual)


@functools.cache
def quiet_share_of_noise() -> float:
    """Where QUANTILE of pure white noise's block readings falls, as a share of its variance (a fixed simulation:
    the same number on every run)."""
    noise = np.random.default_rng(0).standard_normal((BLOCK + 2, 4000 * (BLOCK + 2)))
    readings = np.concatenate([block_readings(noise[:, i:i + BLOCK + 2])[1] for i in range(0, noise.shape[1], BLOCK + 2)])
    return float(np.quantile(readings, QUANTILE))


def fit_mosaic_noise(mosaic: np.ndarray, black: np.ndarray, white: float) -> tuple[float, float] | None:
    """(shot, read) of the Poisson-Gaussian noise of a 2x2-pattern mosaic (a Bayer RAW), on the scale where the
    black level is 0 and the white level 1; ``black`` is 2x2, the black level of each site of the pattern. None
    when the RAW is too small to fit."""
    means, readings = [], []
    for dy in range(2):
        for dx in range(2):
            plane = (mosaic[dy::2, dx::2].astype(np.float64) - black[dy, dx]) / (white - black[dy, dx])
            mean, reading = block_readings(plane)
            means.append(mean)
            readings.append(reading)
    means, readings = np.concatenate(means), np.concatenate(readings)
    kept = means < CLIPPED_ABOVE
    means, readings = means[kept], readings[kept]
    if len(means) < BINS * MIN_BLOCKS_PER_BIN:
        return None
    order = np.argsort(means)
    levels, variances = [], []
    for group in np.array_split(order, BINS):
        quiet = np.quantile(readings[group], QUANTILE)
        levels.append(np.mean(means[group][readings[group] <= quiet]))
        variances.append(quiet / quiet_share_of_noise())
    return _fit_line(np.array(levels), np.array(variances))


def _fit_line(x: np.ndarray, variance: np.ndarray) -> tuple[float, float]:
    """variance = shot * x + read, least squares weighted by each reading's relative error (weight 1/variance^2),
    with shot and read held at 0 or above."""
    weight = 1.0 / np.maximum(variance, 1e-12) ** 2
    design = np.stack([x, np.ones_like(x)], axis=1) * np.sqrt(weight)[:, None]
    shot, read = np.linalg.lstsq(design, variance * np.sqrt(weight), rcond=None)[0]
    if read < 0:
        shot, read = np.sum(weight * x * variance) / np.sum(weight * x * x), 0.0
    if shot < 0:
        shot, read = 0.0, np.sum(weight * variance) / np.sum(weight)
    return float(shot), float(read)


def srgb_slope(linear: np.ndarray) -> np.ndarray:
    """d(sRGB)/d(linear): how much the tone curve magnifies noise at each linear value."""
    return np.where(linear <= 0.0031308, 12.92, 1.055 / 2.4 * np.maximum(linear, 0.0031308) ** (1 / 2.4 - 1))


def developed_noise_map(pixels: np.ndarray, noise: tuple[float, float], white_balance, rgb_cam: np.ndarray) -> np.ndarray:
    """float32 HxW: the noise (standard deviation, [0,1] scale) that the mosaic's fitted ``noise`` gives each pixel
    of its sRGB development ``pixels`` (16-bit), carried through the development as LibRaw made it: raw values
    times the white balance (normalized to its smallest), then ``rgb_cam``, then the sRGB tone curve. As if each
    colour were measured at each pixel: demosaicing's interpolation lowers it, which NEEDED_LEVEL allows for."""
    height, width = pixels.shape[:2]
    step = MAP_STEP
    padded = np.pad(pixels, ((0, -height % step), (0, -width % step), (0, 0)), mode="edge")
    rows, cols = padded.shape[0] // step, padded.shape[1] // step
    developed = padded.reshape(rows, step, cols, step, 3).mean(axis=(1, 3), dtype=np.float64)
    developed /= np.iinfo(pixels.dtype).max if np.issubdtype(pixels.dtype, np.integer) else 1.0
    linear = srgb_to_linear(np.clip(developed, 0.0, 1.0))
    raw = np.maximum(to_camera_rgb(linear, white_balance, rgb_cam), 0.0)  # each pixel's raw value, per colour
    shot, read = noise
    raw_variance = shot * raw + read
    linear_variance = raw_variance @ ((rgb_cam * multipliers_of(white_balance)) ** 2).T
    variance = (srgb_slope(linear) ** 2 * linear_variance).mean(axis=-1)
    std = np.sqrt(variance).astype(np.float32)
    return np.repeat(np.repeat(std, step, axis=0), step, axis=1)[:height, :width]


# The level the denoiser needs (second row) at a developed noise of the first row (both on the [0,1] scale),
# between the points linearly and beyond the last one in proportion: fitted on training photos by
# benchmarks/raw_levels.py (BENCHMARKS.md, "RAW: the level read from the mosaic").
NEEDED_LEVEL = np.array([[0.0, 0.00779, 0.01325, 0.02121, 0.02882, 0.03898, 0.05559, 0.08070],
                         [0.0, 0.00390, 0.00994, 0.02121, 0.03603, 0.05847, 0.09729, 0.14123]], np.float32)


def raw_noise_map(pixels: np.ndarray, info) -> np.ndarray | None:
    """float32 HxW: ``developed_noise_map`` of a RAW's development ``pixels`` whose ``info`` (raw_files.RawInfo)
    holds its mosaic's noise; None when it holds none (the estimator reads the level then). The RAW model takes
    this map as its level: it was trained with the true local noise of AHD-developed pairs as theirs."""
    if info is None or info.noise is None:
        return None
    return developed_noise_map(pixels, info.noise, info.white_balance, info.rgb_cam)


def needed_level(developed: np.ndarray) -> np.ndarray:
    reads, levels = NEEDED_LEVEL
    slope = levels[-1] / reads[-1]
    return np.where(developed <= reads[-1], np.interp(developed, reads, levels), developed * slope).astype(np.float32)
