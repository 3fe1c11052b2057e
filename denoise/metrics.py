"""Image quality metrics, as the literature's tables compute them (uint8 RGB, all channels, no border crop)."""

from __future__ import annotations

import numpy as np


def pixel_scale(dtype) -> float:
    """The value of full intensity for a pixel type: 255 (uint8), 65535 (uint16), 1.0 (floats)."""
    return {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(np.dtype(dtype), 1.0)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float in [0,1] -> uint8, rounded (how a result is stored and measured)."""
    return from_float(image, np.uint8)


def to_float(pixels: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """uint8 / uint16 pixels -> float32 in [0,1] (floats are taken as already on that scale): the integers in
    float32, divided by the scale in float32. Written into ``out`` (float32, the pixels' shape) when given, in
    one pass."""
    scale = pixel_scale(pixels.dtype)
    if out is None:
        out = np.empty(pixels.shape, np.float32)
    if scale == 1.0:
        out[...] = pixels
    else:
        np.divide(pixels, np.float32(scale), out=out, casting="unsafe")
    return out


def from_float(values: np.ndarray, dtype) -> np.ndarray:
    """Float in [0,1] -> ``dtype``: uint8 and uint16 clipped, scaled and rounded half to even in float32,
    floats kept as float32."""
    scale = pixel_scale(dtype)
    if scale == 1.0:
        return np.asarray(values, dtype=np.float32)
    scaled = np.clip(np.asarray(values, dtype=np.float32), 0.0, 1.0)
    scaled *= np.float32(scale)
    return np.rint(scaled, out=scaled).astype(dtype)


def psnr_uint8(reference: np.ndarray, test: np.ndarray) -> float:
    """PSNR in dB of two uint8 images over all channels: 20*log10(255/RMSE), no border crop.

    Identical images give ``inf``.
    """
    ref = np.asarray(reference, dtype=np.float64)
    out = np.asarray(test, dtype=np.float64)
    if ref.shape != out.shape:
        raise ValueError(f"shape mismatch: {ref.shape} vs {out.shape}")
    mse = np.mean((ref - out) ** 2)
    if mse == 0:
        return float("inf")
    return float(20.0 * np.log10(255.0 / np.sqrt(mse)))


def _gaussian_filter(image: np.ndarray, sigma: float = 1.5, radius: int = 5) -> np.ndarray:
    """Separable Gaussian blur over the first two axes, 'valid' region only (as skimage's SSIM crops)."""
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    size = 2 * radius + 1
    h, w = image.shape[:2]
    rows = sum(taps[k] * image[k:h - size + 1 + k] for k in range(size))
    return sum(taps[k] * rows[:, k:w - size + 1 + k] for k in range(size))


def ssim_uint8(reference: np.ndarray, test: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004: Gaussian window sigma 1.5, K1 0.01, K2 0.03, data range 255), averaged
    over channels -- the settings of skimage's
    ``structural_similarity(..., gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``
    except that, like the original MATLAB code, only the window-valid region is averaged."""
    x = np.asarray(reference, dtype=np.float64)
    y = np.asarray(test, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"shape mismatch: {x.shape} vs {y.shape}")
    if x.ndim == 2:
        x, y = x[..., None], y[..., None]
    if min(x.shape[:2]) < 11:
        raise ValueError("SSIM needs images of at least 11x11 pixels")
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_x, mu_y = _gaussian_filter(x), _gaussian_filter(y)
    var_x = _gaussian_filter(x * x) - mu_x ** 2
    var_y = _gaussian_filter(y * y) - mu_y ** 2
    cov = _gaussian_filter(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return float(ssim_map.mean())
