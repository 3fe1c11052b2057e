"""Noisy/clean training pairs developed from generated RAWs, for `denoise train --pairs`: each clean photo is
unprocessed to a Bayer mosaic by the camera protocol (a random camera, Bayer phase and noise strength), written as
a noisy DNG and a noise-free twin as tests/test_raw.py writes them, and both are developed by LibRaw exactly as
`denoise batch` develops a RAW (AHD, the camera's white balance, sRGB). The pair is the two developments, rounded
to 8 bits (what the pair loader reads).

Why: a RAW's development has noise that neither white noise nor the camera protocol's bilinear or Malvar-He-Cutler
demosaicing gives -- AHD's interpolation correlates it along edges -- and at a moderate level (sigma 0.05) the
denoiser, not the level it is given, is what loses on it (BENCHMARKS.md, "RAW on whole photos").

    python scripts/raw_pairs.py runs/raw-pairs --photos ../shared/data/cbsd432 --every 4
    denoise train ... --pairs runs/raw-pairs

Needs the `raw` extra (rawpy) and the tests folder (the DNG writer is the tests'). Noise strengths are drawn
log-uniformly from --sigma-min to --sigma-max (camera_noise.draw_params' ``sigma``: shot = sigma**2, read on
Brooks' line). Each photo is its own scene (pairs.scene_of), so every 5th is held out for validation.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from test_raw import camera, develop, dng_twins, even_photo  # noqa: E402

from denoise.datasets import image_folder_paths  # noqa: E402


def to_uint8(developed: np.ndarray) -> np.ndarray:
    return np.round(developed.astype(np.float64) / 257.0).astype(np.uint8)


def make_pair(photo: Path, index: int, sigma: float, out: Path, tmp: Path, name: str) -> None:
    params = camera(((index // 2) % 2, index % 2), sigma, seed=1000 + index)
    clean = dng_twins(tmp / "noisy.dng", tmp / "clean.dng", even_photo(photo), params, 5000 + index)
    for folder, developed in (("noisy", develop(tmp / "noisy.dng")), ("clean", clean)):
        (out / folder).mkdir(parents=True, exist_ok=True)
        Image.fromarray(to_uint8(developed)).save(out / folder / name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--photos", type=Path, required=True, help="a folder of clean photos (training photos only)")
    parser.add_argument("--every", type=int, default=1, help="every n-th photo of the folder")
    parser.add_argument("--sigma-min", type=float, default=0.01)
    parser.add_argument("--sigma-max", type=float, default=0.15)
    parser.add_argument("--per-photo", type=int, default=1, help="pairs per photo, each its own camera, Bayer phase "
                        "and strength; named <photo>_<k> so that a photo's pairs are one scene (held out together)")
    args = parser.parse_args()
    photos = image_folder_paths(args.photos)[::args.every]
    count = len(photos) * args.per_photo
    sigmas = np.exp(np.random.default_rng(0).uniform(np.log(args.sigma_min), np.log(args.sigma_max), count))
    with tempfile.TemporaryDirectory() as tmp:
        for index, sigma in enumerate(sigmas):
            number, k = divmod(index, args.per_photo)
            photo = photos[number]
            name = f"raw{number:04d}-{photo.stem}" + (f"_{k}" if args.per_photo > 1 else "")
            make_pair(photo, index, float(sigma), args.out, Path(tmp), name + ".png")
    print(f"{count} pairs in {args.out}")


if __name__ == "__main__":
    main()
