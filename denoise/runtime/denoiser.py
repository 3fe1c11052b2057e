"""The Python API: ``Denoiser(model=None, backend="auto").denoise(array, sigma)``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from denoise.errors import DenoiseError
from denoise.noise import estimate_sigma
from denoise.runtime.onnx_backend import OnnxRuntimeBackend
from denoise.weights import DEFAULT_MODEL


class Denoiser:
    """Denoise numpy images with an exported model (the bundled default when ``model`` is None)."""

    def __init__(self, model: str | Path | None = None, backend: str = "auto", threads: int = 0):
        self.model_path = Path(model) if model else DEFAULT_MODEL
        self.backend = OnnxRuntimeBackend(self.model_path, backend=backend, threads=threads)
        self.card = self.backend.card
        low, high = self.card.get("sigma_range", [0.0, 1.0])
        self.sigma_range = (float(low), float(high))

    @property
    def backend_name(self) -> str:
        return self.backend.name

    def check_sigma(self, sigma: float) -> float:
        low, high = self.sigma_range
        if not (low - 1e-9 <= sigma <= high + 1e-9):
            raise DenoiseError(
                f"sigma {sigma:.4g} is outside this model's range [{low:g}, {high:g}] (on the [0,1] scale; "
                f"25/255 is written 25/255 or 0.098)"
            )
        return sigma

    def resolve_sigma(self, sigma, rgb: np.ndarray) -> float:
        """A number, or "auto" to estimate the noise level of this image (clamped to the model's range)."""
        if isinstance(sigma, str) and sigma == "auto":
            low, high = self.sigma_range
            return float(min(max(estimate_sigma(rgb), low), high))
        return self.check_sigma(float(sigma))

    def denoise(self, image: np.ndarray, sigma: float | str) -> np.ndarray:
        """Denoise one HxWx3 (or HxW) image; uint8, uint16 or float in [0,1] in, same dtype out."""
        array = np.asarray(image)
        dtype = array.dtype
        if dtype == np.uint8:
            rgb = array.astype(np.float32) / 255.0
        elif dtype == np.uint16:
            rgb = array.astype(np.float32) / 65535.0
        elif np.issubdtype(dtype, np.floating):
            rgb = array.astype(np.float32)
        else:
            raise DenoiseError(f"unsupported pixel type {dtype}; give uint8, uint16 or float images")
        gray = rgb.ndim == 2
        if gray:
            rgb = np.repeat(rgb[..., None], 3, axis=2)
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise DenoiseError(f"expected an HxWx3 or HxW image, got shape {array.shape}")
        level = self.resolve_sigma(sigma, rgb)
        out = self.denoise_rgb(rgb, level)
        if gray:
            out = out.mean(axis=2)
        if dtype == np.uint8:
            return np.round(np.clip(out, 0, 1) * 255.0).astype(np.uint8)
        if dtype == np.uint16:
            return np.round(np.clip(out, 0, 1) * 65535.0).astype(np.uint16)
        return out.astype(dtype)

    def denoise_rgb(self, rgb: np.ndarray, sigma: float) -> np.ndarray:
        """float32 HxWx3 in [0,1] -> float32 HxWx3 in [0,1]."""
        return self.denoise_rgb_batch(rgb[None], sigma)[0]

    def denoise_rgb_batch(self, rgb: np.ndarray, sigma: float) -> np.ndarray:
        """float32 NxHxWx3 in [0,1], one sigma for all -> float32 NxHxWx3 in [0,1]."""
        batch = np.ascontiguousarray(rgb.transpose(0, 3, 1, 2), dtype=np.float32)
        out = self.backend.infer(batch, np.full(len(batch), sigma, dtype=np.float32))
        return out.transpose(0, 2, 3, 1)

    def denoise_folder(self, input_dir, output_dir, sigma, **options):
        """Denoise every image under ``input_dir`` into ``output_dir``; see ``runtime.batch.run_batch``."""
        from denoise.runtime.batch import run_batch

        return run_batch(self, Path(input_dir), Path(output_dir), sigma, **options)
