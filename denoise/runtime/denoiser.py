"""The Python API: ``Denoiser(model=None, backend="auto").denoise(array, sigma)``."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from denoise.errors import DenoiseError
from denoise.metrics import from_float, to_float
from denoise.noise import estimate_sigma
from denoise.runtime.ensemble import self_ensemble
from denoise.runtime.onnx_backend import OnnxRuntimeBackend
from denoise.runtime.tiling import (DEFAULT_MAX_BATCH, DEFAULT_TILE, TileBatcher, engine_profile, overlap_for,
                                    run_tiled, tile_input_pixels)
from denoise.weights import DEFAULT_MODEL

log = logging.getLogger(__name__)

BACKENDS = ("auto", "tensorrt", "cuda", "cpu")


def fp16_sibling(model_path: Path) -> Path:
    """``model.onnx`` -> ``model.fp16.onnx``: where export puts the FP16 graph TensorRT builds from."""
    return model_path.with_name(model_path.stem + ".fp16.onnx")


class Denoiser:
    """Denoise numpy images with an exported model (the bundled default when ``model`` is None).

    ``backend``: "tensorrt" (FP16 engine, NVIDIA GPU), "cuda" (ONNX Runtime CUDA), "cpu" (ONNX Runtime,
    FP32), or "auto": the fastest that really works here, logging why each faster one was skipped.
    Images are processed in tiles of ``tile`` pixels (with enough overlap that the result equals a
    whole-image run), so memory stays bounded whatever the image size. ``ensemble``: average the model's
    results on the 8 flips and rotations of each tile (better results, 8x the work; see runtime.ensemble).
    """

    def __init__(self, model: str | Path | None = None, backend: str = "auto", threads: int = 0,
                 tile: int | tuple[int, int] = DEFAULT_TILE, max_batch: int = DEFAULT_MAX_BATCH, ensemble: bool = False):
        if backend not in BACKENDS:
            raise DenoiseError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        self.model_path = Path(model) if model else DEFAULT_MODEL
        self.tile = (tile, tile) if isinstance(tile, int) else tuple(tile)
        self.max_batch = max_batch
        # One ONNX Runtime session, which also reads the model's card: the ORT backend this choice falls
        # back to (auto: CUDA when a session really gets it, else CPU). For "tensorrt" it only reads the
        # card, so the cheapest one (CPU) is used.
        reference = OnnxRuntimeBackend(self.model_path, backend={"tensorrt": "cpu"}.get(backend, backend),
                                       threads=threads)
        self.card = reference.card
        self.align = int(self.card.get("config", {}).get("shuffle", 1))
        if "receptive_radius" in self.card:
            self.overlap = overlap_for(int(self.card["receptive_radius"]), self.align)
        else:  # a model without our card: its receptive field is unknown, so never tile it
            log.info("model has no receptive_radius in its card: images run whole, without tiling")
            self.tile, self.overlap = (1 << 30, 1 << 30), 0
        if any(side % self.align for side in self.tile):
            raise DenoiseError(f"tile {self.tile[0]}x{self.tile[1]} is not a multiple of {self.align}, which this model "
                               f"needs (its pixel shuffle); use --tile {-(-self.tile[0] // self.align) * self.align}")
        self.backend = self._pick_backend(backend, reference)
        self.ensemble = ensemble
        self.infer = self_ensemble(self.backend.infer) if ensemble else self.backend.infer
        low, high = self.card.get("sigma_range", [0.0, 1.0])
        self.sigma_range = (float(low), float(high))

    def _pick_backend(self, backend: str, reference: OnnxRuntimeBackend):
        if backend in ("auto", "tensorrt"):
            try:
                return self._tensorrt_backend()
            except DenoiseError as exc:
                if backend == "tensorrt":
                    raise
                log.info("TensorRT skipped: %s", exc)
        log.info("using %s", reference.name)
        return reference

    def _tensorrt_backend(self):
        from denoise.runtime.tensorrt_backend import TensorRTBackend  # imports tensorrt lazily

        fp16 = fp16_sibling(self.model_path)
        if not fp16.is_file():
            raise DenoiseError(f"no FP16 model {fp16} (write one with: denoise export --fp16)")
        profile = engine_profile(self.tile, self.overlap, self.max_batch)
        return TensorRTBackend(fp16, profile, precision="fp16")

    @property
    def backend_name(self) -> str:
        return f"{self.backend.name} x8 ensemble" if self.ensemble else self.backend.name

    def check_sigma(self, sigma: float) -> float:
        low, high = self.sigma_range
        if not (low - 1e-9 <= sigma <= high + 1e-9):
            raise DenoiseError(
                f"sigma {sigma:.4g} is outside this model's range [{low:g}, {high:g}] (on the [0,1] scale; "
                f"25/255 is written 25/255 or 0.098)"
            )
        return sigma

    def resolve_sigma(self, sigma, pixels: np.ndarray) -> float:
        """A number, or "auto" to estimate the noise level of this image (HxWx3, uint8, uint16 or float;
        clamped to the model's range)."""
        if isinstance(sigma, str) and sigma == "auto":
            low, high = self.sigma_range
            return float(min(max(estimate_sigma(pixels), low), high))
        return self.check_sigma(float(sigma))

    def denoise(self, image: np.ndarray, sigma: float | str) -> np.ndarray:
        """Denoise one HxWx3 (or HxW) image; uint8, uint16 or float in [0,1] in, same dtype out."""
        array = np.asarray(image)
        if not (array.dtype in (np.uint8, np.uint16) or np.issubdtype(array.dtype, np.floating)):
            raise DenoiseError(f"unsupported pixel type {array.dtype}; give uint8, uint16 or float images")
        gray = array.ndim == 2
        pixels = np.repeat(array[..., None], 3, axis=2) if gray else array
        if pixels.ndim != 3 or pixels.shape[2] != 3:
            raise DenoiseError(f"expected an HxWx3 or HxW image, got shape {array.shape}")
        if np.issubdtype(array.dtype, np.floating):
            pixels = pixels.astype(np.float32, copy=False)
        out = self.denoise_pixels(pixels, self.resolve_sigma(sigma, pixels))
        if gray:
            out = from_float(to_float(out).mean(axis=2), out.dtype)
        return out.astype(array.dtype, copy=False)

    def denoise_pixels(self, pixels: np.ndarray, sigma: float) -> np.ndarray:
        """HxWx3 uint8, uint16 or float32 in [0,1] -> the same type, tile by tile (memory: the image, its
        result and one batch of tiles)."""
        return run_tiled(self.infer, pixels, sigma, self.tile, self.overlap, self.align, self.max_batch,
                         self.max_batch_pixels)

    def denoise_rgb(self, rgb: np.ndarray, sigma: float) -> np.ndarray:
        """float32 HxWx3 in [0,1] -> float32 HxWx3 in [0,1]."""
        return self.denoise_pixels(np.asarray(rgb, dtype=np.float32), sigma)

    def batcher(self) -> TileBatcher:
        """A TileBatcher on this backend and tiling: batches tiles of many images (``denoise batch`` uses it)."""
        return TileBatcher(self.infer, self.tile, self.overlap, self.align, self.max_batch, self.max_batch_pixels)

    @property
    def max_batch_pixels(self) -> int | None:
        """On the CPU a batch holds at most one full tile's pixels: batching large tiles there is no
        faster but costs ~300 MB of ONNX Runtime memory per 596x596 tile (benchmarks/large_image.py),
        while small images still batch (1.19x on CIFAR-size files, benchmarks/small_images.py)."""
        if self.backend.name != "onnxruntime-cpu":
            return None
        return tile_input_pixels(self.tile, self.overlap)

    def denoise_rgb_batch(self, rgb: np.ndarray, sigma: float) -> np.ndarray:
        """float32 NxHxWx3 in [0,1], one sigma for all -> float32 NxHxWx3 in [0,1]; whole images, no
        tiling (for many small images, such as CIFAR's, at once)."""
        batch = np.ascontiguousarray(rgb.transpose(0, 3, 1, 2), dtype=np.float32)
        out = self.infer(batch, np.full(len(batch), sigma, dtype=np.float32))
        return out.transpose(0, 2, 3, 1)

    def denoise_folder(self, input_dir, output_dir, sigma, **options):
        """Denoise every image under ``input_dir`` into ``output_dir``; see ``runtime.batch.run_batch``."""
        from denoise.runtime.batch import run_batch

        return run_batch(self, Path(input_dir), Path(output_dir), sigma, **options)
