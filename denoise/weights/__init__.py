"""The bundled default model, its RAW model (camera RAWs, runtime.Denoiser's ``raw_model``) and its noise estimator
(``--sigma auto``): ONNX files and a small JSON card beside each (the names of a model's files:
``denoise.model_files``)."""

from __future__ import annotations

from pathlib import Path


WEIGHTS_DIR = Path(__file__).resolve().parent
DEFAULT_MODEL = WEIGHTS_DIR / "default.onnx"
DEFAULT_CHECKPOINT = WEIGHTS_DIR / "default.pt"  # weights + config, no optimizer: `denoise export` re-exports it
DEFAULT_INT8_CHECKPOINT = WEIGHTS_DIR / "default.int8.pt"  # the QAT fine-tune default.int8.onnx comes from
DEFAULT_RAW_MODEL = WEIGHTS_DIR / "raw.onnx"  # the RAW model: the default fine-tuned on AHD-developed RAWs
DEFAULT_RAW_CHECKPOINT = WEIGHTS_DIR / "raw.pt"
DEFAULT_ESTIMATOR = WEIGHTS_DIR / "estimator.onnx"
DEFAULT_ESTIMATOR_CHECKPOINT = WEIGHTS_DIR / "estimator.pt"
