"""Host-side cost of tiling, without a model: how many megapixels per second the TileBatcher cuts into
float32 batches and stores back as uint8, with an "engine" that only copies (what a GPU backend leaves to the
host), on 1 thread and on ``--threads``.

    python benchmarks/host_tiling.py --threads 2

Beside a GPU running the model at hundreds of MP/s, this is a ceiling for `denoise batch` end to end (decoding
and encoding run on their own threads). Median of --repeats runs on a 12 MP uint8 image.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from denoise.runtime.tiling import TileBatcher, host_threads, overlap_for
from denoise.model_files import read_card


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=host_threads())
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    card = read_card()
    align = card["config"]["shuffle"]
    overlap = overlap_for(card["receptive_radius"], align)
    image = np.random.default_rng(0).integers(0, 256, (3000, 4000, 3), dtype=np.uint8)
    print("| tile | threads | MP/s |\n|---|---|---|")
    for tile in (512, 1024):
        for threads in sorted({1, args.threads}):
            batcher = TileBatcher(lambda level: lambda batch, sigma: batch.copy(), (tile, tile), overlap, align, 8, threads=threads)
            times = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                batcher.add(None, image, 0.1)
                (_, result, _), = batcher.run(flush=True)
                times.append(time.perf_counter() - started)
            assert np.array_equal(result, image)
            print(f"| {tile} | {threads} | {image.shape[0] * image.shape[1] / 1e6 / np.median(times):.0f} |")


if __name__ == "__main__":
    main()
