"""Per photo: the bundled model against CBM3D on the same seeded noisy image (where does either one win?).

`denoise eval` reports means over a set; this lists each photo, so a mean gap can be traced to the photos
that make it. Needs the `eval` extra (bm3d).

    python benchmarks/per_image.py --photos ../shared/data/cbsd68 --held-out --sigma 15/255 --sigma 25/255

Quality only (no timing), so it can run on a busy machine.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from denoise import Denoiser
from denoise.datasets import eval_image_paths, load_eval_images
from denoise.evaluate import cbm3d, noisy_images
from denoise.metrics import psnr_uint8, to_uint8
from denoise.noise import parse_sigma


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=Path("../shared/data/cbsd68"))
    parser.add_argument("--held-out", action="store_true", help="only the photos `denoise train` holds out")
    parser.add_argument("--sigma", action="append", default=[], help="noise level, e.g. 25/255 (repeat)")
    parser.add_argument("--protocol", default="gaussian")
    parser.add_argument("--model", type=Path, default=None, help="an exported .onnx (default: bundled)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    names = [path.stem for path in eval_image_paths(args.photos, held_out=args.held_out)]
    photos = load_eval_images(args.photos, held_out=args.held_out)
    denoiser = Denoiser(args.model, backend="cpu", precision="fp32")
    print("| sigma (x255) | photo | model PSNR | CBM3D PSNR | model - CBM3D |\n|---|---|---|---|---|")
    for sigma in [parse_sigma(s) for s in args.sigma or ["25/255"]]:
        for name, clean, noisy in zip(names, photos, noisy_images(photos, sigma, args.protocol, args.seed)[0]):
            ours = psnr_uint8(clean, to_uint8(denoiser.denoise(noisy, sigma)))
            theirs = psnr_uint8(clean, to_uint8(cbm3d(noisy, sigma)))
            print(f"| {sigma * 255:.0f} | {name} | {ours:.2f} | {theirs:.2f} | {ours - theirs:+.2f} |", flush=True)


if __name__ == "__main__":
    main()
