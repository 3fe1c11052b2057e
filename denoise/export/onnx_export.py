"""Checkpoint -> ONNX (FP32), with the model card in ``metadata_props``, verified against PyTorch.

Exporter: ``torch.onnx.export(..., dynamo=True)``, the torch.export-based exporter that PyTorch
maintains (the TorchScript one is deprecated since 2.9). Opset 18: the exporter's native opset,
supported by ONNX Runtime >= 1.14 and by TensorRT 10's ONNX parser.
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from denoise.errors import DenoiseError, missing_extra

FORMAT_VERSION = 1
DEFAULT_OPSET = 18
# Shapes and batch sizes checked after every export: odd sizes exercise the shuffle padding.
VERIFY_SHAPES = ((1, 32, 32), (2, 45, 67), (3, 17, 9))
ATOL, RTOL = 1e-4, 1e-3


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class VerifyReport:
    shape: tuple
    max_abs: float
    mean_abs: float
    ok: bool

    def line(self) -> str:
        n, h, w = self.shape
        return (f"  batch {n} {h}x{w}: max |onnx - torch| {self.max_abs:.2e}, mean {self.mean_abs:.2e} "
                f"-> {'ok' if self.ok else 'FAILED'}")


def build_card(state: dict, checkpoint: Path) -> dict:
    """The model card: what the model is, what it was trained on, and how well it did."""
    from denoise.model import CAEConfig

    config = state["config"]
    settings = state.get("settings", {})
    meta = state.get("meta", {})
    sigma_range = [0.0, 1.0] if config.get("sigma_map") else [settings.get("sigma_min", 0.0), settings.get("sigma_max", 1.0)]
    return {
        "format_version": FORMAT_VERSION,
        "architecture": "symmetric CAE (RED-Net style)",
        "config": config,
        "receptive_radius": CAEConfig(**config).receptive_radius,  # the runtime's tile overlap comes from it
        "model_name": settings.get("model"),
        "sigma_range": sigma_range,
        "noise_protocol": settings.get("protocol", "clip"),
        "sigma_scale": "[0,1] intensity",
        "training_data": meta.get("data_description") or Path(str(meta.get("data"))).name,
        "training": {"steps": state.get("step"), "batch_size": settings.get("batch_size"), "crop": settings.get("crop"),
                     "minutes": round(meta.get("train_seconds", 0.0) / 60, 1), "device": meta.get("device"),
                     "torch": meta.get("torch"), "loss": settings.get("loss", "mse"),
                     "folder_sigma_max": settings.get("folder_sigma_max") or None, **fine_tuning(meta)},
        "validation_psnr_db": meta.get("val_psnr", {}),
        "validation_note": "mean uint8 PSNR on the fixed validation split (every 10th image), per sigma, "
                           f"{settings.get('protocol', 'clip')} protocol",
        "checkpoint_sha256": sha256_file(checkpoint),
    }


def fine_tuning(meta: dict) -> dict:
    """For a model trained with ``--init``: what it started from (and what that started from, nested), so
    the card accounts for all training."""
    init = meta.get("init")
    if not init:
        return {}
    settings = init.get("settings", {})
    entry = {"steps": init.get("steps"), "minutes": round(init.get("train_seconds", 0.0) / 60, 1),
             "data": init.get("data_description"), "device": init.get("device"), "loss": settings.get("loss", "mse"),
             "protocol": settings.get("protocol", "clip"), "batch_size": settings.get("batch_size"),
             "crop": settings.get("crop"), "folder_sigma_max": settings.get("folder_sigma_max") or None}
    return {"fine_tuned_from": {**entry, **fine_tuning({"init": init.get("init")})}}


def export_onnx(checkpoint: Path, out_path: Path, opset: int = DEFAULT_OPSET) -> tuple[dict, list[VerifyReport]]:
    """Export, attach the card, verify against PyTorch; raise DenoiseError with the numbers on mismatch."""
    try:  # checked here so that a runtime-only install gets a message naming the extra
        import onnx  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        raise missing_extra("torch and onnx", "train") from None
    from denoise.train.loop import model_from_checkpoint

    model, state = model_from_checkpoint(checkpoint)
    card = build_card(state, Path(checkpoint))
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)

    props = {"denoise_card": json.dumps(card), "architecture": card["architecture"],
             "config": json.dumps(card["config"]), "sigma_range": json.dumps(card["sigma_range"]),
             "noise_protocol": card["noise_protocol"], "training_data": str(card["training_data"]),
             "validation_psnr_db": json.dumps(card["validation_psnr_db"]),
             "checkpoint_sha256": card["checkpoint_sha256"], "format_version": str(FORMAT_VERSION)}
    from denoise.model import with_plain_convolutions

    write_onnx(with_plain_convolutions(model), out_path, opset, props)  # verified against `model` below

    reports = verify_onnx(model, out_path)
    bad = [r for r in reports if not r.ok]
    if bad:
        raise DenoiseError("exported ONNX differs from PyTorch:\n" + "\n".join(r.line() for r in reports))
    card["onnx_sha256"] = sha256_file(out_path)
    card["opset"] = opset
    out_path.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    return card, reports


def write_onnx(model, out_path: Path, opset: int = DEFAULT_OPSET, metadata: dict | None = None) -> None:
    """Export ``model`` with dynamic batch, height and width, check it with onnx.checker and save it."""
    import onnx
    import torch

    # The exporter warns about torchvision ops it cannot register; we use none of them.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    noisy = torch.rand(2, 3, 32, 48)  # batch 2: an example of 1 would be specialised as a constant
    sigma = torch.tensor([0.1, 0.5])
    batch, height, width = torch.export.Dim("N"), torch.export.Dim("H"), torch.export.Dim("W")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            model.eval(), (noisy, sigma), input_names=["noisy", "sigma"], output_names=["denoised"],
            dynamic_shapes={"noisy": {0: batch, 2: height, 3: width}, "sigma": {0: batch}},
            dynamo=True, opset_version=opset, verbose=False,
        )
    proto = program.model_proto
    del proto.metadata_props[:]
    for key, value in (metadata or {}).items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto, full_check=True)
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(out_path))


def verify_onnx(model, onnx_path: Path, shapes=VERIFY_SHAPES, seed: int = 0) -> list[VerifyReport]:
    """Run ONNX Runtime (CPU) and PyTorch on the same random inputs; compare with atol + rtol*|ref|."""
    import onnxruntime as ort
    import torch

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    takes_sigma = "sigma" in [i.name for i in session.get_inputs()]
    rng = np.random.default_rng(seed)
    reports = []
    for n, h, w in shapes:
        noisy = rng.random((n, 3, h, w), dtype=np.float32)
        sigma = rng.uniform(0.05, 0.9, size=n).astype(np.float32)
        feeds = {"noisy": noisy, "sigma": sigma} if takes_sigma else {"noisy": noisy}
        got = session.run(["denoised"], feeds)[0]
        with torch.no_grad():
            want = model(torch.from_numpy(noisy), torch.from_numpy(sigma)).numpy()
        diff = np.abs(got - want)
        ok = bool(np.all(diff <= ATOL + RTOL * np.abs(want))) and got.shape == want.shape
        reports.append(VerifyReport((n, h, w), float(diff.max()), float(diff.mean()), ok))
    return reports
