"""The ``denoise`` command line: parses options, calls the library, maps errors to exit codes.

Exit codes: 0 all done; 1 fatal error (one line on stderr, no traceback); 2 usage error (Click's
own); 3 finished, but some inputs failed (each named on stderr and in the manifest).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

import click

from denoise import __version__
from denoise.errors import BackendFault, DenoiseError
from denoise.noise import PROTOCOLS, TRAIN_PROTOCOLS, parse_sigma
from denoise.progress import ProgressBar
from denoise.train import ANCHORS, LOSSES
from denoise.formats import IMAGE_SUFFIXES
from denoise.runtime.backends import BACKENDS
from denoise.runtime.precision import PRECISIONS
from denoise.runtime.tiling import DEFAULT_MAX_BATCH, DEFAULT_TILE


class SigmaType(click.ParamType):
    """A noise level on [0,1] ("0.3"), a fraction ("25/255"), or "auto" where allowed."""

    name = "sigma"

    def __init__(self, allow_auto: bool = True):
        self.allow_auto = allow_auto

    def convert(self, value, param, ctx):
        if isinstance(value, float):
            return value
        if self.allow_auto and str(value).strip().lower() == "auto":
            return "auto"
        try:
            sigma = parse_sigma(value)
        except DenoiseError as exc:
            self.fail(str(exc), param, ctx)
        if sigma > 1.0:
            self.fail(f"{value} is above 1: sigma is on the [0,1] scale (write 25/255 for 25 on the 0-255 scale)",
                      param, ctx)
        return sigma


class StrengthType(click.ParamType):
    """A factor above 0 that scales the noise level (``--strength``)."""

    name = "factor"

    def convert(self, value, param, ctx):
        from denoise.runtime.levels import check_strength

        try:
            return check_strength(value)
        except DenoiseError as exc:
            self.fail(str(exc), param, ctx)


class StopSignals:
    """While a batch runs: the first SIGTERM or SIGINT (schedulers stop jobs with SIGTERM, then SIGKILL after a
    grace period) asks the run to stop at the next batch of tiles: the image under way is abandoned (a re-run
    does it) and the writes under way finish; a second one stops at once (the next run removes a temporary
    file it may leave). ``received()``: the first signal's name or "".

    Python runs signal handlers in the main thread only, between bytecodes: a main thread inside ONNX
    Runtime's run hears a signal only when the run returns, and two signals during one run as one. So the
    job runs in another thread (``run``) while the main thread waits, and hears every signal at once."""

    def __init__(self):
        self.name, self.previous = "", {}

    def received(self) -> str:
        return self.name

    def _handle(self, signum, frame):
        if self.name:
            os._exit(128 + signum)
        self.name = signal.Signals(signum).name
        click.echo(f"denoise: {self.name}: stopping after the tiles being denoised; the image under way is left for a "
                   "re-run, files being written finish (send it again to stop at once)", err=True)

    @staticmethod
    def run(call):
        """``call()`` in a worker thread, its result or its exception here, while this (main) thread waits."""
        outcome = {}

        def target():
            try:
                outcome["result"] = call()
            except BaseException as exc:  # noqa: BLE001 -- re-raised in the main thread below
                outcome["error"] = exc

        worker = threading.Thread(target=target, name="batch", daemon=True)
        worker.start()
        while worker.is_alive():
            worker.join(0.05)
        if "error" in outcome:
            raise outcome["error"]
        return outcome["result"]

    def __enter__(self):
        for signum in (signal.SIGTERM, signal.SIGINT):
            self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        if self.name:  # stopping: a second signal while the summary is printed still exits at once, with 128 + signum
            return
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


def user_errors(command):
    """Turn DenoiseError, OSError and BackendFault into a one-line message and exit code 1; Ctrl-C into 130.
    (An OSError that one input causes is recorded per file by the batch job and never reaches here.)"""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except DenoiseError as exc:
            click.echo(f"denoise: error: {exc}", err=True)
            sys.exit(1)
        except BrokenPipeError:  # `denoise info | head`: the reader has what it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush does not fail again
            sys.exit(0)
        except OSError as exc:  # the machine's, not ours: a full disk, a permission, a vanished folder
            click.echo(f"denoise: error: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""), err=True)
            sys.exit(1)
        except BackendFault as exc:  # the backend's or the GPU's, not the input's: traceback with -v
            logging.getLogger("denoise").info("backend fault", exc_info=exc)
            click.echo(f"denoise: error: backend fault: {exc} (-v shows the traceback)", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("denoise: interrupted", err=True)
            sys.exit(130)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="denoise")
@click.option("-v", "--verbose", is_flag=True, help="Log backend choices and other details.")
def main(verbose: bool):
    """Remove the noise from photos, a folder at a time; the noise level is estimated per image.

    \b
    Example:
      denoise batch ./camera-photos ./clean
      denoise batch ./noisy ./clean --sigma 25/255     # a known white-noise level
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="denoise: %(message)s")
    from denoise.runtime.images import allow_megapixels, max_megapixels

    allow_megapixels(max_megapixels())  # this process is ours: Pillow may open what DENOISE_MAX_MEGAPIXELS allows


