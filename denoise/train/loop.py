"""The training loop: one run folder with config, checkpoints (last and best) and a JSON Lines log.

Checkpoints are plain dicts of tensors and primitives, so ``torch.load(weights_only=True)`` reads them
without executing pickled code, and they carry the model config, so export rebuilds the model from
the checkpoint alone. On CUDA the loop uses bfloat16 autocast and channels_last; on the CPU, float32.
"""

from __future__ import annotations

import json
import math
import platform
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from denoise.atomic import atomic_write, atomic_write_text
from denoise.errors import DenoiseError
from denoise.metrics import psnr_uint8, to_uint8
from denoise.checkpoint import load_checkpoint
from denoise.camera_noise import camera_noise
from denoise.model import CONFIGS, build_model, config_from_dict, is_estimator
from denoise.noise import TRAIN_PROTOCOLS
from denoise.progress import ProgressBar
from denoise import quantize
from denoise.train import ANCHORS, LOSSES, qat
from denoise.datasets import VALIDATION_EVERY, is_image_folder, load_images
from denoise.train.data import MixedSampler, to_training_tensor
from denoise.train.noise import add_noise, camera_batch, uses_camera
from denoise.train.pairs import PairSampler, load_pairs

VAL_SIGMAS = (0.1, 0.3, 0.5, 1.0)  # validation noise levels, in the run's noise protocol
WARMUP_STEPS = 100


@dataclass
class TrainSettings:
    data: list[str] | str  # one or more sources: image folder, CIFAR-10 archive, cifar-10-batches-py
    out: str = "runs/default"
    model: str = "fast"  # a name in model.CONFIGS
    steps: int = 2000
    minutes: float = 0.0  # stop after this much training time (0: no limit); the LR schedule follows
    batch_size: int = 32
    crop: int = 32
    lr: float = 5e-4
    sigma_min: float = 0.0
    sigma_max: float = 1.0
    folder_sigma_max: float = 0.0  # upper sigma of batches from image folders (photos); 0: sigma_max
    protocol: str = "clip"
    val_every: int = 200
    val_images: int = 200  # per source
    seed: int = 0
    threads: int = 0  # torch CPU threads; 0 = torch's default
    device: str = "auto"  # "auto" (CUDA when available), "cuda" or "cpu"
    loss: str = "mse"  # "mse", or "log-mse": the mean over images of log(MSE), i.e. mean PSNR (see batch_loss)
    init: str = ""  # start from this checkpoint's weights (a fine-tune: new optimizer and schedule)
    qat: bool = False  # quantization-aware fine-tune for the INT8 model (denoise.train.qat); needs init
    pairs: list[str] = field(default_factory=list)  # real noisy/clean pair folders (denoise.train.pairs)
    pairs_share: float = 0.25  # of the batches, drawn from the real pairs when there are any
    through: str = ""  # the estimator only: train it through this frozen denoiser checkpoint (through_loss)
    anchor: str = "synthesized"  # with through: the batches anchored to their exact level (ANCHORS)
    keep_white: bool = False  # a denoiser fine-tune: white-noise batches taught by the --init model (keeps_white)

    def __post_init__(self):
        if isinstance(self.data, (str, Path)):
            self.data = [str(self.data)]
        self.data = [str(d) for d in self.data]
        self.pairs = [str(d) for d in self.pairs]


# What a run is: a resumed run must keep these (its checkpoint's optimizer state, schedule, validation and best
# score belong to them). Only --steps and --minutes (how long it goes on) may change on --resume, and --threads
# and --device, which say where it runs, not what it is.
RUN_FIELDS = ("model", "data", "loss", "protocol", "crop", "batch_size", "lr", "sigma_min", "sigma_max",
              "folder_sigma_max", "seed", "init", "val_every", "val_images", "qat", "pairs", "pairs_share", "through",
              "anchor", "keep_white")


def resume_settings(out: Path, changes: dict) -> TrainSettings:
    """The settings of the run in ``out`` (from its last.pt) with ``changes`` applied -- what --resume runs."""
    last_path = Path(out) / "last.pt"
    if not last_path.is_file():
        raise DenoiseError(f"nothing to resume: {last_path} does not exist")
    saved = {k: v for k, v in load_checkpoint(last_path).get("settings", {}).items() if k in TrainSettings.__dataclass_fields__}
    return TrainSettings(**{**saved, **changes, "out": str(out)})


