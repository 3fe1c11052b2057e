"""`denoise eval`: PSNR / SSIM of the model on clean images with seeded noise, or on real noisy shots."""

from __future__ import annotations

import json
from pathlib import Path

import click

from denoise.commands.common import SigmaType, engine_options, strength_option, user_errors
from denoise.errors import DenoiseError
from denoise.noise import PROTOCOLS


@click.command(name="eval")
@click.argument("clean", type=click.Path(path_type=Path))
@click.option("--sigma", "sigmas", type=SigmaType(), multiple=True,
              help="Noise level(s) to test; repeat the option. Default: 0.1 0.3 0.5 (with --noisy: auto). "
                   "'auto' only with --noisy.")
@click.option("--protocol", "protocols", type=click.Choice(PROTOCOLS), multiple=True,
              help="Noise protocol(s); repeat the option. Default: clip (the seed's). camera: synthesized camera "
                   "noise of that strength, denoised with --sigma auto.")
@click.option("--noisy", "noisy_dir", type=click.Path(path_type=Path), default=None,
              help="Real noisy shots: CLEAN then holds their clean versions, matched by file name (e.g. CC15's real/ and mean/).")
@strength_option("With --noisy: scale the noise level.")
@engine_options
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
    from denoise.datasets import load_eval_images
    from denoise.evaluate import evaluate, evaluate_real, format_markdown, load_real_pairs, save_grid, save_plot
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
