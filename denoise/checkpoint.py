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


def average_checkpoints(base: Path, tuned: Path, tuned_weight: float, dst: Path) -> None:
    """``tuned`` (a fine-tune of ``base``) with every weight moved back towards ``base``: (1 - w) base + w tuned.

    Why: averaging a fine-tune with the model it started from (WiSE-FT, Wortsman et al., CVPR 2022) keeps most of
    what the fine-tune gained on its new data and most of what the start knew: the denoiser fine-tuned on real
    camera pairs lost a little on white noise, and half-way between the two lost half as much there while keeping
    most of the real-noise gain (BENCHMARKS.md). The result keeps ``tuned``'s settings and history, says in its
    meta how it was made (the card shows it), and drops the run's validation scores, which were the fine-tune's."""
    if not 0.0 <= tuned_weight <= 1.0:
        raise DenoiseError(f"the fine-tune's weight {tuned_weight:g} is not on [0, 1]")
    start, state = load_checkpoint(base), load_checkpoint(tuned)
    if start["config"] != state["config"] or start["model"].keys() != state["model"].keys():
        raise DenoiseError(f"{base} and {tuned} are not the same model: only a fine-tune and its start can be averaged")
    state["model"] = {name: torch.lerp(start["model"][name].float(), value.float(), tuned_weight).to(value.dtype)
                      if value.is_floating_point() else value for name, value in state["model"].items()}
    state.pop("optimizer", None)
    meta = state.setdefault("meta", {})
    meta.pop("val_psnr", None)
    meta["weight_average"] = {"tuned_weight": tuned_weight, "start": Path(base).name, "start_steps": start.get("step"),
                              "tuned": Path(tuned).name, "tuned_steps": state.get("step")}
    atomic_write(dst, lambda f: torch.save(state, f))


def model_from_checkpoint(path: Path):
    """(model in eval mode, the checkpoint dict): a denoiser or a noise estimator, as the config says."""
    state = load_checkpoint(path)
    model = build_model(config_from_dict(state["config"]))
    model.load_state_dict(state["model"])
    return model.eval(), state
