"""INT8 on the CPU as one backend: the INT8 model, and its FP32 model beside it for images noisier than INT8 was
verified for.

Export checks the INT8 model against FP32 up to a noise level and writes that level into the card
(``int8.sigma_max``); above it nobody has checked, so an image whose level anywhere goes above it runs, every
tile of it, on the FP32 model. ``for_level`` is where that is decided, so the Denoiser and the tiler route
images without knowing INT8 exists, and ``precision_why`` of each part says in one line why it ran.
"""

from __future__ import annotations

import numpy as np

from denoise.runtime.contract import Backend, BackendBase


class Int8WithFp32(BackendBase):
    """``int8`` for images whose largest level is at most ``verified_max``, ``fp32`` above it."""

    on_gpu = False
    precision = "int8"

    def __init__(self, int8: Backend, fp32: Backend, verified_max: float):
        self.int8, self.fp32, self.verified_max = int8, fp32, float(verified_max)
        self.name, self.sigma_input, self.precision_why = int8.name, int8.sigma_input, int8.precision_why
        fp32.precision_why = (f"its noise level goes above {self.verified_max:g}, up to which the INT8 model was "
                              "verified: FP32")

    def for_level(self, level: float) -> Backend:
        return self.fp32 if level > self.verified_max else self.int8

    def infer(self, noisy: np.ndarray, sigma: np.ndarray | None = None) -> np.ndarray:
        """One batch, on the part its largest level calls for (the tiler routes whole images with for_level)."""
        level = 0.0 if sigma is None else float(np.max(sigma))
        return self.for_level(level).infer(noisy, sigma)

    def close(self) -> None:
        self.int8.close()
        self.fp32.close()