def run():
    """Console entry point: like ``main()``, but a usage error is one line on stderr (exit code 2)."""
    try:
        main.main(standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:  # bare `denoise`: the help, not an error
        click.echo(exc.ctx.get_help() if exc.ctx else exc.format_message(), err=True)
        sys.exit(2)
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else "denoise"
        click.echo(f"{where}: error: {exc.format_message()} (see '{where} --help')", err=True)
        sys.exit(2)
    except click.Abort:
        click.echo("denoise: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"denoise: error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)


OUTPUT_FORMATS = sorted(suffix.lstrip(".") for suffix in IMAGE_SUFFIXES)  # what --format may name


@main.command()
@click.argument("inputs", nargs=-1, type=click.Path(path_type=Path))  # checked in batch(): the output is what is missing
@click.argument("output_dir", type=click.Path(path_type=Path))
@click.option("--sigma", type=SigmaType(), default="auto", show_default=True,
              help="Noise level on [0,1] (0.1, 25/255), or 'auto': a noise map estimated per image.")
@click.option("--strength", type=StrengthType(), default=1.0, show_default=True,
              help="Scale the noise level, given or estimated. Result too smooth or waxy (fine detail gone): try 0.7; "
                   "grain or colour blotches left: try 1.5. 1 is what measured best on real camera photos.")
@click.option("--model", type=click.Path(path_type=Path), default=None, help="An exported .onnx model (default: bundled).")
@click.option("--estimator", type=click.Path(path_type=Path), default=None,
              help="The noise estimator .onnx of --sigma auto (default: bundled).")
@click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True,
              help="auto: the first of tensorrt, cuda, torch, cpu that works here (-v says why others were skipped).")
@click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True,
              help="Of the CPU model: auto runs INT8 where this CPU has AVX2, VNNI, AMX or Arm's dot product and the "
                   "model has an INT8 version, else FP32 (GPUs run FP16); `denoise info` says which and why.")
@click.option("--overwrite", is_flag=True, help="Redo outputs that already exist (default: skip them).")
@click.option("--manifest", type=click.Path(path_type=Path), default=None,
              help="JSON Lines manifest path (default: OUTPUT_DIR/denoise-manifest.jsonl).")
@click.option("--jpeg-quality", type=click.IntRange(1, 100), default=95, show_default=True,
              help="Quality of JPEG, WebP, AVIF and HEIC outputs.")
@click.option("--format", "fmt", type=click.Choice(OUTPUT_FORMATS), default=None,
              help="Write every output in this format (default: the input's).")
@click.option("--glob", "pattern", default="*", show_default=True,
              help="Shell-style pattern on paths relative to the input folder ('*' also matches '/'; case-insensitive: '*.jpg' takes IMG_1.JPG), e.g. 'raw/*.png'.")
