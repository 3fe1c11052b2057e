"""ONNX Runtime backend: one session, the providers actually obtained, and a plain ``infer`` call.

onnxruntime-gpu silently falls back to the CPU when CUDA or cuDNN is missing, so after creating a
session we read ``get_providers()`` and report what we really got.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from denoise.errors import BackendFault, DenoiseError, missing_extra
from denoise.runtime.contract import BackendBase
from denoise.runtime.levels import sigma_feed

log = logging.getLogger(__name__)

PROVIDER_CHOICES = ("auto", "cuda", "cpu")  # "auto": CUDA when a session really gets it, else the CPU


def _import_ort():
    try:
        import onnxruntime
    except ImportError:
        raise missing_extra("onnxruntime", "cpu") from None
    return onnxruntime


class OnnxRuntimeBackend(BackendBase):
    """Runs an exported ONNX: a denoiser (inputs ``noisy`` and optionally ``sigma``, a [N,1,H,W] map or [N];
    output ``denoised``) or the noise estimator (input ``noisy``, output ``sigma``). ``precision_why`` is set by
    backends.open_onnx_cpu (runtime.precision)."""

    def __init__(self, model_path: Path, backend: str = "auto", threads: int = 0, spinning: bool = True):
        ort = _import_ort()
        if backend not in PROVIDER_CHOICES:
            raise DenoiseError(f"unknown backend {backend!r} for ONNX Runtime; choose one of {', '.join(PROVIDER_CHOICES)}")
        model_path = Path(model_path)
        if not model_path.is_file():
            raise DenoiseError(f"model file {model_path} does not exist; pass --model with an exported .onnx file")
        wanted = self._providers_for(ort, backend)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
        if not spinning:  # a session that runs between another's calls must not keep the cores busy waiting
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(model_path), sess_options=options, providers=wanted)
        except Exception as exc:  # ORT raises its own exception types for a bad file
            raise DenoiseError(f"cannot load model {model_path}: {exc}") from None
        self.providers = self.session.get_providers()
        if backend == "cuda" and "CUDAExecutionProvider" not in self.providers:
            raise DenoiseError(
                "ONNX Runtime could not use CUDA here (it fell back to the CPU); check the NVIDIA driver, "
                "CUDA and cuDNN, or use --backend cpu"
            )
        self.on_gpu = "CUDAExecutionProvider" in self.providers
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        self.precision = self.metadata.get("precision", "fp32")  # export writes it into FP16 and INT8 models
        self.name = ("onnxruntime-cuda" if self.on_gpu else "onnxruntime-cpu") + (
            "" if self.precision == "fp32" else f"-{self.precision}")
        self.input_names = [i.name for i in self.session.get_inputs()]
        if "noisy" not in self.input_names:
            raise DenoiseError(f"{model_path} is not a denoise model: it has no input named 'noisy'")
        self.output_name = self.session.get_outputs()[0].name
        sigma = next((i for i in self.session.get_inputs() if i.name == "sigma"), None)
        self.sigma_input = "none" if sigma is None else {4: "map", 1: "number"}.get(len(sigma.shape))
        if self.sigma_input is None:
            raise DenoiseError(f"{model_path} is not a denoise model: its 'sigma' input has {len(sigma.shape)} "
                               "dimensions (it should be a [N,1,H,W] map or [N] levels)")
        log.info("backend %s (providers %s)", self.name, ", ".join(self.providers))

    @staticmethod
    def _providers_for(ort, backend: str) -> list[str]:
        available = ort.get_available_providers()
        if backend == "cpu":
            return ["CPUExecutionProvider"]
        if backend == "cuda":
            if "CUDAExecutionProvider" not in available:
                raise DenoiseError(
                    "this ONNX Runtime has no CUDA support; install it with: pip install 'denoise[gpu]'"
                )
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        if "CUDAExecutionProvider" in available:
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        log.info("CUDA skipped: this ONNX Runtime build has no CUDAExecutionProvider")
        return ["CPUExecutionProvider"]

    @property
    def card(self) -> dict:
        """The model card stored in the ONNX metadata ({} for a foreign model)."""
        text = self.metadata.get("denoise_card")
        return json.loads(text) if text else {}

    def infer(self, noisy: np.ndarray, sigma: np.ndarray | None = None) -> np.ndarray:
        """noisy: float32 [N,3,H,W] in [0,1]; sigma: float32 [N,1,H,W] noise maps (converted to what the
        model takes). Returns the model's output: [N,3,H,W] denoised, or the estimator's [N,1,H,W] map."""
        feeds = {"noisy": np.ascontiguousarray(noisy, dtype=np.float32)}
        if self.sigma_input != "none":
            if sigma is None:
                raise DenoiseError("this model needs a noise level: give sigma as [N,1,H,W] maps")
            feeds["sigma"] = sigma_feed(sigma, self.sigma_input)
        try:
            return self.session.run([self.output_name], feeds)[0]
        except Exception as exc:  # ORT's own types (a failed CUDA kernel, no memory): not the user's to fix
            raise BackendFault(f"ONNX Runtime ({self.name}) failed on a {noisy.shape} batch: {exc}") from exc

    def close(self) -> None:
        self.session = None
