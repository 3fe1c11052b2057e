"""Fit the noise estimator's calibration and write it into its card: the estimator over-reads white noise above
about 20/255, and `--sigma auto` then gives the denoiser more level than the noise has.

For each level, the same seeded white Gaussian noise (``denoise.noise.add_noise``'s ``gaussian`` protocol: float,
unclipped) is added to each photo (read as the runtime reads it, ``image_files.read_image``), the estimator's map
is read without any calibration, and its mean is averaged over the photos. The rule that turns those mean reads
into the calibration is ``denoise.runtime.levels.calibration_from_reads``; the runtime applies it to every map the
estimator makes (``Denoiser.estimate_map``). Fit it on photos the estimator was trained on, and measure it on
others (benchmarks/auto_sigma.py):

    python scripts/calibrate_estimator.py --photos ../shared/data/cbsd432 --every 12

``--estimator`` (default: the bundled one) names the .onnx whose card (the .json beside it) gets the
calibration; ``--dry-run`` prints the reads and the calibration and writes nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from denoise import Denoiser
from denoise.atomic import atomic_write_text
from denoise.errors import DenoiseError
from denoise.formats import list_images
from denoise.image_files import read_image
from denoise.model_files import card_path
from denoise.noise import add_noise
from denoise.runtime.levels import calibration_from_reads
from denoise.weights import DEFAULT_ESTIMATOR

LEVELS_255 = (5, 10, 15, 20, 25, 30, 40, 50, 60, 75, 100)


def mean_reads(denoiser: Denoiser, photos: list[np.ndarray], sigmas: list[float], seed: int = 0) -> list[float]:
    """The estimator's uncalibrated mean read of white noise at each level, averaged over the photos."""
    reads = []
    for sigma in sigmas:
        per_photo = []
        for index, photo in enumerate(photos):
            rng = np.random.default_rng([seed, index, int(round(sigma * 1e6))])
            noisy = add_noise(photo, sigma, "gaussian", rng)
            per_photo.append(float(denoiser.estimate_map(noisy, raw=True).mean(dtype=np.float64)))
        reads.append(float(np.mean(per_photo)))
    return reads


def read_photos(folder: Path, every: int) -> list[np.ndarray]:
    if not folder.is_dir():
        raise DenoiseError(f"{folder} is not a folder: give --photos a folder of clean photos")
    files = list_images(folder)[::every]
    if not files:
        raise DenoiseError(f"no photos in {folder}: give --photos a folder of clean photos")
    return [read_image(p).rgb for p in files]


def main() -> None:
    try:
        calibrate()
    except DenoiseError as error:
        sys.exit(f"error: {error}")


def calibrate() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, required=True, help="a folder of clean photos the estimator trained on")
    parser.add_argument("--every", type=int, default=1, help="use every Nth photo (sorted by name)")
    parser.add_argument("--estimator", type=Path, default=DEFAULT_ESTIMATOR)
    parser.add_argument("--levels", default=",".join(map(str, LEVELS_255)), help="white-noise levels, of 255")
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args()
    card_file = card_path(args.estimator)
    if not args.dry_run and not card_file.is_file():  # before the fit, not after minutes of it
        raise DenoiseError(f"{args.estimator} has no card ({card_file.name}) to write the calibration into")
    photos = read_photos(args.photos, args.every)
    sigmas = [float(v) / 255 for v in args.levels.split(",")]
    with Denoiser(backend="cpu", precision="fp32", estimator=args.estimator) as denoiser:
        reads = mean_reads(denoiser, photos, sigmas)
    calibration = calibration_from_reads(sigmas, reads)
    for sigma, read in zip(sigmas, reads):
        print(f"white {sigma * 255:6.1f}/255: mean read {read * 255:6.2f}/255")
    print("calibration (x255): " + ", ".join(f"{r * 255:.2f} -> {v * 255:.2f}" for r, v in zip(calibration["read"], calibration["level"])))
    if args.dry_run:
        return
    card = json.loads(card_file.read_text())
    card["calibration"] = {**calibration, "fitted_on": f"{args.photos.name}: {len(photos)} photos (every {args.every}th)",
                           "noise": "white Gaussian, float, unclipped (the gaussian protocol); seeded per photo and level",
                           "mean_reads": {f"{s * 255:g}/255": round(r * 255, 3) for s, r in zip(sigmas, reads)}}
    atomic_write_text(card_file, json.dumps(card, indent=2) + "\n")
    print(f"wrote the calibration into {card_file}")


if __name__ == "__main__":
    main()
