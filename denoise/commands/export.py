"""`denoise export`: a checkpoint to verified ONNX (FP16, INT8) and a TensorRT engine."""

from __future__ import annotations

from pathlib import Path

import click

from denoise.commands.common import user_errors
from denoise.errors import DenoiseError
from denoise.runtime.tiling import DEFAULT_MAX_BATCH, DEFAULT_TILE


@click.command()
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
