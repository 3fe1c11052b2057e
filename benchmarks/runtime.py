"""End-to-end `denoise batch` vs pure inference vs a plain PyTorch eager loop, same weights, same photos.

    python benchmarks/runtime.py --photos ../shared/data/cbsd68 --count 20 --repeats 3

* pure inference: Denoiser.denoise_pixels on images already decoded in memory (same backend and tiling);
* end to end: run_batch on a folder of the same images (decode, denoise, encode, atomic write, manifest),
  in a fresh subprocess, whose peak resident memory is reported too;
* PyTorch eager: the bundled checkpoint (denoise/weights/default.pt) under torch.inference_mode.

Each figure is the median of --repeats runs, all in one process run, so the ratios are comparable on
a noisy machine. Targets (issue 5): end to end >= 0.9 x pure inference; ONNX Runtime CPU >= 1.3 x eager.
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

import numpy as np

END_TO_END = """
import json, resource, sys, time
from pathlib import Path
from denoise import Denoiser, denoise_folder
denoiser = Denoiser(backend=sys.argv[3])
start = time.perf_counter()
summary = denoise_folder(denoiser, Path(sys.argv[1]), Path(sys.argv[2]), 0.1, overwrite=True)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "megapixels": summary.megapixels, "ok": summary.ok,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def median(values):
    return float(np.median(values))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=Path("../shared/data/cbsd68"))
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backend", default="cpu")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    import torch

    from denoise import Denoiser
    from denoise.metrics import to_float
    from denoise.image_files import read_image
    from denoise.checkpoint import model_from_checkpoint
    from denoise.weights import DEFAULT_CHECKPOINT

    paths = sorted(args.photos.glob("*.png"))[: args.count]
    images = [read_image(p).pixels for p in paths]
    megapixels = sum(im.shape[0] * im.shape[1] for im in images) / 1e6
    denoiser = Denoiser(backend=args.backend)

    def pure():
        start = time.perf_counter()
        for im in images:
            denoiser.denoise_pixels(im, 0.1)
        return time.perf_counter() - start

    model, _ = model_from_checkpoint(DEFAULT_CHECKPOINT)

    def eager():
        start = time.perf_counter()
        with torch.inference_mode():
            for im in images:
                x = torch.from_numpy(np.ascontiguousarray(to_float(im).transpose(2, 0, 1)))[None]
                model(x, torch.tensor([0.1])).numpy()
        return time.perf_counter() - start

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "in"
        folder.mkdir()
        for p in paths:
            shutil.copy(p, folder / p.name)

        def end_to_end():
            out = subprocess.run([sys.executable, "-c", END_TO_END, str(folder), str(Path(tmp) / "out"), args.backend],
                                 capture_output=True, text=True, check=True)
            return json.loads(out.stdout.strip().splitlines()[-1])

        pure(), eager()  # warm-up
        runs = {"pure": [], "eager": [], "e2e": []}
        peak = []
        for _ in range(args.repeats):  # interleaved, so load changes hit every method alike
            runs["pure"].append(pure())
            runs["eager"].append(eager())
            result = end_to_end()
            runs["e2e"].append(result["seconds"])
            peak.append(result["peak_rss_mb"])

    rates = {k: megapixels / median(v) for k, v in runs.items()}
    report = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()} {platform.processor()}",
              "photos": f"{args.photos} (first {len(paths)}, {megapixels:.2f} MP)", "backend": denoiser.backend_name,
              "pure_inference_mp_s": rates["pure"], "end_to_end_mp_s": rates["e2e"], "torch_eager_mp_s": rates["eager"],
              "end_to_end_over_pure": rates["e2e"] / rates["pure"], "ort_over_eager": rates["pure"] / rates["eager"],
              "end_to_end_peak_rss_mb": max(peak)}
    print("| measure | value |\n|---|---|")
    for key, value in report.items():
        print(f"| {key} | {value:.3f} |" if isinstance(value, float) else f"| {key} | {value} |")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
