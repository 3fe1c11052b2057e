"""`denoise batch`: a folder (or files) in, denoised images and a manifest out."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import click

from denoise.commands.common import SigmaType, StopSignals, engine_options, strength_option, user_errors
from denoise.errors import DenoiseError
from denoise.formats import OUTPUT_SUFFIXES
from denoise.progress import ProgressBar
from denoise.runtime.tiling import DEFAULT_MAX_BATCH, DEFAULT_TILE


OUTPUT_FORMATS = sorted(suffix.lstrip(".") for suffix in OUTPUT_SUFFIXES)  # what --format may name


@click.command()
@click.argument("inputs", nargs=-1, type=click.Path(path_type=Path))  # checked in batch(): the output is what is missing
@click.argument("output_dir", type=click.Path(path_type=Path))
@click.option("--sigma", type=SigmaType(), default="auto", show_default=True,
              help="Noise level on [0,1] (0.1, 25/255), or 'auto': a noise map estimated per image.")
@strength_option("Scale the noise level, given or estimated. Result too smooth or waxy (fine detail gone): try 0.7; "
                 "grain or colour blotches left: try 1.3 to 1.5. 1 is what measured best on real camera photos.")
@engine_options
@click.option("--overwrite", is_flag=True, help="Redo outputs that already exist (default: skip them).")
@click.option("--manifest", type=click.Path(path_type=Path), default=None,
              help="JSON Lines manifest path (default: OUTPUT_DIR/denoise-manifest.jsonl).")
@click.option("--jpeg-quality", type=click.IntRange(1, 100), default=95, show_default=True,
              help="Quality of JPEG, WebP, AVIF and HEIC outputs.")
@click.option("--format", "fmt", type=click.Choice(OUTPUT_FORMATS), default=None,
              help="Write every output in this format (default: the input's; a camera RAW's: a 16-bit tif). "
                   "dng: a linear DNG, for camera RAW inputs.")
@click.option("--glob", "pattern", default="*", show_default=True,
              help="Shell-style pattern on paths relative to the input folder ('*' also matches '/'; case-insensitive: '*.jpg' takes IMG_1.JPG), e.g. 'raw/*.png'.")
@click.option("--follow-symlinks", is_flag=True, help="Follow links that lead outside the input folders.")
@click.option("--tile", type=click.IntRange(16), default=DEFAULT_TILE, show_default=True,
              help="Tile size in pixels: bounds memory; the result does not depend on it.")
@click.option("--max-batch", type=click.IntRange(1), default=DEFAULT_MAX_BATCH, show_default=True,
              help="Tiles (of one shape, from any images) run together; more uses more memory.")
@click.option("--ensemble", is_flag=True,
              help="Average the results on 8 flips/rotations of each image: a little better, 8x slower.")
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
    from denoise.job.batch import denoise_folder
    from denoise.job.options import EngineOptions, JobOptions
    from denoise.job.plan import check_inputs
    from denoise.job.shards import Shard
    from denoise.runtime.denoiser import Denoiser

    if not inputs:  # one path given: Click took it as OUTPUT_DIR
        raise click.UsageError(f"missing the output: give it after the input, e.g. denoise batch {output_dir} ./clean")

    given = check_inputs(list(inputs), output_dir)  # before loading the model: the cheapest mistakes first
    if ray_address and not given.single_folder:
        raise DenoiseError("--ray takes one input folder (files and several inputs run without --ray)")
    if ray_address and (shard or dry_run or manifest):
        raise DenoiseError("--ray cannot be combined with --shard, --dry-run or --manifest")
    job = JobOptions(sigma=sigma, strength=strength, overwrite=overwrite, jpeg_quality=jpeg_quality, pattern=pattern,
                     follow_symlinks=follow_symlinks, fmt=fmt, manifest_path=manifest, dry_run=dry_run,
                     shard=Shard.parse(shard) if shard else None)
    engine = EngineOptions(model=model, backend=backend, precision=precision, estimator=estimator, tile=tile,
                           max_batch=max_batch, ensemble=ensemble)
    bar = ProgressBar("file", enabled=sys.stderr.isatty() and not quiet and not dry_run and not ray_address)
    report = file_reporter(bar, dry_run, quiet)
    if ray_address:
        from denoise.job.ray_batch import run_ray_batch

        summary = run_ray_batch(given.single_folder, output_dir, job, engine, address=None if ray_address == "local"
                                else ray_address, workers=workers, gpus_per_worker=gpus_per_worker, on_file=report)
        backend_name = "ray"
    else:
        with Denoiser(**asdict(engine)) as denoiser, StopSignals() as signals:
            summary = signals.run(lambda: denoise_folder(denoiser, given, output_dir, options=job, on_file=report,
                                                         on_plan=bar.start, interrupted=signals.received))
            backend_name = denoiser.backend_name
            if denoiser.raw_backend_name:  # camera RAWs ran on the RAW model, beside it
                backend_name += f"; RAWs: {denoiser.raw_backend_name}"
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
