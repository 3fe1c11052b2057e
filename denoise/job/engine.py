"""What the job needs of the engine, typed, and nothing more.

The job plans, locks, reads, writes and records; the engine (``runtime.Denoiser`` is one) turns pixels into
pixels. What is decided before a run -- the sigma asked for and the model's range, the strength, the precision,
the backend -- is checked once, by whoever makes the engine and the options (``job.batch.denoise_folder``,
``denoise batch``); during the run the job asks the engine only for each image's noise level, the tiles' batcher
and where an image ran."""

from __future__ import annotations

from typing import Callable, Protocol

import numpy as np

from denoise.runtime.contract import Infer
from denoise.runtime.tiling import TileBatcher


class Engine(Protocol):
    @property
    def backend_name(self) -> str:
        """What runs the model ("onnxruntime-cpu-int8", "tensorrt-fp16 x8 ensemble"): the manifest's default."""

    @property
    def sigma_range(self) -> tuple[float, float]:
        """The model's noise levels: the manifest says where a map scaled by the strength was clamped to it."""

    def resolve_sigma(self, sigma, pixels: np.ndarray, stop: Callable[[], bool] | None = None) -> float | np.ndarray:
        """One frame's noise level: the number given, or for "auto" the estimator's map (Stopped when ``stop()``)."""

    def batcher(self) -> TileBatcher:
        """A batcher of tiles of many images on this engine's backend."""

    def route(self, levels: list, strength: float, raw_model: bool = False) -> tuple[str, str]:
        """(the backend an image with these levels runs on, why in that precision -- "" when nothing to say)."""

    def raw_level(self, pixels: np.ndarray, info) -> tuple[np.ndarray, bool] | None:
        """A camera RAW's level from its mosaic (``info``: raw_files.RawInfo), and whether it runs on the RAW
        model; None where its mosaic was not fitted (then ``resolve_sigma`` as for any image)."""

    def raw_infer(self, level: float) -> Infer:
        """The RAW model's inference call for an image whose largest level (times strength) is ``level``
        (TileBatcher.add's ``infer_for``)."""
