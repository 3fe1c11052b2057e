"""The files of one model, by name: the FP32 ONNX and, beside it, its card, its FP16 and INT8 siblings and the
PyTorch checkpoint it was exported from. Export writes them by these rules and the runtime finds them by the
same ones; this module is the only one that knows the names (torch-free).

    model.onnx          the FP32 model (``denoise export`` writes ``MODEL_NAME`` into its output folder)
    model.json          its card: what the model is, how it was trained and checked (``card_path``, ``read_card``)
    model.fp16.onnx     the FP16 graph TensorRT builds from (``fp16_sibling``)
    model.int8.onnx     the INT8 model for CPUs (``int8_sibling``)
    model.pt            the checkpoint the torch backend runs (``checkpoint_path``, ``checkpoint_for``)
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from denoise.errors import DenoiseError

MODEL_NAME = "model.onnx"  # of the FP32 model in an export's output folder


def card_path(model_path: Path) -> Path:
    """``model.onnx`` -> ``model.json``: the card written beside an exported model."""
    return Path(model_path).with_suffix(".json")


def read_card(model_path: Path | None = None) -> dict:
    """The JSON card written beside an exported model ({} when there is none); None: the bundled model's."""
    if model_path is None:
        from denoise.weights import DEFAULT_MODEL

        model_path = DEFAULT_MODEL
    path = card_path(model_path)
    if not path.is_file():
        return {}
    return json.loads(path.read_text())


def fp16_sibling(model_path: Path) -> Path:
    """``model.onnx`` -> ``model.fp16.onnx``: where export puts the FP16 graph TensorRT builds from."""
    return Path(model_path).with_name(Path(model_path).stem + ".fp16.onnx")


def int8_sibling(model_path: Path) -> Path:
    """``model.onnx`` -> ``model.int8.onnx``: where ``denoise export --int8`` puts the INT8 model."""
    return Path(model_path).with_name(Path(model_path).stem + ".int8.onnx")


def checkpoint_path(model_path: Path) -> Path:
    """``model.onnx`` -> ``model.pt``: the PyTorch checkpoint kept beside a model."""
    return Path(model_path).with_suffix(".pt")


def sha256_file(path: Path) -> str:
    """The sha256 (hex) of a file, as cards record it for the model and its checkpoint."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def checkpoint_for(model_path: Path, card: dict, checkpoint: Path | None = None) -> Path:
    """The PyTorch checkpoint a model was exported from: ``checkpoint`` or the ``.pt`` beside the model,
    checked against the sha256 the model's card recorded at export (so both backends run the same weights)."""
    path = Path(checkpoint) if checkpoint else checkpoint_path(model_path)
    if not path.is_file():
        raise DenoiseError(f"--backend torch needs the checkpoint {Path(model_path).name} was exported from; "
                           f"{path} does not exist (put it beside the model)")
    want = card.get("checkpoint_sha256")
    if want and sha256_file(path) != want:
        raise DenoiseError(f"checkpoint {path} is not the one {Path(model_path).name} was exported from (its sha256 "
                           "differs from the model card's); export again, or use the matching checkpoint")
    return path
