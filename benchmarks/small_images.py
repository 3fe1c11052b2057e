"""Many small images: `denoise batch` with tiles of several images batched together (--max-batch 8,
the default) against one image per inference call (--max-batch 1), on the same folder in one run.

    python benchmarks/small_images.py --cifar ../shared/data/cifar10/cifar10-jpeg.tar.gz --count 500 --repeats 3

The folder holds the first --count CIFAR-10 test images as 32x32 PNG files. Each figure is the median
of --repeats end-to-end runs of the real CLI in a subprocess, the two settings interleaved.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def write_cifar_pngs(archive: Path, folder: Path, count: int) -> int:
    folder.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        members = sorted((m for m in tar.getmembers() if m.isfile() and m.name.startswith("test/")), key=lambda m: m.name)
        for k, member in enumerate(members[:count]):
            Image.open(io.BytesIO(tar.extractfile(member).read())).convert("RGB").save(folder / f"{k:05d}.png")
    return min(count, len(members))


def run_cli(folder: Path, out: Path, max_batch: int, backend: str) -> float:
    command = [sys.executable, "-m", "denoise", "batch", str(folder), str(out), "--sigma", "0.1", "--overwrite",
               "--json", "-q", "--backend", backend, "--max-batch", str(max_batch)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout)["seconds"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cifar", type=Path, default=Path("../shared/data/cifar10/cifar10-jpeg.tar.gz"))
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backend", default="cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "in"
        count = write_cifar_pngs(args.cifar, folder, args.count)
        seconds = {1: [], 8: []}
        for _ in range(args.repeats):
            for max_batch in seconds:
                seconds[max_batch].append(run_cli(folder, Path(tmp) / f"out{max_batch}", max_batch, args.backend))
    rate = {b: count / float(np.median(s)) for b, s in seconds.items()}
    print(f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, backend {args.backend}, {count} CIFAR-10 test images (32x32 PNG)")
    print("| --max-batch | images/s | MP/s |\n|---|---|---|")
    for max_batch, value in rate.items():
        print(f"| {max_batch} | {value:.0f} | {value * 1024 / 1e6:.3f} |")
    print(f"batched / one at a time: {rate[8] / rate[1]:.2f}x")


if __name__ == "__main__":
    main()