@click.option("--follow-symlinks", is_flag=True, help="Follow links that lead outside the input folders.")
@click.option("--tile", type=click.IntRange(16), default=DEFAULT_TILE, show_default=True,
              help="Tile size in pixels: bounds memory; the result does not depend on it.")
@click.option("--max-batch", type=click.IntRange(1), default=DEFAULT_MAX_BATCH, show_default=True,
              help="Tiles (of one shape, from any images) run together; more uses more memory.")
@click.option("--ensemble", is_flag=True,
              help="Average the results on 8 flips/rotations of each image: better (about +0.15 dB), 8x slower.")
@click.option("--dry-run", is_flag=True, help="List what would be done; write nothing.")
@click.option("--shard", default=None, metavar="K/N",
              help="Only this job's share of the files: K from 1 to N (e.g. $SLURM_ARRAY_TASK_ID/16 with --array=1-16), "
                   "for array jobs; see `denoise manifest merge`.")
@click.option("--ray", "ray_address", is_flag=False, flag_value="local", default=None, metavar="[ADDRESS]",
              help="Run on Ray (extra `ray`): a cluster ADDRESS such as 'auto', or no value for a local Ray.")
@click.option("--workers", type=click.IntRange(1), default=2, show_default=True, help="Ray actors (denoisers).")
@click.option("--gpus-per-worker", type=click.FloatRange(0), default=0.0, show_default=True,
              help="GPUs each Ray actor reserves (1 on GPU clusters).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="Only print errors.")
@user_errors
def batch(inputs, output_dir, sigma, strength, model, estimator, backend, precision, overwrite, manifest, jpeg_quality, fmt, pattern,
          follow_symlinks, tile, max_batch, ensemble, dry_run, shard, ray_address, workers, gpus_per_worker, as_json, quiet):
    """Denoise every image under INPUTS into OUTPUT_DIR (same names, formats and sub-folders).

    INPUTS is a folder (mirrored into OUTPUT_DIR), or image files and folders (each into OUTPUT_DIR under its
    name); one file may also go to a named file (denoise batch photo.jpg clean.jpg).

    Inputs are never modified; outputs that already exist are skipped, so re-running a stopped
    job finishes it. Without --sigma the noise is estimated per image (a per-pixel map; camera noise
    grows with brightness), and the manifest records the level used.

    \b
    Example:
      denoise batch ./camera-photos ./clean
      denoise batch IMG_0042.jpg IMG_0042-clean.jpg
      denoise batch a.jpg b.png ./more-photos ./clean
      denoise batch ./camera-photos ./clean --strength 0.8
      denoise batch ./noisy ./clean --sigma 0.3
      denoise batch ./scans ./out --sigma 25/255 --json
      denoise batch /shared/in /shared/out --sigma auto --shard 3/16   # K from 1 to N
      denoise batch /shared/in /shared/out --sigma 0.1 --ray auto --workers 8 --gpus-per-worker 1
    """
    from denoise.runtime.batch import check_inputs
    from denoise.runtime.denoiser import Denoiser
    from denoise.runtime.shards import Shard

    if not inputs:  # one path given: Click took it as OUTPUT_DIR
        raise click.UsageError(f"missing the output: give it after the input, e.g. denoise batch {output_dir} ./clean")

    given = check_inputs(list(inputs), output_dir)  # before loading the model: the cheapest mistakes first
    if ray_address and not given.single_folder:
        raise DenoiseError("--ray takes one input folder (files and several inputs run without --ray)")
    input_dir = given.single_folder or list(inputs)
    shard = Shard.parse(shard) if shard else None
    if ray_address and (shard or dry_run or manifest):
        raise DenoiseError("--ray cannot be combined with --shard, --dry-run or --manifest")
    bar = ProgressBar("file", enabled=sys.stderr.isatty() and not quiet and not dry_run and not ray_address)
    report = file_reporter(bar, dry_run, quiet)
    options = dict(overwrite=overwrite, jpeg_quality=jpeg_quality, pattern=pattern, follow_symlinks=follow_symlinks,
                   fmt=fmt, on_file=report, strength=strength)
    if ray_address:
        from denoise.runtime.ray_batch import run_ray_batch

        summary = run_ray_batch(input_dir, output_dir, sigma, address=None if ray_address == "local" else ray_address,
                                model=model, backend=backend, precision=precision, workers=workers, gpus_per_worker=gpus_per_worker,
                                ensemble=ensemble, estimator=estimator, tile=tile, max_batch=max_batch, **options)
        backend_name = "ray"
    else:
        with Denoiser(model, backend=backend, tile=tile, max_batch=max_batch, ensemble=ensemble,
                      estimator=estimator, precision=precision) as denoiser, StopSignals() as signals:
            summary = signals.run(lambda: denoiser.denoise_folder(
                input_dir, output_dir, sigma, manifest_path=manifest, dry_run=dry_run, on_plan=bar.start, shard=shard,
                interrupted=signals.received, **options))
            backend_name = denoiser.backend_name
    bar.close()
    if summary.note and not quiet:
        click.echo(summary.note, err=True)
    if summary.stopped:
        click.echo(f"denoise: error: {summary.stopped}", err=True)
    if summary.interrupted:
        click.echo(f"denoise: stopped by {summary.interrupted}: {summary.ok} file(s) done; re-run the same command to "
                   "do the rest (the image that was under way included)", err=True)
    if dry_run:
        return
    if as_json:
        click.echo(json.dumps({**summary.to_dict(), "backend": backend_name}))
    if not quiet or summary.failed:
        rate = summary.megapixels / summary.seconds if summary.seconds else 0.0
        redone = f" ({summary.redone} made again: other settings than their earlier run)" if summary.redone else ""
        click.echo(f"done: {summary.ok} denoised{redone}, {summary.skipped} skipped, {summary.failed} failed "
                   f"in {summary.seconds:.1f}s ({rate:.2f} MP/s, {backend_name})" + (f"; manifest {summary.manifest}" if summary.manifest else ""),
                   err=True)
    sys.exit(summary.exit_code)


def file_reporter(bar: ProgressBar, dry_run: bool, quiet: bool):
    """What `batch` prints per file: plan lines for --dry-run, failures always, the rest unless -q or a bar."""
    megapixels = [0.0]

    def report(record):
        megapixels[0] += record.get("megapixels", 0.0)
        bar.update(f"{megapixels[0] / bar.elapsed:.2f} MP/s" if bar.active else "")
        if dry_run:
            click.echo(f"{record['status']:<14} {record['path']}" + (f" -> {record['output']}" if record["output"] else "")
                       + (f" ({record['error']})" if record["error"] else ""))
        elif record["status"] == "failed":
            click.echo(f"failed  {record['error']}", err=True)
        elif quiet or bar.enabled:
            return
        elif record["status"] == "skipped":
            click.echo(f"skipped {record['path']}: {record['error']}", err=True)
        else:
            click.echo(f"ok      {record['path']} -> {record['output']}", err=True)

    return report


@main.group()
def manifest():
    """Work with the JSON Lines manifests that `denoise batch` writes."""


@manifest.command(name="merge")
@click.argument("input_dir", type=click.Path(path_type=Path))
@click.argument("output_dir", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@user_errors
def manifest_merge(input_dir, output_dir, as_json):
    """Combine the manifests in OUTPUT_DIR (e.g. of shards) and check them against INPUT_DIR.

    Writes OUTPUT_DIR/denoise-manifest.merged.jsonl and reports inputs that no run finished, that
    failed, or that were done twice. Exit code 0 when complete, 3 when not.

    \b
    Example:
      for k in 1 2 3; do denoise batch ./in ./out --sigma 0.1 --shard $k/3; done
      denoise manifest merge ./in ./out
    """
    from denoise.runtime.shards import merge_manifests

    report = merge_manifests(input_dir, output_dir)
    if as_json:
        click.echo(json.dumps(report.to_dict()))
    else:
        click.echo(f"{report.done} of {report.inputs} inputs done, from {len(report.manifests)} manifest(s)")
        for label, paths in (("missing", report.missing), ("failed", report.failed), ("done twice", report.done_twice)):
            for path in paths:
                click.echo(f"{label}: {path}")
    sys.exit(0 if report.complete else 3)


@main.command()
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


@main.command()
@click.argument("checkpoint", type=click.Path(path_type=Path), required=False)
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Output folder (default: the checkpoint's folder; ./denoise-export for the bundled model).")
@click.option("--fp16", is_flag=True, help="Also write and verify model.fp16.onnx (FP16 inside, FP32 in/out).")
@click.option("--int8", "int8_from", is_flag=False, flag_value="", default=None, metavar="[QAT_CHECKPOINT]",
              help="Also write and verify model.int8.onnx, the INT8 CPU model: of CHECKPOINT when it is a `denoise train "
                   "--qat` one, or of QAT_CHECKPOINT (a QAT fine-tune of CHECKPOINT), checked against CHECKPOINT's FP32 model.")
@click.option("--engine", is_flag=True, help="Also build a TensorRT engine into the engine cache (NVIDIA GPU).")
@click.option("--opset", type=click.IntRange(17, 23), default=18, show_default=True)
@click.option("--tile", type=(int, int), default=(DEFAULT_TILE, DEFAULT_TILE), show_default=True,
              help="Tile height and width the runtime uses: the engine's profile covers them plus overlap.")
@click.option("--max-batch", type=click.IntRange(1), default=DEFAULT_MAX_BATCH, show_default=True,
              help="Largest batch of tiles the engine accepts.")
@click.option("--version-compatible", is_flag=True, help="Engine runs on later TensorRT versions of the same major.")
@click.option("--hardware-compatible", is_flag=True, help="Engine runs on any Ampere or newer GPU (slower).")
@click.option("--verify-images", type=click.Path(path_type=Path), default=None,
              help="Clean images for the FP16 and INT8 PSNR checks (default: procedural test images).")
@user_errors
def export(checkpoint, out, fp16, int8_from, engine, opset, tile, max_batch, version_compatible, hardware_compatible,
           verify_images):
    """Export a checkpoint to verified ONNX (and FP16 ONNX, and a TensorRT engine) -- needs the `train` extra.

    Without CHECKPOINT, the bundled model's checkpoint is exported.

    \b
    Example:
      denoise export --fp16
      denoise export runs/first/best.pt --out models/first --fp16 --engine
      denoise export runs/int8/best.pt --out models/int8 --int8
      denoise export --fp16 --int8 denoise/weights/default.int8.pt      # the bundle, as it was made
    """
    try:
        from denoise.export.pipeline import export_model
    except ImportError:
        raise DenoiseError("export needs torch and onnx; install them with: pip install 'denoise[train]'") from None
    from denoise.weights import DEFAULT_CHECKPOINT

    if checkpoint is None:
        checkpoint, out = DEFAULT_CHECKPOINT, out or Path("denoise-export")
    out = out or Path(checkpoint).parent
    int8_from = None if int8_from is None else Path(int8_from) if int8_from else Path(checkpoint)
    export_model(checkpoint, out, fp16=fp16, int8_from=int8_from, engine=engine, opset=opset, tile=tile, max_batch=max_batch,
                 version_compatible=version_compatible, hardware_compatible=hardware_compatible,
                 verify_images=verify_images, say=click.echo)


@main.command(name="eval")
@click.argument("clean", type=click.Path(path_type=Path))
@click.option("--sigma", "sigmas", type=SigmaType(), multiple=True,
              help="Noise level(s) to test; repeat the option. Default: 0.1 0.3 0.5 (with --noisy: auto). "
                   "'auto' only with --noisy.")
@click.option("--protocol", "protocols", type=click.Choice(PROTOCOLS), multiple=True,
              help="Noise protocol(s); repeat the option. Default: clip (the seed's). camera: synthesized camera "
                   "noise of that strength, denoised with --sigma auto.")
@click.option("--noisy", "noisy_dir", type=click.Path(path_type=Path), default=None,
              help="Real noisy shots: CLEAN then holds their clean versions, matched by file name (e.g. CC15's real/ and mean/).")
@click.option("--strength", type=StrengthType(), default=1.0, show_default=True, help="With --noisy: scale the noise level.")
@click.option("--model", type=click.Path(path_type=Path), default=None, help="An exported .onnx model (default: bundled).")
@click.option("--estimator", type=click.Path(path_type=Path), default=None,
              help="The noise estimator .onnx of --sigma auto (default: bundled).")
@click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True,
              help="auto: the first of tensorrt, cuda, torch, cpu that works here (-v says why others were skipped).")
@click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True,
              help="Of the CPU model: auto runs INT8 where this CPU has AVX2, VNNI, AMX or Arm's dot product and the "
                   "model has an INT8 version, else FP32 (GPUs run FP16); `denoise info` says which and why.")
@click.option("--bm3d", "with_bm3d", is_flag=True, help="Also run CBM3D on the same noisy images (extra `eval`).")
@click.option("--ensemble", is_flag=True, help="Run the model as `denoise batch --ensemble` does (8 flips/rotations).")
@click.option("--limit", type=click.IntRange(1), default=None, help="Use only the first N images.")
@click.option("--held-out", is_flag=True,
              help="Of a folder, only the images `denoise train` holds out for validation (every 10th).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the synthetic noise.")
@click.option("--no-ssim", is_flag=True, help="Skip SSIM (faster).")
@click.option("--set-psnr", is_flag=True,
              help="Add the model's PSNR of the mean MSE over the set (how the seed notebook measured).")
@click.option("--format", "fmt", type=click.Choice(["markdown", "json"]), default="markdown", show_default=True)
@click.option("--grid", type=click.Path(path_type=Path), default=None,
              help="Write a PNG grid of clean / noisy / denoised rows (first 8 images).")
@click.option("--plot", type=click.Path(path_type=Path), default=None,
              help="Write a PSNR-versus-sigma PNG plot (extra `eval`).")
@user_errors
def eval_command(clean, sigmas, protocols, noisy_dir, strength, model, estimator, backend, precision, with_bm3d, ensemble, limit, held_out,
                 seed, no_ssim, set_psnr, fmt, grid, plot):
    """Add seeded noise to CLEAN images and report PSNR / SSIM of noisy and denoised versions.

    CLEAN is a folder of images, or the CIFAR-10 archive (.tar.gz) or cifar-10-batches-py folder,
    whose test split is used.

    \b
    Example:
      denoise eval ./clean-photos --sigma 15/255 --sigma 25/255 --protocol gaussian --bm3d
      denoise eval cifar10-jpeg.tar.gz --sigma 0.1 --sigma 0.5 --grid grid.png
      denoise eval ./cbsd68 --held-out --sigma 25/255 --protocol gaussian --bm3d
      denoise eval ./cbsd68 --held-out --sigma 0.03 --protocol camera
      denoise eval cc15/mean --noisy cc15/real
    """
    from denoise.evaluate import evaluate, evaluate_real, format_markdown, load_eval_images, load_real_pairs, save_grid, save_plot
    from denoise.runtime.denoiser import Denoiser

    if noisy_dir is None and "auto" in sigmas:
        raise DenoiseError("--sigma auto needs real noisy shots (--noisy DIR): synthetic noise has a known sigma")
    if noisy_dir is not None and (protocols or with_bm3d or held_out or grid or plot):
        raise DenoiseError("--noisy compares real shots with their clean versions: --protocol, --bm3d, --held-out, "
                           "--grid and --plot do not apply")
    with Denoiser(model, backend=backend, ensemble=ensemble, estimator=estimator, precision=precision) as denoiser:
        if noisy_dir is not None:
            _, noisy, clean_images = load_real_pairs(noisy_dir, clean, limit)
            rows = evaluate_real(denoiser, noisy, clean_images, sigmas or ("auto",), strength, with_ssim=not no_ssim)
            click.echo(json.dumps([r.to_dict() for r in rows]) if fmt == "json" else format_markdown(rows, set_psnr=set_psnr))
            return
        images = load_eval_images(clean, limit, held_out)
        rows, examples = evaluate(denoiser, images, sigmas or (0.1, 0.3, 0.5), protocols or ("clip",), seed,
                                  bm3d=with_bm3d, with_ssim=not no_ssim, keep=8 if grid else 0)
    if fmt == "json":
        click.echo(json.dumps([r.to_dict() for r in rows]))
    else:
        click.echo(format_markdown(rows, set_psnr=set_psnr))
    if grid:
        save_grid(examples, images, grid)
        click.echo(f"wrote {grid}", err=True)
    if plot:
        save_plot(rows, plot)
        click.echo(f"wrote {plot}", err=True)


def photo_sigma_note(stage: dict) -> str:
    top = stage.get("folder_sigma_max")
    return f" (photo batches at sigma <= {top:g})" if top else ""


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@user_errors
def info(as_json):
    """Show versions, available backends and the bundled model's card.

    \b
    Example:
      denoise info --json
    """
    from denoise.info import machine_report

    report = machine_report()
    providers, engines, machine_note = report["onnxruntime_providers"], report["engine_cache"]["engines"], report["tensorrt"]

    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"denoise {report['denoise']} on Python {report['python']} ({report['platform']})")
    for name, ver in report["packages"].items():
        click.echo(f"  {name:<16} {ver or '-'}")
    click.echo(f"ONNX Runtime providers available: {', '.join(providers) or 'none (install denoise[cpu])'}")
    click.echo("  note: the CUDA provider is only used if a session really obtains it (checked at run time)")
    click.echo(f"TensorRT: {machine_note}")
    click.echo(f"PyTorch backend (--backend torch): {'possible here (torch installed, an NVIDIA device present)' if report['backends']['torch'] else 'not here (needs torch with CUDA and an NVIDIA GPU)'}")
    int8 = report["cpu_int8"]
    click.echo(f"CPU precision (--precision auto): {int8['auto_runs'].upper()} -- {int8['why']}")
    click.echo(f"engine cache {report['engine_cache']['path']}: {len(engines)} engine(s)")
    for engine in engines:
        match = {True: "matches this machine", False: "does NOT match this machine",
                 None: "cannot tell here"}[engine["matches_this_machine"]]
        click.echo(f"  {engine['path']}: {engine['precision']} for {engine['gpu']}, TensorRT {engine['tensorrt']}, "
                   f"built {engine['built']} -- {match}")
    card = report["bundled_model"]["card"]
    click.echo(f"bundled model: {report['bundled_model']['path']}")
    if card:
        training = card.get("training", {})
        click.echo(f"  {card.get('architecture')} '{card.get('model_name')}', sigma range {card.get('sigma_range')}, "
                   f"{card.get('noise_protocol')} noise")
        click.echo(f"  trained on {card.get('training_data')}: {training.get('steps')} steps, "
                   f"{training.get('minutes')} min on {training.get('device')}{photo_sigma_note(training)}")
        stage = training.get("fine_tuned_from")
        while stage:  # earlier stages, newest first (a model trained with --init)
            click.echo(f"    fine-tuned from: {stage.get('steps')} steps, {stage.get('minutes')} min on {stage.get('device')}, "
                       f"{stage.get('protocol', 'clip')} noise{photo_sigma_note(stage)}, {stage.get('data')}")
            stage = stage.get("fine_tuned_from")
        scores = card.get("validation_psnr_db") or {}
        click.echo("  validation PSNR (dB): " + ", ".join(f"sigma {k}: {v:.2f}" for k, v in scores.items()))
    estimator = report["bundled_estimator"]["card"]
    if estimator:
        errors = estimator.get("validation_level_error_db") or {}
        click.echo(f"noise estimator (--sigma auto): {report['bundled_estimator']['path']}, receptive radius {estimator.get('receptive_radius')} px, "
                   f"trained on {estimator.get('training_data')}")
        click.echo("  validation level error (dB): " + ", ".join(f"{k}: {v:.2f}" for k, v in errors.items()))
