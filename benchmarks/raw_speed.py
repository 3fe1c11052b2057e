"""What a camera RAW costs through `denoise batch` with its defaults, against other settings, in one run: one large
DNG (a photo enlarged to about --megapixels, made a DNG at sigma 0.05 by the test's writer) denoised by each
command in turn, --repeats times; the median wall time of each, and its ratio to the first.

    python benchmarks/raw_speed.py --photo ../shared/data/sun80/abbey_sun_asztnlqhlrvirneh.jpg
    python benchmarks/raw_speed.py --photo P --vs "--precision fp32" --vs "--model denoise/weights/default.onnx"

Each --vs is a set of extra `denoise batch` arguments (default: `--precision fp32`, the RAW model's FP32 file; and
`--model denoise/weights/default.onnx`, the general model in this CPU's precision). Wall time includes starting
Python and reading the DNG, as a user sees it. Speed on a 2-core VM is noisy: compare ratios from one run.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from test_raw import camera, write_bayer_dng  # noqa: E402


def big_photo(path: Path, megapixels: float) -> np.ndarray:
    """The photo enlarged (Lanczos) to about ``megapixels``, float64 [0,1], with even sides."""
    image = Image.open(path).convert("RGB")
    scale = (megapixels * 1e6 / (image.width * image.height)) ** 0.5
    size = (int(image.width * scale) // 2 * 2, int(image.height * scale) // 2 * 2)
    return np.asarray(image.resize(size, Image.LANCZOS), dtype=np.float64) / 255.0


def timed_batch(src: Path, out: Path, extra: list[str]) -> float:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "denoise", "batch", str(src), str(out), "--backend", "cpu",
                             "--overwrite", *extra], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(result.stderr)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=Path, required=True)
    parser.add_argument("--megapixels", type=float, default=7.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--vs", action="append", help="extra `denoise batch` arguments to compare (repeat)")
    args = parser.parse_args()
    commands = [[]] + [shlex.split(each) for each in (args.vs or ["--precision fp32",
                                                                  "--model denoise/weights/default.onnx"])]
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "raws"
        pixels = big_photo(args.photo, args.megapixels)
        write_bayer_dng(src / "IMG_0001.dng", pixels, camera((0, 0), 0.05), noise_seed=1)
        print(f"one DNG of {pixels.shape[1]} x {pixels.shape[0]} ({pixels.shape[0] * pixels.shape[1] / 1e6:.1f} MP), "
              f"sigma 0.05")
        times = {index: [] for index in range(len(commands))}
        for _ in range(args.repeats):  # in turn, so that a slow spell of the machine hits every command
            for index, extra in enumerate(commands):
                times[index].append(timed_batch(src, Path(tmp) / f"out{index}", extra))
        first = statistics.median(times[0])
        for index, extra in enumerate(commands):
            median = statistics.median(times[index])
            runs = " / ".join(f"{t:.2f}" for t in times[index])
            print(f"{'defaults' if not extra else ' '.join(extra)}: median {median:.2f} s ({runs}), "
                  f"{median / first:.2f}x the defaults")


if __name__ == "__main__":
    main()
