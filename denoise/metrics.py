"""Image quality metrics, as the literature's tables compute them."""

from __future__ import annotations

import numpy as np


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float in [0,1] -> uint8, rounded (how a result is stored and measured)."""
    return np.round(np.clip(np.asarray(image, dtype=np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)


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
