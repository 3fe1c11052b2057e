"""What every backend is: the contract the Denoiser, the tiler and the factories (runtime.backends) rely on.

A backend has
  ``name``           what ran, as the manifest and ``denoise info`` say it ("onnxruntime-cpu-int8", "tensorrt");
  ``on_gpu``         whether it runs on a GPU (the host side then cuts tiles on several threads);
  ``precision``      the arithmetic it runs in: "fp32", "fp16", "bf16" or "int8";
  ``precision_why``  one line on why that precision (the CPU's choice, runtime.precision), "" where it is a GPU's own;
  ``sigma_input``    the form of the model's noise input: "map" ([N,1,H,W]), "number" ([N], models exported
                     before maps) or "none" (the noise estimator);
  ``infer(noisy, sigma=None)``  float32 [N,3,H,W] in [0,1] and [N,1,H,W] noise maps (the backend converts them to
                     its ``sigma_input``) -> its output; a failure that is not the user's raises BackendFault;
  ``for_level(level)``  the backend that runs an image whose largest noise level is ``level``: itself, except for a
                     backend made of two (INT8 with its FP32 model beside it, runtime.int8_fallback), so that the
                     tiler and the Denoiser route images without knowing why;
  ``close()`` and the context manager (``with backend: ...`` closes it).

``BackendBase`` gives the members whose meaning is the same for every single backend.
"""

from __future__ import annotations

from typing import Callable, Protocol

import numpy as np

SIGMA_INPUTS = ("map", "number", "none")
Infer = Callable[[np.ndarray, np.ndarray], np.ndarray]  # a backend's ``infer``, or a wrapper of it (runtime.ensemble)


class Backend(Protocol):
    name: str
    on_gpu: bool
    precision: str
    precision_why: str
    sigma_input: str

    def infer(self, noisy: np.ndarray, sigma: np.ndarray | None = None) -> np.ndarray: ...

    def for_level(self, level: float) -> "Backend": ...

    def close(self) -> None: ...

    def __enter__(self) -> "Backend": ...

    def __exit__(self, *exc) -> None: ...


class BackendBase:
    """One backend that runs every image itself, closed by ``with``."""

    precision_why = ""

    def for_level(self, level: float) -> "BackendBase":
        return self

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
