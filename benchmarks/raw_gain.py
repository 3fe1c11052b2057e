"""Issue 27's RAW gain: DNGs generated as tests/test_raw.py makes them (a clean photo unprocessed by the camera
protocol to a Bayer mosaic, Poisson-Gaussian noise, two Bayer phases, sigma 0.05 and 0.1) through `denoise batch`
with its defaults, and each output's PSNR gain (dB) over the undenoised development, both against the same mosaic
developed without noise -- what the test asserts (more than 2.5 dB), printed per file.

    python benchmarks/raw_gain.py                                  # the test's four DNGs, the bundled model
    python benchmarks/raw_gain.py --precision fp32 --model other.onnx
    python benchmarks/raw_gain.py --photos ../shared/data/cbsd68 --held-out   # whole photos, four DNGs each
    python benchmarks/raw_gain.py --photos ../shared/data/cbsd68 --held-out --noise 0.01 --noise 0.02  # base ISO
    python benchmarks/raw_gain.py --model denoise/weights/default.onnx   # the general model, not the RAW model

Without --photos the DNGs are the test's own four (one 128 x 192 crop of one photo); with it, every photo of the
folder (or its held-out part: every 10th, which training never saw) becomes four DNGs at its full size (cut to even
sides). Other arguments go to `denoise batch`. The DNG writer and the development are the test's (imported from
tests/test_raw.py), so the figures are the test's.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import tifffile  # noqa: E402
from test_raw import camera, develop, dng_twins, even_photo, gain_test_raws, psnr16  # noqa: E402

from denoise.datasets import eval_image_paths  # noqa: E402
from denoise.errors import DenoiseError  # noqa: E402


def photo_raws(photos: list[Path], src: Path, clean: Path, sigmas=(0.05, 0.1)) -> dict[str, np.ndarray]:
    """Noisy DNGs of each photo in ``src`` (Bayer phases (0, 0) and (1, 0), at each of ``sigmas``: sigma 0.05 and
    0.1 as the test's), each with its noise-free twin in ``clean``; {name: the twin's development}."""
    references = {}
    for index, path in enumerate(photos):
        pixels = even_photo(path)
        for phase in ((0, 0), (1, 0)):
            for sigma in sigmas:
                name = f"{path.stem}_{phase[0]}{phase[1]}_{round(sigma * 100):02d}"
                references[name] = dng_twins(src / f"{name}.dng", clean / f"{name}.dng", pixels,
                                             camera(phase, sigma, seed=7 + index), 1 + index)
    return references


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=None, help="a folder of clean photos to make the DNGs of")
    parser.add_argument("--held-out", action="store_true", help="only the folder's held-out photos (every 10th)")
    parser.add_argument("--noise", type=float, action="append", help="with --photos: the noise strengths (camera "
                        "protocol sigma; repeat; default 0.05 and 0.1)")
    args, batch_args = parser.parse_known_args()
    with tempfile.TemporaryDirectory() as tmp:
        src, out, clean = Path(tmp) / "raws", Path(tmp) / "out", Path(tmp) / "clean"
        if args.photos is None:
            references = gain_test_raws(src, clean)
        else:
            references = photo_raws(eval_image_paths(args.photos, None, args.held_out), src, clean,
                                    tuple(args.noise or (0.05, 0.1)))
        result = subprocess.run([sys.executable, "-m", "denoise", "batch", str(src), str(out), "--backend", "cpu",
                                 *batch_args], capture_output=True, text=True)
        if result.returncode != 0:
            sys.exit(result.stderr)
        gains = {}
        for name, reference in references.items():
            gains[name] = psnr16(reference, tifffile.imread(out / f"{name}.tif")) - psnr16(reference, develop(src / f"{name}.dng"))
            print(f"{name}: {gains[name]:+.2f} dB")
        for sigma in sorted({name[-2:] for name in gains}):
            values = [gain for name, gain in gains.items() if name.endswith(sigma)]
            print(f"sigma 0.{sigma}: {len(values)} files, mean {np.mean(values):+.2f}, smallest {min(values):+.2f} dB")


if __name__ == "__main__":
    try:
        main()
    except DenoiseError as error:  # a folder with no photos, an unreadable one: one line
        sys.exit(f"error: {error}")