def check_resumable(saved: dict, settings: TrainSettings, last_path: Path) -> None:
    """Refuse to resume a run with settings that make it another run (a different model, loss, data, ...)."""
    now = asdict(settings)
    differ = [f"--{name.replace('_', '-')} {now[name]!r} (the run has {saved[name]!r})"
              for name in RUN_FIELDS if name in saved and saved[name] != now[name]]
    if differ:
        raise DenoiseError(f"--resume continues {last_path} as it was started, but " + "; ".join(differ)
                           + ": leave those options out, or start a new run with --out (or --init to fine-tune from it)")


def is_quantized(model) -> bool:
    """A QAT model (its observers are saved apart); the estimator never is (it stays FP32)."""
    return not is_estimator(model) and bool(quantize.quantized_layers(model))


def save_checkpoint(path: Path, model, optimizer, step: int, best: float, settings: TrainSettings, meta: dict) -> None:
    state = {
        "model": quantize.float_state(model),  # a QAT model's observers are stored apart, as "quantization"
        "optimizer": optimizer.state_dict(),
        "config": model.config.to_dict(),
        "settings": asdict(settings),
        "step": step,
        "best_val_psnr": best,
        "meta": meta,
    }
    if is_quantized(model):
        state["quantization"] = quantize.ranges(model)
    atomic_write(path, lambda f: torch.save(state, f))  # a killed run never leaves a half-written checkpoint


def sigma_top(settings: TrainSettings, source: Path) -> float:
    """The upper training sigma for batches from ``source``. Photos are mostly denoised at low noise
    (sigma 15-50 of 255 is 0.06-0.2), so ``folder_sigma_max`` can spend the photo batches there while the
    CIFAR batches keep the whole range the seed's table measures."""
    if settings.folder_sigma_max and is_image_folder(source):
        return max(settings.folder_sigma_max, settings.sigma_min)
    return settings.sigma_max


def validation_set(sources: list[list[np.ndarray]], photo: list[bool], count: int, sigmas, protocol: str, seed: int):
    """Fixed (key, noisy, level, clean) tuples: the same noise every time, so validation is comparable across
    steps. Keys are the white sigmas, plus "camera" for camera noise where the protocol uses it (on photos
    only under "mixed"); ``level`` is the noise level the model is given, ``clean`` the uint8 reference."""
    gen = torch.Generator().manual_seed(seed + 12345)
    rng = np.random.default_rng(seed + 12345)
    white = "uint8" if protocol == "camera" else protocol
    pairs = []
    for images, is_photo in zip(sources, photo):
        for im in images[:count]:
            clean = torch.from_numpy(im.transpose(2, 0, 1).astype(np.float32) / 255.0)[None]
            for sigma in sigmas:
                pairs.append((str(sigma), add_noise(clean, torch.tensor([sigma]), white, gen), torch.tensor([sigma]), im))
            if protocol == "camera" or (protocol == "mixed" and is_photo):
                noisy, target, level = camera_noise(im / np.float32(255.0), rng)
                pairs.append(("camera", torch.from_numpy(noisy.transpose(2, 0, 1).copy())[None],
                              torch.from_numpy(level)[None, None], to_uint8(target)))
    return pairs


def pair_validation_set(pairs) -> list:
    """The held-out real pairs as validation tuples (key "real"; the level is the pair's true local level)."""
    return [("real", torch.from_numpy(p.noisy.transpose(2, 0, 1).astype(np.float32) / 255.0)[None],
             torch.from_numpy(p.level)[None, None], to_uint8(p.clean)) for p in pairs]


def as_map(level: torch.Tensor, noisy: torch.Tensor) -> torch.Tensor:
    """A batch's noise level as [N,1,H,W] maps: one level per image ([N], white noise) filled in, or the maps."""
    return level.reshape(-1, 1, 1, 1).expand_as(noisy[:, :1]) if level.dim() == 1 else level


