"""How well `--sigma auto` does: the estimated noise level and the PSNR it gives, next to the true sigma's.

For every photo and noise level, the same seeded noisy image is denoised twice with the bundled model:
once with the sigma that made the noise, once with `sigma="auto"` (denoise.noise.estimate_sigma, the
Immerkaer estimate, per image). Reports the mean and range of the estimates and both mean PSNRs.

    python benchmarks/auto_sigma.py --photos ../shared/data/cbsd68 --held-out --sigma 15/255 --sigma 25/255 --sigma 50/255

Quality only (no timing), so it can run on a busy machine.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from denoise import Denoiser
from denoise.evaluate import load_eval_images, noisy_images
from denoise.metrics import psnr_uint8, to_uint8
from denoise.noise import estimate_sigma, parse_sigma


def measure(denoiser: Denoiser, photos: list[np.ndarray], sigma: float, protocol: str, seed: int) -> dict:
    estimates, psnr_true, psnr_auto = [], [], []
    for clean, noisy in zip(photos, noisy_images(photos, sigma, protocol, seed)[0]):
        estimates.append(estimate_sigma(noisy))
        psnr_true.append(psnr_uint8(clean, to_uint8(denoiser.denoise(noisy, sigma))))
        psnr_auto.append(psnr_uint8(clean, to_uint8(denoiser.denoise(noisy, "auto"))))
    est = np.array(estimates) * 255
    return {"sigma255": sigma * 255, "protocol": protocol, "images": len(photos),
            "estimate_mean255": float(est.mean()), "estimate_min255": float(est.min()), "estimate_max255": float(est.max()),
            "psnr_true_sigma": float(np.mean(psnr_true)), "psnr_auto": float(np.mean(psnr_auto))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=Path("../shared/data/cbsd68"))
    parser.add_argument("--held-out", action="store_true", help="only the photos `denoise train` holds out")
    parser.add_argument("--sigma", action="append", default=None)
    parser.add_argument("--protocol", action="append", default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    photos = load_eval_images(args.photos, None, args.held_out)
    denoiser = Denoiser()
    print("| sigma (x255) | protocol | images | auto estimate (x255): mean [min, max] | PSNR, true sigma | PSNR, auto | auto - true (dB) |")
    print("|---|---|---|---|---|---|---|")
    for protocol in args.protocol or ["gaussian"]:
        for text in args.sigma or ["15/255", "25/255", "50/255"]:
            r = measure(denoiser, photos, parse_sigma(text), protocol, args.seed)
            print(f"| {r['sigma255']:.0f} | {protocol} | {r['images']} | {r['estimate_mean255']:.1f} "
                  f"[{r['estimate_min255']:.1f}, {r['estimate_max255']:.1f}] | {r['psnr_true_sigma']:.2f} | "
                  f"{r['psnr_auto']:.2f} | {r['psnr_auto'] - r['psnr_true_sigma']:+.2f} |")


if __name__ == "__main__":
    main()
