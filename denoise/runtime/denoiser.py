"""The Python API: ``Denoiser(model=None, backend="auto").denoise(array, sigma="auto", strength=1.0)``."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np

from denoise.errors import DenoiseError
from denoise.metrics import from_float, to_float
from denoise.noise import estimate_sigma, parse_sigma
from denoise.runtime.ensemble import self_ensemble
from denoise.runtime.levels import (calibrate_levels, check_calibration, check_level_map, check_strength,
                                    clipped_noise_factor, level_summary)
from denoise.runtime.backends import BACKENDS, BackendRequest, open_backend, open_beside
from denoise.runtime.contract import SIGMA_INPUTS, Backend
from denoise.runtime.onnx_backend import OnnxRuntimeBackend
from denoise.runtime.real_noise import real_noise_factor
from denoise.runtime.tiling import (DEFAULT_MAX_BATCH, DEFAULT_TILE, Infer, TileBatcher, estimate_map,
                                    host_threads, overlap_for, run_tiled, run_tiled_many, tile_input_pixels)
from denoise.model_files import read_card
from denoise.raw_noise import needed_level, raw_noise_map
from denoise.weights import DEFAULT_ESTIMATOR, DEFAULT_MODEL, DEFAULT_RAW_MODEL

log = logging.getLogger(__name__)


def describe_model(model_path: Path) -> tuple[dict, str]:
    """(card, the form of its sigma input: runtime.contract) of an exported model, from the JSON card export
    writes beside it; a model without one, or with an older card that does not say its sigma input, is read
    through one ONNX Runtime session on the CPU (its embedded card and its inputs)."""
    card = read_card(model_path)
    if card.get("sigma_input") in SIGMA_INPUTS:
        return card, card["sigma_input"]
    with OnnxRuntimeBackend(model_path, backend="cpu", threads=1) as session:
        return card or session.card, session.sigma_input


class Denoiser:
    """Denoise numpy images with an exported model (the bundled default when ``model`` is None).

    ``backend``: "tensorrt" (FP16 engine, NVIDIA GPU), "cuda" (ONNX Runtime CUDA), "torch" (PyTorch on an
    NVIDIA GPU, from the model's checkpoint), "cpu" (ONNX Runtime, FP32), or "auto": the first of those that
    really works here, logging why each faster one was skipped (runtime.backends). Images are processed in
    tiles of ``tile`` pixels (with enough overlap that the result equals a whole-image run), so memory stays
    bounded whatever the image size. ``ensemble``: average the model's results on the 8 flips and rotations of
    each tile (better results, 8x the work; see runtime.ensemble). ``precision`` (the CPU backend's): "auto"
    runs the model's INT8 sibling where this CPU has fast INT8 instructions, else FP32; "fp32"; "int8"
    (runtime.precision). ``backend_name`` says which ran ("onnxruntime-cpu-int8").

    ``sigma="auto"`` runs the noise estimator ``estimator`` (the bundled one when None) over the image before
    the denoiser: a per-pixel noise map, for models whose sigma input is a map. Models that take one level
    per image get Immerkaer's white-noise estimate instead.

    ``raw_model``: the model a camera RAW runs on with "auto" when its mosaic's noise was fitted (``denoise_raw``;
    raw_noise), fine-tuned on AHD-developed RAWs, whose noise the general model handles less well. None: the
    bundled one when ``model`` is None, else none (the RAW then runs on ``model``, at raw_noise's NEEDED_LEVEL).
    Opened on the first RAW, beside the denoiser (runtime.backends.open_beside: on the CPU in the denoiser's
    ``precision``, where it has an INT8 sibling).

    Holds GPU memory and sessions until ``close()``; ``with Denoiser(...) as d:`` closes it.
    """

    def __init__(self, model: str | Path | None = None, backend: str = "auto", threads: int = 0,
                 tile: int | tuple[int, int] = DEFAULT_TILE, max_batch: int = DEFAULT_MAX_BATCH, ensemble: bool = False,
                 estimator: str | Path | None = None, checkpoint: str | Path | None = None, precision: str = "auto",
                 raw_model: str | Path | None = None):
        if backend not in BACKENDS:
            raise DenoiseError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        self.model_path = Path(model) if model else DEFAULT_MODEL
        if not self.model_path.is_file():
            raise DenoiseError(f"model file {self.model_path} does not exist; pass --model with an exported .onnx file")
        self.tile = (tile, tile) if isinstance(tile, int) else tuple(tile)
        self.max_batch, self.precision = max_batch, precision
        self.estimator_path: Path | None = None
        self.estimator_calibration = None
        self.card, sigma_input = describe_model(self.model_path)
        self.align = int(self.card.get("config", {}).get("shuffle", 1))
        if "receptive_radius" in self.card:
            self.overlap = overlap_for(int(self.card["receptive_radius"]), self.align)
        else:  # a model without our card: its receptive field is unknown, so never tile it
            log.info("model has no receptive_radius in its card: images run whole, without tiling")
            self.tile, self.overlap = (1 << 30, 1 << 30), 0
        if any(side % self.align for side in self.tile):
            raise DenoiseError(f"tile {self.tile[0]}x{self.tile[1]} is not a multiple of {self.align}, which this model "
                               f"needs (its pixel shuffle); use --tile {-(-self.tile[0] // self.align) * self.align}")
        request = BackendRequest(self.model_path, self.card, self.tile, self.overlap, max_batch, sigma_input,
                                 threads, Path(checkpoint) if checkpoint else None, precision)
        self.raw_model_path = Path(raw_model) if raw_model else (
            DEFAULT_RAW_MODEL if model is None and DEFAULT_RAW_MODEL.is_file() else None)
        if self.raw_model_path is not None and not self.raw_model_path.is_file():
            raise DenoiseError(f"RAW model {self.raw_model_path} does not exist; pass an exported .onnx file")
        self.raw_backend: Backend | None = None
        self.request = request
        self.backend: Backend = open_backend(backend, request)
        self.takes_map = self.backend.sigma_input == "map"
        self.ensemble, self.calls = ensemble, {}
        try:
            self.estimator = self._load_estimator(estimator, request) if self.takes_map else None
        except BaseException:
            self.backend.close()
            raise
        if self.estimator is not None:
            self.estimator_overlap = overlap_for(int(self.estimator_card["receptive_radius"]), self.align)
        low, high = self.card.get("sigma_range", [0.0, 1.0])
        self.sigma_range = (float(low), float(high))

    def _load_estimator(self, estimator, denoiser: BackendRequest) -> Backend | None:
        """The noise estimator, checked to be one, on the backend runtime.backends.open_beside picks beside
        the denoiser's."""
        path = Path(estimator) if estimator else DEFAULT_ESTIMATOR
        if not path.is_file():
            if estimator:
                raise DenoiseError(f"noise estimator {path} does not exist; pass an exported estimator .onnx file")
            return None  # no bundled estimator: auto falls back to Immerkaer's estimate
        card, sigma_input = describe_model(path)
        if sigma_input != "none" or "receptive_radius" not in card or card.get("config", {}).get("kind") != "estimator":
            raise DenoiseError(f"{path} is not a noise estimator exported by denoise (it should take 'noisy', give "
                               "'sigma' and carry its receptive radius in its card)")
        self.estimator_card, self.estimator_path = card, path
        self.estimator_calibration = check_calibration(card.get("calibration"), path)
        return open_beside(replace(denoiser, model_path=path, card=card, sigma_input="none", checkpoint=None),
                              self.backend)

    def infer_for(self, level: float) -> Infer:
        """The inference call for an image whose largest noise level (times strength) is ``level``: its backend's
        (runtime.contract ``for_level``), over the 8 flips and rotations with ``ensemble``."""
        return self._call(self.backend.for_level(level))

    def _call(self, backend: Backend) -> Infer:
        """``backend``'s inference call, made once: over the 8 flips and rotations with ``ensemble``."""
        if backend not in self.calls:
            self.calls[backend] = self_ensemble(backend.infer) if self.ensemble else backend.infer
        return self.calls[backend]

    def _named(self, name: str) -> str:
        return name + (" x8 ensemble" if self.ensemble else "")

    def route(self, levels: list, strength: float = 1.0, raw_model: bool = False) -> tuple[str, str]:
        """(the backend an image with these levels -- one per frame -- runs on, why in that precision; "" on the
        GPU backends, which run their own). ``raw_model``: it runs on the RAW model (``raw_infer``)."""
        level = max(float(np.max(level)) for level in levels) * strength
        if raw_model:
            backend = self._raw_backend().for_level(level)
            return self._named(f"{backend.name} RAW model"), backend.precision_why
        backend = self.backend.for_level(level)
        return self._named(backend.name), backend.precision_why

    def _raw_backend(self) -> Backend:
        """The RAW model's backend, opened on first use, checked to tile as the denoiser does (same receptive
        radius and pixel shuffle: it is a fine-tune of the same architecture)."""
        if self.raw_backend is None:
            if self.raw_model_path is None:
                raise DenoiseError("this Denoiser has no RAW model")
            card, sigma_input = describe_model(self.raw_model_path)
            if (sigma_input != "map" or card.get("receptive_radius") != self.card.get("receptive_radius")
                    or card.get("config", {}).get("shuffle", 1) != self.card.get("config", {}).get("shuffle", 1)):
                raise DenoiseError(f"{self.raw_model_path} cannot be the RAW model of {self.model_path.name}: it must "
                                   "take a noise map and have the same receptive radius and pixel shuffle")
            self.raw_backend = open_beside(replace(self.request, model_path=self.raw_model_path, card=card,
                                                   sigma_input=sigma_input, checkpoint=None), self.backend)
        return self.raw_backend

    def raw_infer(self, level: float) -> Infer:
        """The RAW model's inference call for an image whose largest level (times strength) is ``level``, as
        ``infer_for`` (INT8 on the CPU up to the level it was verified for, where it has an INT8 sibling)."""
        return self._call(self._raw_backend().for_level(level))

    def raw_level(self, pixels: np.ndarray, info) -> tuple[np.ndarray, bool] | None:
        """A camera RAW's level with "auto", from its mosaic's noise (``info``: raw_files.RawInfo of the
        development ``pixels``): (the map, whether it runs on the RAW model). None where the mosaic was not fitted
        (X-Trans, linear DNGs): the estimator reads the development then, as for any image."""
        developed = raw_noise_map(pixels, info)
        if developed is None:
            return None
        if self.raw_model_path is not None:
            return developed, True
        return needed_level(developed), False

    def denoise_raw(self, pixels: np.ndarray, info, strength: float = 1.0) -> np.ndarray:
        """Denoise a camera RAW's development (``raw_files.read_raw(path)``: its ``pixels`` and ``raw`` info) as
        ``denoise batch`` does with "auto": at the level its mosaic gives, on the RAW model where there is one."""
        strength = check_strength(strength)
        found = self.raw_level(pixels, info)
        if found is None:
            return self.denoise(pixels, "auto", strength)
        level, on_raw_model = found
        return run_tiled(self.batcher(), pixels, level, strength, self.raw_infer if on_raw_model else None)

    def close(self) -> None:
        """Release the backends (GPU memory, sessions); the Denoiser cannot be used afterwards."""
        for backend in (self.backend, self.estimator, self.raw_backend):
            if backend is not None:
                backend.close()
        self.estimator, self.raw_backend, self.calls = None, None, {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def backend_name(self) -> str:
        return self._named(self.backend.name)

    @property
    def raw_backend_name(self) -> str | None:
        """What runs the RAW model ("onnxruntime-cpu-int8 RAW model"); None until a RAW has opened it."""
        return None if self.raw_backend is None else self._named(f"{self.raw_backend.name} RAW model")

    def check_sigma(self, sigma: float) -> float:
        low, high = self.sigma_range
        if not (low - 1e-9 <= sigma <= high + 1e-9):
            raise DenoiseError(
                f"sigma {sigma:.4g} is outside this model's range [{low:g}, {high:g}] (on the [0,1] scale; "
                f"25/255 is written 25/255 or 0.098)"
            )
        return sigma

    def check_scaled_sigma(self, sigma: float, strength: float) -> None:
        """A given level times ``strength`` must stay in the model's range: a model trained on [0, 1] fed 5.0
        gives garbage without a word. (An estimated map is the estimator's, inside the range by training.)"""
        low, high = self.sigma_range
        if not (low - 1e-9 <= sigma * strength <= high + 1e-9):
            raise DenoiseError(f"--strength {strength:g} takes sigma {sigma:.4g} to {sigma * strength:.4g}, outside this "
                               f"model's range [{low:g}, {high:g}]: lower --strength or --sigma")

    def resolve_sigma(self, sigma, pixels: np.ndarray, stop: Callable[[], bool] | None = None):
        """What an image's noise level becomes: a checked number; an HxW map (checked); or for "auto" the
        estimator's map of this image (HxWx3, uint8, uint16 or float) times the factor real camera noise needs
        (runtime.real_noise), or for white noise (where that factor is 1) times the one its clipping needs
        (runtime.levels.clipped_noise_factor); or, for a model that takes one level per image, Immerkaer's
        estimate (clamped to the model's range). ``stop``: see estimate_map."""
        if isinstance(sigma, str) and sigma == "auto":
            if self.estimator is not None:
                level = self.estimate_map(pixels, stop)
                factor = real_noise_factor(pixels, level, self.denoise_many)
                if factor > 1:
                    return level * np.float32(factor)
                # White noise, where the file's clipping of it is a censored normal's: raised where clipped.
                # Not real noise: near a camera's black the noise was clipped in the raw data and reshaped since,
                # and raising it there lost on SIDD and RENOIR (BENCHMARKS.md, "calibration and clipped noise").
                return level * clipped_noise_factor(pixels, int(self.estimator_card["receptive_radius"]))
            low, high = self.sigma_range
            return float(min(max(estimate_sigma(pixels), low), high))
        if isinstance(sigma, np.ndarray) and sigma.ndim >= 2:
            if not self.takes_map:
                raise DenoiseError("this model takes one noise level per image, not a map: give a number as sigma")
            return check_level_map(sigma, *pixels.shape[:2])
        if isinstance(sigma, str):
            sigma = parse_sigma(sigma)
        try:
            value = float(sigma)
        except (TypeError, ValueError):
            raise DenoiseError(f"sigma {sigma!r} is not a noise level: give a number on [0,1], an HxW map, or 'auto'") from None
        return self.check_sigma(value)

    def estimate_map(self, pixels: np.ndarray, stop: Callable[[], bool] | None = None, raw: bool = False) -> np.ndarray:
        """The noise estimator's HxW map of an HxWx3 image (tiled; equal to a whole-image run), batched as the
        denoiser's tiles are (at most one tile's pixels per batch on the CPU); unless ``raw``, through the
        calibration in the estimator's card (runtime.levels.calibrate_levels). ``stop``: see tiling.estimate_map."""
        level = estimate_map(self.estimator.infer, pixels, self.tile, self.estimator_overlap, self.align, self.max_batch,
                             self.max_batch_pixels, stop)
        return level if raw else calibrate_levels(level, self.estimator_calibration)

    def denoise(self, image: np.ndarray, sigma="auto", strength: float = 1.0) -> np.ndarray:
        """Denoise one HxWx3 (or HxW) image; uint8, uint16 or float in [0,1] in, same dtype out. ``sigma``:
        a number on [0,1], an HxW noise map, or "auto"; ``strength`` scales it (0.8 lighter, 1.2 stronger)."""
        return self.denoise_with_level(image, sigma, strength)[0]

    def denoise_with_level(self, image: np.ndarray, sigma="auto", strength: float = 1.0) -> tuple[np.ndarray, dict]:
        """``denoise``, and the noise level the model was given: {"mean", "min", "max"} over the image."""
        strength = check_strength(strength)
        array = np.asarray(image)
        if not (array.dtype in (np.uint8, np.uint16) or np.issubdtype(array.dtype, np.floating)):
            raise DenoiseError(f"unsupported pixel type {array.dtype}; give uint8, uint16 or float images")
        gray = array.ndim == 2
        pixels = np.repeat(array[..., None], 3, axis=2) if gray else array
        if pixels.ndim != 3 or pixels.shape[2] != 3:
            raise DenoiseError(f"expected an HxWx3 or HxW image, got shape {array.shape}")
        if np.issubdtype(array.dtype, np.floating):
            pixels = pixels.astype(np.float32, copy=False)
        level = self.resolve_sigma(sigma, pixels)
        if not isinstance(level, np.ndarray) and not (isinstance(sigma, str) and sigma == "auto"):
            self.check_scaled_sigma(float(level), strength)
        out = run_tiled(self.batcher(), pixels, level, strength)
        if gray:
            out = from_float(to_float(out).mean(axis=2), out.dtype)
        summary = level_summary(level, strength, self.sigma_range)
        summary.pop("clamped")
        return out.astype(array.dtype, copy=False), summary

    def denoise_pixels(self, pixels: np.ndarray, sigma, strength: float = 1.0) -> np.ndarray:
        """HxWx3 uint8, uint16 or float32 in [0,1] -> the same type, tile by tile (memory: the image, its
        result and one batch of tiles). ``sigma`` as ``resolve_sigma`` returns it."""
        return run_tiled(self.batcher(), pixels, sigma, strength)

    def denoise_many(self, images: list[np.ndarray], levels: list) -> list[np.ndarray]:
        """``denoise_pixels`` of several images at once: their tiles share batches (the real-noise pass's crops,
        which are small, run in one call instead of one each)."""
        return run_tiled_many(self.batcher(), images, levels)

    def denoise_rgb(self, rgb: np.ndarray, sigma, strength: float = 1.0) -> np.ndarray:
        """float32 HxWx3 in [0,1] -> float32 HxWx3 in [0,1]."""
        rgb = np.asarray(rgb, dtype=np.float32)
        return self.denoise_pixels(rgb, self.resolve_sigma(sigma, rgb), strength)

    def batcher(self) -> TileBatcher:
        """A TileBatcher on this backend and tiling: batches tiles of many images (``denoise batch`` uses it)."""
        return TileBatcher(self.infer_for, self.tile, self.overlap, self.align, self.max_batch, self.max_batch_pixels,
                           threads=host_threads() if self.backend.on_gpu else 1, limits=self.sigma_range)

    @property
    def max_batch_pixels(self) -> int | None:
        """On the CPU a batch holds at most one full tile's pixels: batching large tiles there is no
        faster but multiplies ONNX Runtime's working memory (benchmarks/large_image.py), while small images
        still batch, which is faster (benchmarks/small_images.py)."""
        if self.backend.on_gpu:
            return None
        return tile_input_pixels(self.tile, self.overlap)

    def denoise_rgb_batch(self, rgb: np.ndarray, sigma: float) -> np.ndarray:
        """float32 NxHxWx3 in [0,1], one sigma for all -> float32 NxHxWx3 in [0,1]; whole images, no
        tiling (for many small images, such as CIFAR's, at once)."""
        batch = np.ascontiguousarray(rgb.transpose(0, 3, 1, 2), dtype=np.float32)
        out = self.infer_for(sigma)(batch, np.full((len(batch), 1) + batch.shape[2:], sigma, dtype=np.float32))
        return out.transpose(0, 2, 3, 1)