def level_error_db(estimate: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    """Per-pixel |20 log10(estimate / true level)|, with a floor of 1/255 on both (below it, levels differ
    by less than one grey step)."""
    floor = 1.0 / 255.0
    return (20 * torch.log10((estimate + floor) / (level + floor))).abs()


@torch.no_grad()
def validate(model, pairs, device: torch.device, denoiser=None) -> dict:
    """Mean uint8 PSNR per key for a denoiser, and for an estimator trained ``through`` a denoiser (the PSNR
    of that denoiser given the estimate); for an estimator alone, minus its mean level error in dB (higher
    is better for all)."""
    model.eval()
    scores: dict[str, list[float]] = {}
    for key, noisy, level, clean in pairs:
        noisy, level = noisy.to(device), level.to(device)
        if is_estimator(model) and denoiser is None:
            scores.setdefault(key, []).append(-float(level_error_db(model(noisy), as_map(level, noisy)).mean()))
            continue
        if is_estimator(model):
            out = denoiser(noisy, model(noisy))[0].float().clamp(0, 1).cpu().numpy()
        else:
            out = model(noisy, level)[0].float().cpu().numpy()
        scores.setdefault(key, []).append(psnr_uint8(clean, to_uint8(out.transpose(1, 2, 0))))
    model.train()
    return {k: float(np.mean(v)) for k, v in scores.items()}


def estimator_loss(estimate: torch.Tensor, level: torch.Tensor, under_weight: float = 0.7) -> torch.Tensor:
    """CBDNet's asymmetric loss (Guo et al. 2019), on the log of the level: under-estimating weighs
    ``under_weight``, over-estimating 1 - that. A denoiser given too low a level leaves noise; too high a
    level only smooths a little more, which people mind less. In logs, every noise level counts the same."""
    floor = 1.0 / 255.0
    diff = torch.log(estimate + floor) - torch.log(level + floor)
    weight = torch.where(diff < 0, under_weight, 1.0 - under_weight)
    return (weight * diff.pow(2)).mean()


# The weights of through_loss's terms beside the denoiser's log-MSE (whose 0.1 dB is 0.023).
UNDER_WEIGHT = 0.05  # an estimate half the true level costs 0.05 * log(2)^2 = 0.024: about 0.1 dB
SMOOTH_WEIGHT = 0.02
ANCHOR_WEIGHT = 20.0  # synthesized noise: estimator_loss to its exact level; 1.3x over costs 20 * 0.3 * 0.069 = 0.4
# Which batches through_loss anchors (ANCHORS): all synthesized ones, or the white ones only. The camera
# protocol's exact level is its noise's RMS before JPEG, and JPEG'd camera noise (CC15's kind) needs about twice
# its RMS (BENCHMARKS.md): anchored there, the estimator is held to the RMS; unanchored, the denoiser's error decides.


def through_loss(estimate: torch.Tensor, level: torch.Tensor, denoised: torch.Tensor, clean: torch.Tensor,
                 anchored: bool = False) -> torch.Tensor:
    """The estimator's loss through a frozen denoiser: the level the denoiser needs, not only the true level.

    Real noise after a camera's processing acts on a denoiser like white noise of a higher level than its
    RMS, so the true level is the wrong target there; the denoiser's own error against the clean image is the
    right one (CBDNet trains its estimator jointly with the denoiser for this reason). Beside it:

    * an asymmetric penalty on estimates *below* the true level only (log ratio squared): a denoiser given
      too low a level leaves noise, which people mind more than a little more smoothing, and on white noise
      it keeps the estimate near the level it is known to be;
    * a smoothness term on the log map (squared differences of neighbours): the level of real noise varies
      slowly, and a map that follows texture would smooth texture;
    * ``anchored`` (synthesized white and camera noise, whose exact level the denoiser was trained with):
      CBDNet's asymmetric level loss to that level, weighted ANCHOR_WEIGHT. Without it, an estimator trained
      through the denoiser on a mixture with real pairs drifted up on white noise, reading it far above its
      level (by how much: BENCHMARKS.md, issue 23): 23 k parameters do not tell the kinds of noise apart well enough on their own,
      and the real pairs' large errors pulled every estimate up.
    """
    floor = 1.0 / 255.0
    error = torch.log((denoised - clean).pow(2).mean(dim=(1, 2, 3)) + 1e-8).mean()  # log-MSE: each image in dB
    log_estimate = torch.log(estimate + floor)
    under = F.relu(torch.log(as_map(level, estimate) + floor) - log_estimate).pow(2).mean()
    smooth = ((log_estimate[..., 1:, :] - log_estimate[..., :-1, :]).pow(2).mean()
              + (log_estimate[..., :, 1:] - log_estimate[..., :, :-1]).pow(2).mean())
    loss = error + UNDER_WEIGHT * under + SMOOTH_WEIGHT * smooth
    return loss + ANCHOR_WEIGHT * estimator_loss(estimate, as_map(level, estimate)) if anchored else loss


def batch_loss(denoised: torch.Tensor, clean: torch.Tensor, kind: str) -> torch.Tensor:
    """``mse`` over the batch, or ``log-mse``: the mean of each image's log(MSE).

    With one model for sigma 0 to 1, a plain MSE is dominated by the noisiest images (at sigma 1 the
    error is some ten times that at 0.1), so low noise levels get little of the model's capacity. The
    mean of log(MSE) is, up to a constant, the mean PSNR: every image counts the same in decibels.
    """
    if kind == "log-mse":  # train() has checked that kind is one of LOSSES
        per_image = (denoised - clean).pow(2).mean(dim=(1, 2, 3))
        return torch.log(per_image + 1e-8).mean()
    return F.mse_loss(denoised, clean)


def fp32_teacher(settings: TrainSettings, device: torch.device):
    """The FP32 model a QAT or --keep-white run starts from (--init; the same on --resume), frozen: what it
    learns to match (on every batch for QAT, on white-noise ones for --keep-white).
    Kept in training mode only so that its output is not clipped to [0,1], like the student's."""
    teacher = build_model(settings.model)
    teacher.load_state_dict(load_checkpoint(Path(settings.init))["model"])
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    return teacher.to(device).train()


def load_weights(model, state: dict) -> None:
    """A checkpoint's weights into ``model``; into a QAT model, also its quantization ranges when it has them
    (from a plain checkpoint, the observers start from the first batch)."""
    if not is_quantized(model):
        model.load_state_dict(state["model"])
        return
    missing, unexpected = model.load_state_dict(state["model"], strict=False)
    if unexpected or any("_range." not in key for key in missing):
        raise DenoiseError(f"the checkpoint's weights do not fit this model (missing {missing}, unexpected {unexpected})")
    if "quantization" in state:
        quantize.load_ranges(model, state["quantization"])


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """The QAT loss: each image's squared distance from the FP32 model's output, relative to the FP32 model's
    own squared error. For a student error independent of the teacher's, this is the relative growth of the
    image's MSE: its PSNR loss against FP32 is 10 log10(1 + this), so the INT8 model learns to keep the FP32
    model's quality on every image and noise level alike, instead of drifting from it (fine-tuned on the clean
    targets alone, a QAT run's float weights themselves lost PSNR against FP32; BENCHMARKS.md, "How the QAT got
    there")."""
    dims = (1, 2, 3)
    return ((student - teacher).pow(2).mean(dim=dims) / ((teacher - clean).pow(2).mean(dim=dims) + 1e-8)).mean()


# --keep-white's weight on the white batches' distillation loss. That loss is the relative growth of an image's MSE
# (0.023 for -0.1 dB) while the real batches' log-mse moves by 0.23 per dB, so at weight 1 the run traded far more
# white-noise quality for real-noise gains than the bar allows (BENCHMARKS.md, keepwhite1); 20 prices 0.1 dB of
# white noise like half a dB of real noise.
KEEP_WHITE_WEIGHT = 20.0


def keeps_white(settings: TrainSettings, real: bool, camera: bool) -> bool:
    """With --keep-white, a white-noise batch (neither a real pair nor the camera protocol's) is taught by the
    frozen --init model's output (distillation_loss), the others by their clean targets. A fine-tune on real
    pairs with clean targets everywhere lost PSNR on white noise within 600 steps (how much: BENCHMARKS.md, real2)
    though white batches were most of its diet: tied to the model it starts from, the white-noise behaviour
    has one target per input instead of a noisy one, and the capacity left moves towards real noise."""
    return settings.keep_white and not (real or camera)


def frozen_denoiser(settings: TrainSettings, model, device: torch.device):
    """The denoiser an estimator is trained through (``--through``), frozen; None when there is none.
    In training mode, so its output is not clipped to [0,1] and every error reaches the estimator."""
    if not settings.through:
        return None
    if not is_estimator(model):
        raise DenoiseError("--through is for --model estimator: it trains the estimator through a frozen denoiser")
    state = load_checkpoint(Path(settings.through))
    denoiser = build_model(config_from_dict(state["config"]))
    if is_estimator(denoiser) or not denoiser.config.sigma_map:
        raise DenoiseError(f"--through {settings.through} is not a denoiser that takes a noise map")
    denoiser.load_state_dict(state["model"])
    for parameter in denoiser.parameters():
        parameter.requires_grad_(False)
    return denoiser.to(device).train()


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise DenoiseError("--device cuda asked for, but torch sees no CUDA GPU; use --device cpu")
    return torch.device(name)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


class StopOnCtrlC:
    """The first Ctrl-C only sets ``requested``; the loop stops at the next step boundary and saves.

    A KeyboardInterrupt raised wherever the signal lands can surface inside torch's C++ code (a
    backward pass, a checkpoint being serialised) as another exception type, and then no checkpoint is
    written. A second Ctrl-C interrupts at once, as usual. Only the main thread can own the handler.
    """

    def __init__(self):
        self.requested = False
        self.previous = None

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def train(settings: TrainSettings, resume: bool = False, log: Callable[[str], None] = print) -> Path:
    """Fit a model; returns the path of the best checkpoint. Ctrl-C writes ``last.pt`` before stopping."""
    if settings.model not in CONFIGS:
        raise DenoiseError(f"unknown model {settings.model!r}; choose one of {', '.join(CONFIGS)}")
    if settings.loss not in LOSSES:
        raise DenoiseError(f"unknown loss {settings.loss!r}; choose one of {', '.join(LOSSES)}")
    if settings.anchor not in ANCHORS:
        raise DenoiseError(f"unknown anchor {settings.anchor!r}; choose one of {', '.join(ANCHORS)}")
    if settings.protocol not in TRAIN_PROTOCOLS:
        raise DenoiseError(f"unknown noise protocol {settings.protocol!r}; choose one of {', '.join(TRAIN_PROTOCOLS)}")
    if settings.threads:
        torch.set_num_threads(settings.threads)
    device = pick_device(settings.device)
    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(settings.seed)
    model = build_model(settings.model)
    if settings.qat:
        if is_estimator(model):
            raise DenoiseError("--qat is for the denoisers; the noise estimator stays FP32")
        if not (settings.init or resume):
            raise DenoiseError("--qat fine-tunes a trained model: give it one with --init CHECKPOINT")
        quantize.prepare_qat(model)  # before the optimizer is made: it holds the parameters of this model
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    step, best, state = 0, -math.inf, None
    last_path, best_path = out / "last.pt", out / "best.pt"
    if resume:
        if not last_path.is_file():
            raise DenoiseError(f"nothing to resume: {last_path} does not exist")
        state = load_checkpoint(last_path)
        check_resumable(state.get("settings", {}), settings, last_path)
        if state["config"] != model.config.to_dict():
            raise DenoiseError(f"{last_path} holds a different model configuration than --model {settings.model}; "
                               "start a new run with --out")
        load_weights(model, state)
        optimizer.load_state_dict(state["optimizer"])
        step, best = state["step"], state["best_val_psnr"]
        log(f"resumed from {last_path} at step {step}")
    elif settings.init:
        state = load_checkpoint(Path(settings.init))
        if state["config"] != model.config.to_dict():
            raise DenoiseError(f"--init {settings.init} holds a different model configuration than --model {settings.model}")
        load_weights(model, state)
        if settings.qat:  # a new QAT run trains on today's weight grid, whatever grid its --init was made on
            quantize.use_weight_limit(model, quantize.WEIGHT_LIMIT)
        log(f"starting from the weights of {settings.init} (step {state['step']})")
    if settings.keep_white and (settings.qat or is_estimator(model) or not (settings.init or resume)):
        raise DenoiseError("--keep-white is for a denoiser fine-tune without --qat: give it the model to keep with --init")
    teacher = fp32_teacher(settings, device) if settings.qat or settings.keep_white else None
    denoiser = frozen_denoiser(settings, model, device)
    model.to(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # few input shapes (one per source's crop): tune each once
        model.to(memory_format=torch.channels_last)
        for group in optimizer.state.values():  # optimizer moments were loaded on the CPU
            for key, value in group.items():
                if torch.is_tensor(value) and key != "step":
                    group[key] = value.to(device)
    atomic_write_text(out / "config.json", json.dumps({"settings": asdict(settings), "model": model.config.to_dict()}, indent=2))

    t0 = time.time()
    train_sources = [load_images(Path(d), "train") for d in settings.data]
    val_sources = [load_images(Path(d), "val") for d in settings.data]
    description = "; ".join(f"{Path(d).name}: {len(t)} training images" for d, t in zip(settings.data, train_sources))
    log(f"data: {description}; {sum(map(len, val_sources))} validation images ({time.time() - t0:.0f}s to load); "
        f"device {device_name(device)}")
    sampler = MixedSampler(train_sources, settings.crop, settings.seed + step)  # a resumed run draws new crops
    sigma_tops = [sigma_top(settings, Path(d)) for d in settings.data]
    photo = [is_image_folder(Path(d)) for d in settings.data]
    # Validate only at levels the run trains on: a best checkpoint chosen partly at an untrained level is
    # chosen by noise (seen with the estimator, trained up to 0.4: its sigma-1.0 score decided "best").
    val_sigmas = [s for s in VAL_SIGMAS if settings.sigma_min <= s <= settings.sigma_max] or [settings.sigma_max]
    pairs = validation_set(val_sources, photo, settings.val_images, val_sigmas, settings.protocol, settings.seed)
    real_train_sets = [load_pairs(Path(folder), "train") for folder in settings.pairs]
    real_train = [pair for pairs_of_folder in real_train_sets for pair in pairs_of_folder]
    real_val = [pair for folder in settings.pairs for pair in load_pairs(Path(folder), "val")]
    pairs += pair_validation_set(real_val)
    if settings.pairs:
        log(f"real pairs: {len(real_train)} to train on, {len(real_val)} held out, {settings.pairs_share:.0%} of the batches")
        description += "; real pairs " + ", ".join(f"{Path(folder).name}: {len(part)}" for folder, part in
                                                   zip(settings.pairs, real_train_sets)) + f" ({settings.pairs_share:.0%} of batches)"
    real_sampler = PairSampler(real_train, settings.crop, settings.seed + 3 + step) if settings.pairs else None
    gen = torch.Generator(device=device).manual_seed(settings.seed + 1 + step)
    rng = np.random.default_rng(settings.seed + 2 + step)  # camera noise is drawn in numpy
    meta = {"data": "; ".join(settings.data),
            "data_description": f"{description} (every {VALIDATION_EVERY}th image held out for validation)",
            "device": device_name(device), "torch": str(torch.__version__),
            "train_seconds": state["meta"].get("train_seconds", 0.0) if resume else 0.0}
    if settings.init and not resume:  # the card then says what this run was fine-tuned from
        meta["init"] = {"checkpoint": settings.init, "steps": state["step"], "train_seconds": state["meta"].get("train_seconds", 0.0),
                        "data_description": state["meta"].get("data_description"), "settings": state.get("settings", {}),
                        "device": state["meta"].get("device"), "init": state["meta"].get("init"),  # the whole chain
                        **({"weight_average": state["meta"]["weight_average"]} if "weight_average" in state["meta"] else {})}
    elif resume:
        meta["init"] = state["meta"].get("init")
    seconds_before = meta["train_seconds"]

    def progress() -> float:  # fraction of the run done, by steps or by the time budget
        done = step / settings.steps
        if settings.minutes:
            done = max(done, meta["train_seconds"] / (60 * settings.minutes))
        return min(done, 1.0)

    def lr_now() -> float:  # cosine decay to 5%; a fine-tune (--init) warms up first: a fresh Adam's
        # first steps are large, and on trained weights they undo some of the training
        warmup = min(1.0, (step + 1) / WARMUP_STEPS) if settings.init else 1.0
        return warmup * settings.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress())))

    model.train()
    start, first_step = time.time(), step
    data_seconds = 0.0  # time spent drawing batches: on a GPU, the share the CPU may be holding it back
    bar = ProgressBar("step")
    bar.start(settings.steps, step)
    mean_val = None
    logfile = open(out / "log.jsonl", "a")
    try:
        with StopOnCtrlC() as ctrl_c:
            while progress() < 1.0:
                if ctrl_c.requested:  # a clean point: the last step is complete
                    raise KeyboardInterrupt
                t_data = time.perf_counter()
                real = real_sampler is not None and rng.random() < settings.pairs_share
                camera = False
                if real:
                    noisy, clean, level = (torch.from_numpy(a).to(device) for a in real_sampler.batch(settings.batch_size))
                else:
                    source, batch = sampler.batch(settings.batch_size)
                    camera = uses_camera(settings.protocol, photo[source], rng)
                    if camera:
                        noisy, clean, level = (torch.from_numpy(a).to(device) for a in camera_batch(batch, rng))
                    else:
                        clean = to_training_tensor(batch, device)
                        top = sigma_tops[source]
                        level = settings.sigma_min + (top - settings.sigma_min) * torch.rand(len(clean), generator=gen, device=device)
                        noisy = add_noise(clean, level, settings.protocol, gen)
                data_seconds += time.perf_counter() - t_data
                if device.type == "cuda":
                    noisy = noisy.contiguous(memory_format=torch.channels_last)
                for group in optimizer.param_groups:
                    group["lr"] = lr_now()
                if settings.qat and progress() >= qat.OBSERVE_FRACTION:
                    quantize.freeze_ranges(model)  # the rest of the run trains against the ranges that ship
                # QAT runs in float32 everywhere: its fake quantization rounds on the grid the INT8 model uses
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda" and not settings.qat):
                    if is_estimator(model) and denoiser is not None:
                        estimate = model(noisy).float()
                        anchored = not real and not (camera and settings.anchor == "white")
                        loss = through_loss(estimate, level, denoiser(noisy, estimate), clean, anchored=anchored)
                    elif is_estimator(model):
                        loss = estimator_loss(model(noisy).float(), as_map(level, noisy))
                    elif teacher is not None and (settings.qat or keeps_white(settings, real, camera)):
                        with torch.no_grad():
                            target = teacher(noisy, level)
                        loss = distillation_loss(model(noisy, level), target, clean)
                        if not settings.qat:
                            loss = KEEP_WHITE_WEIGHT * loss
                    else:
                        loss = batch_loss(model(noisy, level).float(), clean, settings.loss)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
                meta["train_seconds"] = seconds_before + time.time() - start
                done = progress() >= 1.0
                if step % settings.val_every == 0 or done:
                    scores = validate(model, pairs, device, denoiser)
                    mean_val = float(np.mean(list(scores.values())))
                    rate = (time.time() - start) / max(1, step - first_step)
                    entry = {"step": step, "loss": loss.item(), "val_psnr": scores, "lr": lr_now(),
                             "seconds": round(meta["train_seconds"], 1)}
                    logfile.write(json.dumps(entry) + "\n")
                    logfile.flush()
                    meta["val_psnr"] = scores
                    if mean_val > best:
                        best = mean_val
                        save_checkpoint(best_path, model, optimizer, step, best, settings, meta)
                    save_checkpoint(last_path, model, optimizer, step, best, settings, meta)
                    log(f"step {step}/{settings.steps} loss {loss.item():.5f} "
                        + ("val level error (dB) " + " ".join(f"s{k}={-v:.2f}" for k, v in scores.items())
                           if is_estimator(model) and denoiser is None
                           else "val PSNR " + " ".join(f"s{k}={v:.2f}" for k, v in scores.items()))
                        + f" | {rate * 1000:.0f} ms/step ({data_seconds * 1000 / max(1, step - first_step):.0f} drawing batches),"
                        + f" ETA {rate * (settings.steps - step) / 60:.1f} min")
                if bar.active:  # loss.item() waits for the GPU: only pay for it when a bar shows it
                    bar.update(f"loss={loss.item():.5f}, val_psnr={'-' if mean_val is None else f'{mean_val:.2f}'}")
    except KeyboardInterrupt:
        save_checkpoint(last_path, model, optimizer, step, best, settings, meta)
        log(f"interrupted: saved {last_path} at step {step}; continue with --resume")
        raise
    finally:
        bar.close()
        logfile.close()
    return best_path if best_path.exists() else last_path
