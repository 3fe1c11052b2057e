"""`denoise train`: the options of a training run (the training itself is denoise/train, with torch)."""

from __future__ import annotations

from pathlib import Path

import click

from denoise.commands.common import SigmaType, user_errors
from denoise.errors import DenoiseError
from denoise.noise import TRAIN_PROTOCOLS
from denoise.train import ANCHORS, LOSSES


@click.command()
@click.option("--data", type=click.Path(path_type=Path), multiple=True,
              help="An image folder, the CIFAR-10 .tar.gz archive, or a cifar-10-batches-py folder; repeat to mix "
                   "(required, except with --resume).")
@click.option("--pairs", type=click.Path(exists=True, file_okay=False, path_type=Path), multiple=True,
              help="A folder of real camera pairs (noisy/ and clean/, same file names; e.g. SIDD, RENOIR); repeat to mix. "
                   "Every 5th scene is held out for validation (denoise/train/pairs.py).")
@click.option("--pairs-share", type=click.FloatRange(0, 1), default=0.25, show_default=True,
              help="Share of the batches drawn from --pairs; the rest from --data with --protocol.")
@click.option("--through", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="With --model estimator: train the estimator through this frozen denoiser checkpoint, for the level "
                   "that minimizes the denoiser's error (CBDNet's reason), not only the true level.")
@click.option("--anchor", type=click.Choice(ANCHORS), default="synthesized", show_default=True,
              help="With --through: the synthesized batches whose estimate is also held to their exact level -- all, or "
                   "the white-noise ones only (then the camera protocol's, JPEG'd, are left to the denoiser's error).")
@click.option("--model", "model_name", default="fast", show_default=True,
              help="Model configuration: a name in CONFIGS of denoise/model.py (fast, seed, ...; estimator: the "
                   "noise-map estimator of --sigma auto).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("runs/default"), show_default=True,
              help="Run folder: config, last.pt, best.pt, log.jsonl.")
@click.option("--steps", type=click.IntRange(1), default=2000, show_default=True)
@click.option("--minutes", type=click.FloatRange(0), default=0.0, help="Stop after this much training time (0: none).")
@click.option("--device", type=click.Choice(["auto", "cuda", "cpu"]), default="auto", show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True)
@click.option("--crop", type=click.IntRange(2), default=32, show_default=True, help="Training patch size in pixels.")
@click.option("--lr", type=float, default=5e-4, show_default=True)
@click.option("--sigma-min", type=SigmaType(allow_auto=False), default=0.0, show_default=True)
@click.option("--sigma-max", type=SigmaType(allow_auto=False), default=1.0, show_default=True)
@click.option("--folder-sigma-max", type=SigmaType(allow_auto=False), default=None,
              help="Upper sigma for batches from image folders (photos); CIFAR batches keep --sigma-max. Default: --sigma-max.")
@click.option("--protocol", type=click.Choice(TRAIN_PROTOCOLS), default="clip", show_default=True,
              help="Training noise; camera: synthesized camera noise (denoise/camera_noise.py); mixed: clip, gaussian "
                   "or uint8 drawn per image, and camera noise on half the photo batches.")
@click.option("--val-every", type=click.IntRange(1), default=200, show_default=True)
@click.option("--val-images", type=click.IntRange(1), default=200, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=click.IntRange(0), default=0, help="CPU threads for torch (0: its default).")
@click.option("--loss", type=click.Choice(LOSSES), default="mse", show_default=True,
              help="log-mse weighs every image the same in decibels (helps low sigma in a one-for-all-sigma model).")
@click.option("--init", "init", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Start from this checkpoint's weights (fine-tune: new optimizer and LR schedule).")
@click.option("--qat", is_flag=True,
              help="Quantization-aware fine-tune of the --init model for the INT8 CPU model, taught by the --init model's "
                   "own outputs (--loss does not apply); then: denoise export --int8.")
@click.option("--keep-white", is_flag=True,
              help="A denoiser fine-tune (--init) on real pairs or camera noise: the white-noise batches are taught by the "
                   "--init model's own outputs, so the model learns real noise without drifting on white noise.")
@click.option("--resume", is_flag=True,
              help="Continue the run in OUT from its last.pt, with its settings: --steps and --minutes (and --threads, "
                   "--device) may change; any other option given must match the run's.")
@user_errors
def train(data, pairs, pairs_share, through, anchor, model_name, out, steps, minutes, device, batch_size, crop, lr, sigma_min, sigma_max, folder_sigma_max, protocol, val_every,
          val_images, seed, threads, loss, init, qat, keep_white, resume):
    """Train a denoising model and write checkpoints (needs the `train` extra).

    \b
    Example:
      denoise train --data cifar10-jpeg.tar.gz --steps 2000 --out runs/first
      denoise train --out runs/first --resume --minutes 30
      denoise train --data cifar10-jpeg.tar.gz --init runs/first/best.pt --loss log-mse --out runs/tuned
      denoise train --data photos/ --init runs/tuned/best.pt --qat --lr 2e-5 --out runs/int8
      denoise train --data photos/ --pairs sidd/ --protocol mixed --init runs/tuned/best.pt --keep-white --out runs/real
      denoise train --model estimator --data photos/ --pairs sidd/ --through runs/real/best.pt --out runs/est
    """
    if sigma_min > sigma_max:
        raise DenoiseError(f"--sigma-min {sigma_min} is above --sigma-max {sigma_max}")
    if folder_sigma_max is not None and folder_sigma_max < sigma_min:
        raise DenoiseError(f"--sigma-min {sigma_min} is above --folder-sigma-max {folder_sigma_max}")
    try:
        from denoise.train.loop import TrainSettings, resume_settings, train as run_training
    except ImportError:
        raise DenoiseError("training needs torch; install it with: pip install 'denoise[train]'") from None
    if not data and not resume:
        raise DenoiseError("--data is required (an image folder, the CIFAR-10 archive, ...); repeat it to mix sources")
    context = click.get_current_context()
    values = training_values(context.params)
    if resume:  # the run's own settings, with what this command line says explicitly
        given = {field: value for field, value in values.items()
                 if context.get_parameter_source(OPTION_OF.get(field, field)) == click.core.ParameterSource.COMMANDLINE}
        settings = resume_settings(out, given)
    else:
        settings = TrainSettings(**values)
    best = run_training(settings, resume=resume, log=lambda line: click.echo(line, err=True))
    click.echo(str(best))


OPTION_OF = {"model": "model_name"}  # TrainSettings field -> `denoise train` option, where the names differ


def training_values(params: dict) -> dict:
    """TrainSettings' fields from `denoise train`'s options (every field is an option of the same name, but
    --model, and paths and an unset --folder-sigma-max in the types the settings keep)."""
    values = {field: params[OPTION_OF.get(field, field)] for field in
              ("model", "steps", "minutes", "device", "batch_size", "crop", "lr", "sigma_min", "sigma_max", "protocol",
               "val_every", "val_images", "seed", "threads", "loss", "qat", "pairs_share", "anchor", "keep_white")}
    return {**values, "data": [str(d) for d in params["data"]], "out": str(params["out"]),
            "pairs": [str(d) for d in params["pairs"]], "through": str(params["through"]) if params["through"] else "",
            "folder_sigma_max": params["folder_sigma_max"] or 0.0, "init": str(params["init"]) if params["init"] else ""}
