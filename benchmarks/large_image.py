"""One very large image through `denoise batch`: time and peak memory (issue 5: "a 100-megapixel image
works on a laptop").

    python benchmarks/large_image.py --megapixels 100

Writes a noisy synthetic photo-like JPEG of about --megapixels (4:3), runs the real CLI on it in a
subprocess and reports seconds, MP/s and the subprocess's peak resident memory, then checks that the
output decodes at the input's size. Peak memory is compared with the image's own size (3 bytes/pixel).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

Image.MAX_IMAGE_PIXELS = None  # our own 100-MP output, read back to check its size


def synthetic_photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth colour gradients plus edges plus Gaussian noise (sigma 0.1), built a band of rows at a time."""
    rng = np.random.default_rng(seed)
    image = np.empty((height, width, 3), np.uint8)
    x = np.linspace(0, 1, width, dtype=np.float32)
    for top in range(0, height, 512):
        y = np.linspace(top / height, min(top + 512, height) / height, min(512, height - top), dtype=np.float32)[:, None]
        base = np.stack([0.5 + 0.4 * np.sin(6 * x + 3 * y), 0.5 + 0.4 * np.cos(4 * y - 5 * x), (x * 7 + y * 5) % 1.0], axis=2)
        noisy = base + 0.1 * rng.standard_normal(base.shape, dtype=np.float32)
        image[top:top + 512] = np.round(np.clip(noisy, 0, 1) * 255)
    return image


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", type=float, default=100.0)
    parser.add_argument("--backend", default="cpu")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--max-batch", type=int, default=8)
    args = parser.parse_args()
    width = int(round((args.megapixels * 1e6 * 4 / 3) ** 0.5 / 2)) * 2
    height = int(round(args.megapixels * 1e6 / width / 2)) * 2
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "in"
        folder.mkdir()
        Image.fromarray(synthetic_photo(height, width)).save(folder / "large.jpg", quality=95)
        command = [sys.executable, "-m", "denoise", "batch", str(folder), str(Path(tmp) / "out"), "--sigma", "0.1",
                   "--backend", args.backend, "--tile", str(args.tile), "--max-batch", str(args.max_batch), "--json", "-q"]
        started = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if result.returncode:
            sys.exit(f"denoise batch failed ({result.returncode}): {result.stderr.strip()}")
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        summary = json.loads(result.stdout)
        with Image.open(Path(tmp) / "out" / "large.jpg") as out:
            out.load()
            assert out.size == (width, height), out.size
    megapixels = width * height / 1e6
    print(f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, backend {args.backend}, tile {args.tile}, max batch {args.max_batch}")
    print("| image | wall s (CLI) | denoise batch s | MP/s | peak RSS MB | image itself MB |\n|---|---|---|---|---|---|")
    print(f"| {width}x{height} ({megapixels:.0f} MP) JPEG | {seconds:.0f} | {summary['seconds']:.0f} | "
          f"{megapixels / summary['seconds']:.3f} | {peak_mb:.0f} | {megapixels * 3:.0f} |")


if __name__ == "__main__":
    main()
