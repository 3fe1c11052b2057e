"""Checkpoint -> ONNX (FP32), with the model card in ``metadata_props``, verified against PyTorch.

Exporter: ``torch.onnx.export(..., dynamo=True)``, the torch.export-based exporter that PyTorch
maintains (the TorchScript one is deprecated since 2.9). Opset 18: the exporter's native opset,
supported by ONNX Runtime >= 1.14 and by TensorRT 10's ONNX parser.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from denoise.atomic import atomic_save_onnx, atomic_write_text
from denoise.errors import DenoiseError, missing_extra
from denoise.model_files import card_path, sha256_file

FORMAT_VERSION = 1
DEFAULT_OPSET = 18
# Shapes and batch sizes checked after every export: odd sizes exercise the shuffle padding.
VERIFY_SHAPES = ((1, 32, 32), (2, 45, 67), (3, 17, 9))
ATOL, RTOL = 1e-4, 1e-3


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
    from denoise.model import EstimatorConfig, config_from_dict

    config = state["config"]
    settings = state.get("settings", {})
    meta = state.get("meta", {})
    model_config = config_from_dict(config)
    estimator = isinstance(model_config, EstimatorConfig)
    sigma_range = [0.0, 1.0] if config.get("sigma_map") or estimator else [settings.get("sigma_min", 0.0), settings.get("sigma_max", 1.0)]
    return {
        "format_version": FORMAT_VERSION,
        "architecture": "noise-level estimator (CBDNet style)" if estimator else "symmetric CAE (RED-Net style)",
        "config": config,
        "receptive_radius": model_config.receptive_radius,  # the runtime's tile overlap comes from it
        "sigma_input": "none" if estimator else "map",  # the ONNX's sigma: absent, or an [N,1,H,W] map (write_onnx)
        "model_name": settings.get("model"),
        "sigma_range": sigma_range,
        "noise_protocol": settings.get("protocol", "clip"),
        "sigma_scale": "[0,1] intensity",
        "training_data": meta.get("data_description") or Path(str(meta.get("data"))).name,
        "training": {"steps": state.get("step"), "batch_size": settings.get("batch_size"), "crop": settings.get("crop"),
                     "minutes": round(meta.get("train_seconds", 0.0) / 60, 1), "device": meta.get("device"),
                     "torch": meta.get("torch"), "loss": settings.get("loss", "mse"),
                     "folder_sigma_max": settings.get("folder_sigma_max") or None, **fine_tuning(meta)},
        **({"real_pairs": {"folders": [Path(f).name for f in settings["pairs"]], "share": settings.get("pairs_share"),
                           "held_out": "every 5th scene of each folder (denoise/train/pairs.py)"}}
           if settings.get("pairs") else {}),
        **({"trained_through": Path(settings["through"]).name} if settings.get("through") else {}),
        **({"weight_average": meta["weight_average"]} if "weight_average" in meta else {}),
        **validation_entries(state, estimator, bool(settings.get("through"))),
        "checkpoint_sha256": sha256_file(checkpoint),
    }


def validation_entries(state: dict, estimator: bool, through: bool) -> dict:
    """What the run's validation measured: a denoiser's PSNR (an estimator trained through a denoiser is scored
    by that denoiser's PSNR with the estimated map), or an estimator's level error."""
    settings, scores = state.get("settings", {}), state.get("meta", {}).get("val_psnr", {})
    split = (" on the fixed validation split (every 10th image; \"real\": the held-out real pairs), per sigma, "
             f"{settings.get('protocol', 'clip')} protocol")
    if estimator and not through:
        return {"validation_psnr_db": {}, "validation_level_error_db": {k: -v for k, v in scores.items()},
                "validation_note": "mean |20 log10(estimated / true level)| in dB" + split}
    what = ("mean uint8 PSNR of the denoiser it was trained through, given the estimated map" if estimator else
            "mean uint8 PSNR" + (" of the INT8 (fake-quantized) model, a quantization-aware run" if "quantization" in state else ""))
    return {"validation_psnr_db": scores, "validation_note": what + split}


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
             "crop": settings.get("crop"), "folder_sigma_max": settings.get("folder_sigma_max") or None,
             **({"weight_average": init["weight_average"]} if "weight_average" in init else {})}
    return {"fine_tuned_from": {**entry, **fine_tuning({"init": init.get("init")})}}


def export_onnx(checkpoint: Path, out_path: Path, opset: int = DEFAULT_OPSET) -> tuple[dict, list[VerifyReport]]:
    """Export, attach the card, verify against PyTorch; raise DenoiseError with the numbers on mismatch."""
    try:  # checked here so that a runtime-only install gets a message naming the extra
        import onnx  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        raise missing_extra("torch and onnx", "train") from None
    from denoise.checkpoint import model_from_checkpoint

    model, state = model_from_checkpoint(checkpoint)
    card = build_card(state, Path(checkpoint))
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)

    props = {"denoise_card": json.dumps(card), "architecture": card["architecture"],
             "config": json.dumps(card["config"]), "sigma_range": json.dumps(card["sigma_range"]),
             "noise_protocol": card["noise_protocol"], "training_data": str(card["training_data"]),
             "validation_psnr_db": json.dumps(card["validation_psnr_db"]),
             "checkpoint_sha256": card["checkpoint_sha256"], "format_version": str(FORMAT_VERSION)}
    from denoise.model import StridedNoiseEstimator, is_estimator, with_plain_convolutions

    fast = StridedNoiseEstimator(model) if is_estimator(model) else with_plain_convolutions(model)
    write_onnx(fast, out_path, opset, props)  # verified below, against the model itself

    reports = verify_onnx(model, out_path)
    bad = [r for r in reports if not r.ok]
    if bad:
        raise DenoiseError("exported ONNX differs from PyTorch:\n" + "\n".join(r.line() for r in reports))
    card["onnx_sha256"] = sha256_file(out_path)
    card["opset"] = opset
    atomic_write_text(card_path(out_path), json.dumps(card, indent=2) + "\n")
    return card, reports


def write_onnx(model, out_path: Path, opset: int = DEFAULT_OPSET, metadata: dict | None = None) -> None:
    """Export ``model`` with dynamic batch, height and width, check it with onnx.checker and save it.

    A denoiser takes ``noisy`` [N,3,H,W] and ``sigma`` [N,1,H,W] and gives ``denoised``; the noise estimator
    takes ``noisy`` and gives ``sigma`` (the map the denoiser takes)."""
    import onnx
    import torch

    from denoise.model import is_estimator

    # The exporter warns about torchvision ops it cannot register; we use none of them.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    noisy = torch.rand(2, 3, 32, 48)  # batch 2: an example of 1 would be specialised as a constant
    batch, height, width = torch.export.Dim("N"), torch.export.Dim("H"), torch.export.Dim("W")
    spatial = {0: batch, 2: height, 3: width}
    if is_estimator(model):
        args, names, outputs, dynamic = (noisy,), ["noisy"], ["sigma"], {"noisy": spatial}
    else:
        sigma = torch.rand(2, 1, 32, 48) * 0.5
        args, names, outputs, dynamic = (noisy, sigma), ["noisy", "sigma"], ["denoised"], {"noisy": spatial, "sigma": spatial}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            model.eval(), args, input_names=names, output_names=outputs, dynamic_shapes=dynamic,
            dynamo=True, opset_version=opset, verbose=False,
        )
    proto = program.model_proto
    del proto.metadata_props[:]
    for key, value in (metadata or {}).items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto, full_check=True)
    atomic_save_onnx(proto, Path(out_path))


def verify_onnx(model, onnx_path: Path, shapes=VERIFY_SHAPES, seed: int = 0) -> list[VerifyReport]:
    """Run ONNX Runtime (CPU) and PyTorch on the same random inputs; compare with atol + rtol*|ref|."""
    import torch

    from denoise.model import is_estimator
    from denoise.runtime.onnx_backend import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend(Path(onnx_path), backend="cpu")
    rng = np.random.default_rng(seed)
    reports = []
    for n, h, w in shapes:
        noisy = rng.random((n, 3, h, w), dtype=np.float32)
        # A map that varies across the image (a ramp of a random level per image): the map path is checked.
        ramp = np.linspace(0.5, 1.5, w, dtype=np.float32)[None, None, None, :]
        sigma = (rng.uniform(0.05, 0.6, size=(n, 1, 1, 1)) * ramp * np.ones((1, 1, h, 1))).astype(np.float32)
        got = backend.infer(noisy, sigma)
        with torch.no_grad():
            args = (torch.from_numpy(noisy),) if is_estimator(model) else (torch.from_numpy(noisy), torch.from_numpy(sigma))
            want = model(*args).numpy()
        diff = np.abs(got - want)
        ok = bool(np.all(diff <= ATOL + RTOL * np.abs(want))) and got.shape == want.shape
        reports.append(VerifyReport((n, h, w), float(diff.max()), float(diff.mean()), ok))
    return reports
