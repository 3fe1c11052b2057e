"""What `--sigma auto` costs: CPU time of the same photos denoised with a fixed sigma and with the noise
estimator's map, in one run (interleaved, median of several repeats), optionally beside another model's
fixed-sigma time (e.g. the previous bundled model, to check the fixed-sigma path did not get slower).

    git show ead4de7:denoise/weights/default.onnx > /tmp/previous.onnx
    python benchmarks/auto_cost.py --photos ../shared/data/cc15/real --baseline /tmp/previous.onnx --repeats 5

Speed on the 2-core machines is noisy: only the ratios of one run mean much.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from denoise import Denoiser
from denoise.datasets import eval_image_paths
from denoise.image_files import read_image


def seconds(run, photos) -> float:
    started = time.perf_counter()
    for photo in photos:
        run(photo)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=Path("../shared/data/cc15/real"))
    parser.add_argument("--count", type=int, default=6)
    parser.add_argument("--sigma", type=float, default=15 / 255)
    parser.add_argument("--baseline", type=Path, default=None, help="another .onnx, timed at the fixed sigma")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", type=Path, default=None, help="an exported .onnx (default: the bundled model)")
    parser.add_argument("--precision", choices=["fp32", "int8"], default="fp32",
                        help="int8: the model's INT8 sibling, what `denoise batch` runs on a CPU with INT8 instructions")
    args = parser.parse_args()
    photos = [read_image(p).pixels for p in eval_image_paths(args.photos, args.count)]
    megapixels = sum(p.shape[0] * p.shape[1] for p in photos) / 1e6
    denoiser = Denoiser(args.model, backend="cpu", precision=args.precision)
    runs = {"fixed sigma": lambda im: denoiser.denoise(im, args.sigma),
            "--sigma auto": lambda im: denoiser.denoise(im, "auto"),
            "estimator alone": lambda im: denoiser.estimate_map(im)}
    if args.baseline:
        baseline = Denoiser(args.baseline, backend="cpu", precision="fp32")
        runs[f"fixed sigma, {args.baseline.name}"] = lambda im: baseline.denoise(im, args.sigma)
    for run in runs.values():  # warm-up: sessions, allocations
        run(photos[0])
    times = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            times[name].append(seconds(run, photos))
    fixed = np.median(times["fixed sigma"])
    print(f"{len(photos)} photos, {megapixels:.2f} MP, ONNX Runtime CPU {args.precision}, median of {args.repeats}\n")
    print("| run | seconds | MP/s | time / fixed sigma |\n|---|---|---|---|")
    for name, values in times.items():
        median = float(np.median(values))
        print(f"| {name} | {median:.2f} | {megapixels / median:.3f} | {median / fixed:.3f} |")


if __name__ == "__main__":
    main()
