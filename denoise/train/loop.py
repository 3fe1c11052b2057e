"""The training loop: one run folder with config, checkpoints (last and best) and a JSON Lines log.

Checkpoints are plain dicts of tensors and primitives, so ``torch.load(weights_only=True)`` reads them
without executing pickled code, and they carry the model config, so export rebuilds the model from
the checkpoint alone.
"""

from __future__ import annotations

import json
import math
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from denoise.errors import DenoiseError
from denoise.metrics import psnr_uint8, to_uint8
from denoise.model import CONFIGS, CAEConfig, build_model
from denoise.train.data import VALIDATION_EVERY, CropSampler, load_images
from denoise.train.noise import add_noise

VAL_SIGMAS = (0.1, 0.3, 0.5)  # validation noise levels (clip protocol unless the run says otherwise)


@dataclass
class TrainSettings:
    data: str
    out: str = "runs/default"
    model: str = "fast"  # a name in model.CONFIGS
    steps: int = 2000
    batch_size: int = 32
    crop: int = 32
    lr: float = 1e-3
    sigma_min: float = 0.0
    sigma_max: float = 1.0
    protocol: str = "clip"
    val_every: int = 200
    val_images: int = 200
    seed: int = 0
    threads: int = 0  # torch CPU threads; 0 = torch's default
    extra: dict = field(default_factory=dict)


def save_checkpoint(path: Path, model, optimizer, step: int, best: float, settings: TrainSettings, meta: dict) -> None:
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "config": model.config.to_dict(),
        "settings": asdict(settings),
        "step": step,
        "best_val_psnr": best,
        "meta": meta,
    }
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)  # a killed run never leaves a half-written checkpoint


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


def model_from_checkpoint(path: Path):
    state = load_checkpoint(path)
    model = build_model(CAEConfig(**state["config"]))
    model.load_state_dict(state["model"])
    return model.eval(), state


def validation_set(images: list[np.ndarray], count: int, sigmas, protocol: str, seed: int):
    """Fixed noisy/clean pairs: the same noise every time, so validation PSNR is comparable across steps."""
    gen = torch.Generator().manual_seed(seed + 12345)
    pairs = []
    for sigma in sigmas:
        for im in images[:count]:
            clean = torch.from_numpy(im.transpose(2, 0, 1).astype(np.float32) / 255.0)[None]
            noisy = add_noise(clean, torch.tensor([sigma]), protocol, gen)
            pairs.append((sigma, noisy, im))
    return pairs


@torch.no_grad()
def validate(model, pairs) -> dict:
    model.eval()
    scores: dict[float, list[float]] = {}
    for sigma, noisy, clean in pairs:
        out = model(noisy, torch.tensor([sigma]))[0].numpy().transpose(1, 2, 0)
        scores.setdefault(sigma, []).append(psnr_uint8(clean, to_uint8(out)))
    model.train()
    return {str(s): float(np.mean(v)) for s, v in scores.items()}


def train(settings: TrainSettings, resume: bool = False, log: Callable[[str], None] = print) -> Path:
    """Fit a model; returns the path of the best checkpoint. Ctrl-C writes ``last.pt`` before stopping."""
    if settings.model not in CONFIGS:
        raise DenoiseError(f"unknown model {settings.model!r}; choose one of {', '.join(CONFIGS)}")
    if settings.threads:
        torch.set_num_threads(settings.threads)
    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(settings.seed)
    model = build_model(settings.model)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    step, best = 0, -math.inf
    last_path, best_path = out / "last.pt", out / "best.pt"
    if resume:
        if not last_path.is_file():
            raise DenoiseError(f"nothing to resume: {last_path} does not exist")
        state = load_checkpoint(last_path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, best = state["step"], state["best_val_psnr"]
        log(f"resumed from {last_path} at step {step}")
    (out / "config.json").write_text(json.dumps({"settings": asdict(settings), "model": model.config.to_dict()}, indent=2))

    t0 = time.time()
    train_images = load_images(Path(settings.data), "train")
    val_images = load_images(Path(settings.data), "val")
    log(f"data: {len(train_images)} train, {len(val_images)} validation images from {settings.data} "
        f"({time.time() - t0:.0f}s to load)")
    sampler = CropSampler(train_images, settings.crop, settings.seed + step)  # a resumed run draws new crops
    pairs = validation_set(val_images, settings.val_images, VAL_SIGMAS, settings.protocol, settings.seed)
    gen = torch.Generator().manual_seed(settings.seed + 1 + step)
    meta = {"data": str(settings.data),
            "data_description": f"{Path(settings.data).name}: {len(train_images)} training images "
                                f"(every {VALIDATION_EVERY}th image held out for validation)",
            "device": f"cpu ({platform.processor() or platform.machine()})",
            "torch": str(torch.__version__), "train_seconds": 0.0}
    if resume:
        meta["train_seconds"] = state["meta"].get("train_seconds", 0.0)
    seconds_before = meta["train_seconds"]

    def lr_at(s: int) -> float:  # cosine decay to 5% of the base rate
        return settings.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(s, settings.steps) / settings.steps)))

    model.train()
    start = time.time()
    logfile = open(out / "log.jsonl", "a")
    try:
        while step < settings.steps:
            clean = torch.from_numpy(sampler.batch(settings.batch_size))
            sigma = settings.sigma_min + (settings.sigma_max - settings.sigma_min) * torch.rand(len(clean), generator=gen)
            noisy = add_noise(clean, sigma, settings.protocol, gen)
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)
            loss = F.mse_loss(model(noisy, sigma), clean)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            meta["train_seconds"] = seconds_before + time.time() - start
            if step % settings.val_every == 0 or step == settings.steps:
                scores = validate(model, pairs)
                mean = float(np.mean(list(scores.values())))
                rate = (time.time() - start) / max(1, step - (state["step"] if resume else 0))
                entry = {"step": step, "loss": loss.item(), "val_psnr": scores, "lr": lr_at(step),
                         "seconds": round(meta["train_seconds"], 1)}
                logfile.write(json.dumps(entry) + "\n")
                logfile.flush()
                meta["val_psnr"] = scores
                if mean > best:
                    best = mean
                    save_checkpoint(best_path, model, optimizer, step, best, settings, meta)
                save_checkpoint(last_path, model, optimizer, step, best, settings, meta)
                log(f"step {step}/{settings.steps} loss {loss.item():.5f} val PSNR "
                    + " ".join(f"s{k}={v:.2f}" for k, v in scores.items())
                    + f" | ETA {rate * (settings.steps - step) / 60:.1f} min")
    except KeyboardInterrupt:
        save_checkpoint(last_path, model, optimizer, step, best, settings, meta)
        log(f"interrupted: saved {last_path} at step {step}; continue with --resume")
        raise
    finally:
        logfile.close()
    return best_path if best_path.exists() else last_path
