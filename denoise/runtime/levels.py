"""Noise levels as the runtime handles them: a number or a per-pixel map, scaled by ``strength``.

The ONNX contract (README, *Models*): a denoiser's ``sigma`` input is a float32 [N,1,H,W] map on the [0,1]
scale; models exported before maps existed take [N], one level per image. The runtime always works with
maps and converts at the backend's boundary (``sigma_feed``), so there is one place that knows both.

Also here: what the runtime does to the noise estimator's map before the denoiser sees it -- the estimator's
calibration from its card (``calibration_from_reads`` makes it, ``calibrate_levels`` applies it) and, for white
noise, the raise where a file clipped the noise (``clipped_noise_factor``).
"""

from __future__ import annotations

import numpy as np

from denoise.errors import DenoiseError


def sigma_feed(levels: np.ndarray, form: str) -> np.ndarray:
    """float32 [N,1,H,W] maps -> what a model whose ``sigma`` input has this form (runtime.contract) takes: the
    maps themselves ("map"), or one number per image ("number", older models), which only a constant map can give."""
    levels = np.ascontiguousarray(levels, dtype=np.float32)
    if form == "map":
        return levels
    flat = levels.reshape(len(levels), -1)
    if flat.shape[1] and not np.all(flat == flat[:, :1]):
        raise DenoiseError("this model takes one noise level per image, not a map: give a number as sigma, "
                           "or use a model exported with a sigma map input")
    return flat[:, 0].copy() if flat.shape[1] else np.zeros(len(levels), np.float32)


def check_strength(strength) -> float:
    """``strength`` scales the noise level the model is given (1: as given or estimated)."""
    try:
        value = float(strength)
    except (TypeError, ValueError):
        raise DenoiseError(f"strength {strength!r} is not a number: give a factor above 0, such as 0.8 or 1.2") from None
    if not np.isfinite(value) or value <= 0:
        raise DenoiseError(f"strength {strength!r} must be a number above 0 (1 = the level as given or estimated; "
                           "0.8 a little lighter, 1.2 a little stronger)")
    return value


def check_level_map(level: np.ndarray, height: int, width: int) -> np.ndarray:
    """A user's noise map for an HxW image: HxW (or HxWx1), finite, >= 0; returned as float32 HxW."""
    level = np.asarray(level)
    if level.ndim == 3 and level.shape[2] == 1:
        level = level[..., 0]
    if level.shape != (height, width):
        raise DenoiseError(f"the sigma map has shape {level.shape}, but the image is {height}x{width}: "
                           f"give an {height}x{width} array (or one number)")
    if not np.issubdtype(level.dtype, np.number):
        raise DenoiseError(f"the sigma map has type {level.dtype}: give float noise levels on the [0,1] scale")
    level = level.astype(np.float32)
    if not np.all(np.isfinite(level)) or level.min() < 0:
        raise DenoiseError("the sigma map must hold finite levels >= 0 (on the [0,1] scale)")
    return level


def level_summary(level: float | np.ndarray, strength: float, limits: tuple[float, float] = (0.0, np.inf)) -> dict:
    """Mean, smallest and largest noise level the model is given over an image: a number or an HxW map, times
    ``strength``, within the model's ``limits`` (what the manifest records; see TileBatcher's ``limits``)."""
    if isinstance(level, np.ndarray):
        low, high = float(level.min()) * strength, float(level.max()) * strength
        if limits[0] <= low and high <= limits[1]:  # nothing to clamp: no scaled copy of a map of many megapixels
            return {"mean": float(level.mean(dtype=np.float64)) * strength, "min": low, "max": high, "clamped": False}
        scaled = np.clip(level * np.float32(strength), *limits)
        return {"mean": float(scaled.mean(dtype=np.float64)), "min": float(scaled.min()), "max": float(scaled.max()),
                "clamped": high > limits[1]}
    value = float(level) * strength
    return {"mean": value, "min": value, "max": value, "clamped": False}


def calibration_from_reads(sigmas, reads) -> dict:
    """The estimator's calibration from its mean read of white noise at known levels (both on the [0,1] scale):
    the points (read, level) that ``calibrate_levels`` maps a map through.

    Up to the highest level the estimator does not over-read, a read stays as it is (the line read = level):
    there its under-reads depend on the photo (CBSD68's held-out photos read white noise of 15/255 a little
    high, the training photos low), and raising them would cost on one set what it gained on the other. From the
    first level above which every level is over-read, each level's mean read maps back to that level, and
    beyond the last one the last segment's slope goes on to a read of 1. The over-read is the estimator's own
    bias (BENCHMARKS.md, "`--sigma auto` on white noise: calibration and clipped noise")."""
    sigmas, reads = np.asarray(sigmas, np.float64), np.asarray(reads, np.float64)
    order = np.argsort(sigmas)
    sigmas, reads = sigmas[order], reads[order]
    first_over = len(sigmas)
    while first_over > 0 and reads[first_over - 1] > sigmas[first_over - 1]:
        first_over -= 1
    if first_over == len(sigmas):
        return {"read": [0.0, 1.0], "level": [0.0, 1.0]}
    knee = float(reads[first_over - 1]) if first_over else 0.0
    read = [0.0] + ([knee] if knee > 0 else []) + reads[first_over:].tolist()
    level = [0.0] + ([knee] if knee > 0 else []) + sigmas[first_over:].tolist()
    if np.any(np.diff(read) <= 0):
        raise ValueError(f"the estimator's mean reads do not grow with the level ({np.round(reads * 255, 2)} x255 "
                         f"for {np.round(sigmas * 255, 2)}): no calibration can be read from them")
    if read[-1] < 1.0:
        slope = (level[-1] - level[-2]) / (read[-1] - read[-2])
        read.append(1.0)
        level.append(level[-1] + (1.0 - read[-2]) * slope)
    return {"read": [round(v, 6) for v in read], "level": [round(v, 6) for v in level]}


