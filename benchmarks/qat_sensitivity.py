"""Which quantized tensors cost the INT8 model its quality? The bundled FP32 model with every hidden convolution
fake-quantized (denoise.quantize, as INT8 runs it; only the first and last Conv FP32), ranges observed on
training photos; then each quantized tensor -- a conv's input, output or weights -- put back to FP32 alone:
what it recovers is what it costs. Torch, on the CPU; PSNR on 192x192 crops of held-out photos. With tied grids
(quantize.tied_inputs) a tied conv's input is the previous conv's output: its input column reads 0, and that grid's
cost is the previous conv's output column.

    python benchmarks/qat_sensitivity.py --photos ../shared/data/cbsd68 --sigma 15/255
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from denoise.checkpoint import model_from_checkpoint
from denoise.datasets import load_eval_images, load_images
from denoise.metrics import psnr_uint8, to_uint8
from denoise.noise import parse_sigma
from denoise import quantize
from denoise.weights import DEFAULT_CHECKPOINT

CROP = 192


def fake_quantized(checkpoint: Path, photos: list[np.ndarray], sigma: float):
    """The model with convs 1-18 fake-quantized, ranges observed on ``photos`` at sigma/2 .. 2 sigma."""
    model, _ = model_from_checkpoint(checkpoint)
    quantize.prepare_qat(model, keep=(0, len(quantize.conv_layers(model)) - 1)).train()
    rng = np.random.default_rng(1)
    with torch.no_grad():
        for level in (sigma / 2, sigma, 2 * sigma):
            for im in photos:
                x = torch.from_numpy((im[:CROP, :CROP] / 255.0 + rng.normal(0, level, (CROP, CROP, 3))).astype(np.float32))
                model(x.permute(2, 0, 1)[None], torch.full((1, 1, CROP, CROP), level))
    return model.eval()


def score(model, pairs, sigma: float) -> float:
    with torch.no_grad():
        return float(np.mean([psnr_uint8(clean, to_uint8(model(noisy, torch.full((1, 1, CROP, CROP), sigma))[0].numpy().transpose(1, 2, 0)))
                              for clean, noisy in pairs]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=Path("../shared/data/cbsd68"))
    parser.add_argument("--sigma", default="15/255")
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    args = parser.parse_args()
    torch.set_num_threads(2)
    sigma = parse_sigma(args.sigma)
    rng = np.random.default_rng(0)
    pairs = [(im[:CROP, :CROP], torch.from_numpy((im[:CROP, :CROP] / 255.0 + rng.normal(0, sigma, (CROP, CROP, 3)))
                                                  .astype(np.float32)).permute(2, 0, 1)[None])
             for im in load_eval_images(args.photos, None, held_out=True)[:4]]
    model = fake_quantized(args.checkpoint, load_images(args.photos, "train")[:4], sigma)
    plain, _ = model_from_checkpoint(args.checkpoint)
    fp32, int8 = score(plain, pairs, sigma), score(model, pairs, sigma)
    print(f"sigma {args.sigma}: FP32 {fp32:.3f} dB, convs 1-18 fake-quantized {int8:.3f} ({int8 - fp32:+.3f})")
    print("| conv (graph order) | input FP32 again | output FP32 again | weights FP32 again |")
    print("|---|---|---|---|")
    for position, layer in quantize.quantized_layers(model).items():
        gains = []
        for part in ("input_range", "output_range"):
            saved = getattr(layer, part)
            setattr(layer, part, torch.nn.Identity())
            gains.append(score(model, pairs, sigma) - int8)
            setattr(layer, part, saved)
        layer.weight_axis, axis = None, layer.weight_axis  # fake_quant_weight is skipped for this layer
        gains.append(score(model, pairs, sigma) - int8)
        layer.weight_axis = axis
        print(f"| {position} | " + " | ".join(f"{g:+.3f}" for g in gains) + " |", flush=True)


if __name__ == "__main__":
    main()
