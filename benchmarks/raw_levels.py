"""Which noise level the denoiser needs on a RAW developed by LibRaw, against the levels it can be given: DNGs
made as tests/test_raw.py makes them (its dng_twins) from a folder of clean photos at several
noise strengths, each developed (AHD, as `denoise batch` does) and denoised with

- the estimator's map as `--sigma auto` makes it for other images (times the real-noise factor), and that map
  times each of a grid of factors;
- the mosaic's map (denoise/raw_noise.py: the noise the mosaic's Poisson-Gaussian fit gives each developed pixel)
  through NEEDED_LEVEL, what `--sigma auto` gives a Bayer RAW, and the mosaic's map times each of the factors.

Prints, per noise strength and for each map, the mean PSNR gain (dB) over the undenoised development of the level
`auto` gives, of the best single factor, and of each file's best factor; and the true noise (std of noisy - clean
development) beside each map's mean read, both x255. Last, the points (mosaic's mean read, best factor times it)
from which NEEDED_LEVEL was fitted.

    python benchmarks/raw_levels.py --photos ../shared/data/cbsd432 --every 40     # training photos (every 40th)
    python benchmarks/raw_levels.py --photos ../shared/data/cbsd68 --held-out

FP32, ONNX Runtime CPU, the bundled model and estimator; one Bayer phase per photo (in turn), seed per photo.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from test_raw import camera, dng_twins, even_photo, psnr16  # noqa: E402

from denoise import Denoiser  # noqa: E402
from denoise.datasets import eval_image_paths, held_out_paths, image_folder_paths  # noqa: E402
from denoise.errors import DenoiseError  # noqa: E402
from denoise.raw_files import read_raw  # noqa: E402
from denoise.raw_noise import developed_noise_map, needed_level  # noqa: E402
from denoise.runtime.real_noise import real_noise_factor  # noqa: E402

FACTORS = (0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75, 2, 2.25, 2.5, 2.75, 3, 3.5)
SIGMAS = (0.01, 0.02, 0.035, 0.05, 0.07, 0.1, 0.14)
PHASES = ((0, 0), (1, 0), (0, 1), (1, 1))


def photo_paths(folder: Path, held_out: bool, every: int) -> list[Path]:
    if held_out:
        return eval_image_paths(folder, None, True)
    held = set(held_out_paths(folder))
    return [p for p in image_folder_paths(folder) if p not in held][::every]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, required=True)
    parser.add_argument("--held-out", action="store_true", help="only the folder's held-out photos (every 10th)")
    parser.add_argument("--every", type=int, default=1, help="without --held-out: every n-th training photo")
    args = parser.parse_args()
    denoiser = Denoiser(None, backend="cpu", precision="fp32")
    rows = {sigma: [] for sigma in SIGMAS}
    with tempfile.TemporaryDirectory() as tmp:
        for index, path in enumerate(photo_paths(args.photos, args.held_out, args.every)):
            pixels = even_photo(path)
            for sigma in SIGMAS:
                noisy_path, clean_path = Path(tmp) / "noisy.dng", Path(tmp) / "clean.dng"
                clean = dng_twins(noisy_path, clean_path, pixels, camera(PHASES[index % 4], sigma, seed=100 + index),
                                  200 + index)
                image = read_raw(noisy_path)
                noisy = image.pixels
                before = psnr16(clean, noisy)
                true = float(np.std((noisy.astype(np.float64) - clean) / 65535))
                estimated = denoiser.estimate_map(noisy)
                factor = real_noise_factor(noisy, estimated, denoiser.denoise_many)
                mosaic = developed_noise_map(noisy, image.raw.noise, image.raw.white_balance, image.raw.rgb_cam)
                for name, level, default in (("estimator", estimated, estimated * np.float32(factor)),
                                             ("mosaic", mosaic, needed_level(mosaic))):
                    gains = [psnr16(clean, denoiser.denoise(noisy, level * np.float32(k))) - before
                             for k in FACTORS] + [psnr16(clean, denoiser.denoise(noisy, default)) - before]
                    rows[sigma].append((name, true, float(level.mean()), gains))
    print("| sigma | map | files | true noise (x255) | map's read (x255) | auto's level | best factor | its gain | "
          "each file's best |\n|---|---|---|---|---|---|---|---|---|")
    points = []
    for sigma, values in rows.items():
        for name in ("estimator", "mosaic"):
            of_map = [v for v in values if v[0] == name]
            gains = np.array([v[3] for v in of_map])
            best = int(np.argmax(gains[:, :-1].mean(axis=0)))
            read = np.mean([v[2] for v in of_map])
            print(f"| {sigma:g} | {name} | {len(of_map)} | {np.mean([v[1] for v in of_map]) * 255:.1f} | {read * 255:.1f} | "
                  f"{gains[:, -1].mean():+.2f} | {FACTORS[best]:g} | {gains[:, best].mean():+.2f} | "
                  f"{gains[:, :-1].max(axis=1).mean():+.2f} |")
            if name == "mosaic":
                points.append((read, FACTORS[best] * read))
    print("mosaic's mean read -> best level: " + ", ".join(f"{r:.5f} -> {level:.5f}" for r, level in points))


if __name__ == "__main__":
    try:
        main()
    except DenoiseError as error:  # a folder with no photos, an unreadable one: one line
        sys.exit(f"error: {error}")