def check_calibration(calibration, source) -> tuple[np.ndarray, np.ndarray] | None:
    """A card's ``calibration`` as (read, level) arrays for np.interp; None when the card has none."""
    if calibration is None:
        return None
    try:
        read = np.asarray(calibration["read"], np.float32)
        level = np.asarray(calibration["level"], np.float32)
        valid = (read.ndim == 1 and read.shape == level.shape and len(read) >= 2 and np.all(np.isfinite(read))
                 and np.all(np.isfinite(level)) and np.all(np.diff(read) > 0) and np.all(np.diff(level) >= 0)
                 and level.min() >= 0)
    except (TypeError, KeyError, ValueError):
        valid = False
    if not valid:
        raise DenoiseError(f"the calibration in {source}'s card is not two growing lists 'read' and 'level' of one "
                           "length: run scripts/calibrate_estimator.py on it again, or remove the calibration")
    return read, level


def calibrate_levels(level: np.ndarray, calibration: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    """An estimated map through the estimator's calibration (``check_calibration``), pixel by pixel."""
    if calibration is None:
        return level
    read, mapped = calibration
    on_line = read == mapped
    leading = len(read) if on_line.all() else int(np.argmin(on_line))  # the table's first points on read = level
    unchanged_up_to = read[leading - 1] if leading else -np.inf  # np.interp leaves the pixels up to there as they are
    out = np.array(level, dtype=np.float32)
    moved = out > unchanged_up_to
    if moved.any():
        out[moved] = np.interp(out[moved], read, mapped)
    return out


def _surviving_level(shares: np.ndarray) -> np.ndarray:
    """std(min(X, z)) for X ~ N(0, 1), z the point with P(X > z) = share (0 <= share <= 0.5): how much of a
    level is left where that share of the noisy values was clipped. Closed form of the censored normal:
    E[min(X, z)] = z Q(z) - phi(z) and E[min(X, z)^2] = Phi(z) - z phi(z) + z^2 Q(z), Q = 1 - Phi."""
    from math import erfc, pi, sqrt

    z = np.linspace(0.0, 8.0, 4001)
    tail = np.array([0.5 * erfc(v / sqrt(2)) for v in z])  # Q(z), falling from 0.5
    phi = np.exp(-z * z / 2) / sqrt(2 * pi)
    first = z * tail - phi
    second = (1 - tail) - z * phi + z * z * tail
    std = np.sqrt(np.maximum(second - first * first, 0.0))
    return np.interp(shares, tail[::-1], std[::-1])


CLIPPED_SHARES = np.linspace(0.0, 0.5, 51)
SHARE_STEP = 4
SURVIVING_LEVEL = _surviving_level(CLIPPED_SHARES)


def clipped_noise_factor(pixels: np.ndarray, radius: int) -> np.ndarray:
    """Per pixel, how much to raise the estimator's level where the image's file clipped the noise (values at
    exactly 0 or at full scale): there the estimator reads the noise that is left, which is less than the level
    the denoiser was trained to be given (the level before clipping; BENCHMARKS.md, "`--sigma auto` on white
    noise: calibration and clipped noise"). The share of clipped values within ``radius`` (the estimator's
    receptive radius), averaged over the colour channels, gives how much of a Gaussian level survives clipping
    (a censored normal's standard deviation), and the factor is its inverse. Capped at a share of one half, the
    share where the true value sits on the clipping point: beyond it the region is saturated, and a flat region
    comes out flat at any level. 1 where nothing is clipped, so noise that kept its whole range (float images)
    is left alone."""
    from denoise.camera_noise import box_mean

    height, width = pixels.shape[:2]
    if np.issubdtype(pixels.dtype, np.integer):  # one table lookup per value: a third of two comparisons' time
        table = np.zeros(int(np.iinfo(pixels.dtype).max) + 1, np.uint8)
        table[[0, -1]] = 1
        clipped = table[pixels]
    else:
        clipped = ((pixels == 0) | (pixels == 1)).view(np.uint8)
    if not clipped.any():
        return np.ones((height, width), np.float32)
    # On blocks of SHARE_STEP x SHARE_STEP pixels: over a window ten times that size the share moves slowly,
    # and on a 12 MP photo the full-resolution arithmetic costs several times what the blocks do.
    step = SHARE_STEP
    if height % step or width % step:
        clipped = np.pad(clipped, ((0, -height % step), (0, -width % step), (0, 0)), mode="edge")
    rows, cols = clipped.shape[0] // step, clipped.shape[1] // step
    blocks = clipped.reshape(rows, step, cols, step * 3).sum(axis=(1, 3), dtype=np.int32)  # clipped values per block
    share = box_mean(blocks / (3 * step * step), 2 * max(1, round(radius / step)) + 1)  # float64 sums
    factor = (1.0 / np.interp(np.minimum(share, 0.5), CLIPPED_SHARES, SURVIVING_LEVEL)).astype(np.float32)
    return np.repeat(np.repeat(factor, step, axis=0), step, axis=1)[:height, :width]

