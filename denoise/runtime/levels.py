"""Noise levels as the runtime handles them: a number or a per-pixel map, scaled by ``strength``.

The ONNX contract (README, *Models*): a denoiser's ``sigma`` input is a float32 [N,1,H,W] map on the [0,1]
scale; models exported before maps existed take [N], one level per image. The runtime always works with
maps and converts at the backend's boundary (``sigma_feed``), so there is one place that knows both.
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
        scaled = np.clip(level * np.float32(strength), *limits)
        return {"mean": float(scaled.mean(dtype=np.float64)), "min": float(scaled.min()), "max": float(scaled.max()),
                "clamped": bool(float(level.max()) * strength > limits[1])}
    value = float(level) * strength
    return {"mean": value, "min": value, "max": value, "clamped": False}
