"""Local Ray with N workers vs one `denoise batch` process on the same folder: throughput and overhead.

    python benchmarks/ray_vs_local.py --photos ../shared/data/cbsd68 --count 16 --workers 2

Both run as real CLI subprocesses into fresh output folders (wall time includes startup: model load,
and for Ray the local cluster's start), CPU backend.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(command: list[str]) -> tuple[float, dict]:
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return time.perf_counter() - start, json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=Path("../shared/data/cbsd68"))
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "in"
        folder.mkdir()
        for p in sorted(args.photos.glob("*.png"))[: args.count]:
            shutil.copy(p, folder / p.name)
        base = [sys.executable, "-m", "denoise", "batch", str(folder)]
        local_s, local = timed(base + [str(Path(tmp) / "local"), "--sigma", "0.1", "--json", "-q", "--backend", "cpu"])
        ray_s, ray = timed(base + [str(Path(tmp) / "ray"), "--sigma", "0.1", "--json", "-q", "--backend", "cpu",
                                   "--ray", "--workers", str(args.workers)])
    mp = local["megapixels"]
    print(f"{time.strftime('%Y-%m-%d')} {platform.machine()}: {args.count} photos, {mp:.2f} MP")
    print("| run | wall s | MP/s (wall) | time inside the job s |\n|---|---|---|---|")
    print(f"| one process | {local_s:.1f} | {mp / local_s:.3f} | {local['seconds']:.1f} |")
    print(f"| local Ray, {args.workers} workers | {ray_s:.1f} | {mp / ray_s:.3f} | {ray['seconds']:.1f} |")


if __name__ == "__main__":
    main()
