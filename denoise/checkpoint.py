"""Reading checkpoints: beside the model family, so export and benchmarks need not import the training loop.

Checkpoints are plain dicts of tensors and primitives (written by ``denoise.train.loop``), so
``torch.load(weights_only=True)`` reads them without executing pickled code, and they carry the model
config, so a model is rebuilt from the checkpoint alone.
"""

from __future__ import annotations

from pathlib import Path

import torch

from denoise.atomic import atomic_write
from denoise.errors import DenoiseError
from denoise.model import build_model, config_from_dict


def load_checkpoint(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise DenoiseError(f"checkpoint {path} does not exist")
    try:
        # TorchVersion is a plain str subclass that early checkpoints of ours stored; allow just that.
        with torch.serialization.safe_globals([torch.torch_version.TorchVersion]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DenoiseError(f"cannot read checkpoint {path}: {first_line}") from None


def strip_checkpoint(src: Path, dst: Path) -> None:
    """A copy of a checkpoint without the optimizer state: what gets bundled (a third of the size)."""
    state = load_checkpoint(src)
    state.pop("optimizer", None)
    atomic_write(dst, lambda f: torch.save(state, f))


def model_from_checkpoint(path: Path):
    """(model in eval mode, the checkpoint dict): a denoiser or a noise estimator, as the config says."""
    state = load_checkpoint(path)
    model = build_model(config_from_dict(state["config"]))
    model.load_state_dict(state["model"])
    return model.eval(), state
