"""The folder pipeline at GPU speed (issue 14): `denoise batch` end to end with the PyTorch backend against
that backend's pure inference, on a folder of camera-size JPEGs made here, and how busy the GPU was.

    python benchmarks/gpu_pipeline.py --json gpu-pipeline.json                 # on a GPU machine (torch + CUDA)
    python benchmarks/gpu_pipeline.py --device cpu --backend cpu --files 4 --size 640x480 --repeats 2   # dry run

1. Makes ``--files`` JPEGs of ``--size`` (the sample photos tiled with flips to that size, noise of 10/255,
   quality 92) in ``--folder``, on every core.
2. Pure inference of the backend on full batches of tiles -- the shape every batch of a large image has --
   in FP32, FP16 and FP16 with CUDA graphs: core megapixels per second (what one batch adds to the output),
   host copies included (``TorchBackend.infer``, numpy in, numpy out), median of ``--repeats`` timings.
3. ``denoise batch FOLDER OUT --backend BACKEND --sigma 0.1 --json`` (and ``--sigma auto``) in a subprocess,
   with ``nvidia-smi dmon`` sampling the GPU's SM utilisation each second; MP/s from its summary.
Prints a markdown table and writes the numbers as JSON. The ratio end to end / pure inference (FP16 graphs,
what `--backend torch` runs) is the issue's done-when (>= 0.9).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def make_photo(args: tuple) -> None:
    index, path, width, height = args
    rng = np.random.default_rng(index)
    samples = sorted((REPO / "samples" / "clean").glob("*.png"))
    base = np.asarray(Image.open(samples[index % len(samples)]).convert("RGB"))
    tiles = [base, base[:, ::-1], base[::-1], base[::-1, ::-1]]
    rows = -(-height // base.shape[0])
    cols = -(-width // base.shape[1])
    grid = np.concatenate([np.concatenate([tiles[(r * 2 + c + index) % 4] for c in range(cols)], axis=1)
                           for r in range(rows)], axis=0)[:height, :width]
    noisy = np.clip(grid + rng.normal(0, 10, grid.shape), 0, 255).astype(np.uint8)
    Image.fromarray(noisy).save(path, quality=92)


def make_folder(folder: Path, files: int, width: int, height: int) -> float:
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(i, folder / f"photo-{i:04d}.jpg", width, height) for i in range(files)
            if not (folder / f"photo-{i:04d}.jpg").is_file()]
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(make_photo, jobs))
    return files * width * height / 1e6


def pure_inference(device: str, tile: int, max_batch: int, repeats: int) -> dict:
    from denoise.runtime.tiling import overlap_for
    from denoise.runtime.torch_backend import TorchBackend
    from denoise.model_files import read_card
    from denoise.weights import DEFAULT_CHECKPOINT

    card = read_card()
    size = tile + 2 * overlap_for(card["receptive_radius"], card["config"]["shuffle"])
    rng = np.random.default_rng(0)
    noisy = rng.random((max_batch, 3, size, size), dtype=np.float32)
    sigma = np.full((max_batch, 1, size, size), 0.1, np.float32)
    core_mp = max_batch * tile * tile / 1e6
    results = {}
    variants = [("fp32", "fp32", False), ("fp16", "fp16", False), ("fp16+graphs", "fp16", True)]
    for label, precision, graphs in variants if device == "cuda" else variants[:1]:
        backend = TorchBackend(DEFAULT_CHECKPOINT, device=device, precision=precision, cuda_graphs=graphs)
        for _ in range(3):
            backend.infer(noisy, sigma)  # warm-up (and the capture)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            backend.infer(noisy, sigma)  # synchronises: numpy out
            times.append(time.perf_counter() - started)
        results[label] = {"ms_per_batch": 1e3 * float(np.median(times)), "mp_per_s": core_mp / float(np.median(times)),
                          "graphs_captured": len(backend.graphs)}
        backend.close()
    return results


def sample_gpu(log: Path):
    if shutil.which("nvidia-smi") is None:
        return None
    return subprocess.Popen(["nvidia-smi", "dmon", "-s", "u", "-d", "1"], stdout=open(log, "w"),
                            stderr=subprocess.STDOUT)


def gpu_busy(log: Path) -> float | None:
    """Mean SM % of the samples nvidia-smi dmon took (its 'sm' column)."""
    if not log.is_file():
        return None
    header, values = None, []
    for line in log.read_text().splitlines():
        parts = line.lstrip("#").split()
        if line.startswith("#") and "sm" in parts:
            header = parts.index("sm")
        elif header is not None and len(parts) > header and parts[header].isdigit():
            values.append(int(parts[header]))
    return float(np.mean(values)) if values else None


def end_to_end(folder: Path, backend: str, sigma: str, extra: list[str], work: Path) -> dict:
    out = work / f"out-{sigma.replace('/', '_')}-{'-'.join(extra) or 'default'}"
    shutil.rmtree(out, ignore_errors=True)
    log = work / "dmon.txt"
    sampler = sample_gpu(log)
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "denoise", "batch", str(folder), str(out), "--backend", backend,
                             "--sigma", sigma, "--json", "-q", *extra], capture_output=True, text=True)
    wall = time.perf_counter() - started
    if sampler:
        sampler.terminate()
        sampler.wait()
    if result.returncode != 0:
        return {"error": result.stderr.strip().splitlines()[-1:] or [f"exit {result.returncode}"]}
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    shutil.rmtree(out, ignore_errors=True)
    return {"mp_per_s": summary["megapixels"] / summary["seconds"], "seconds": summary["seconds"], "wall_s": wall,
            "ok": summary["ok"], "backend": summary["backend"], "gpu_sm_busy_pct": gpu_busy(log)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=240)
    parser.add_argument("--size", default="4000x3000", help="WIDTHxHEIGHT of each JPEG (12 MP: a camera's)")
    parser.add_argument("--folder", type=Path, default=None, help="where the JPEGs go (default: a temporary folder)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--backend", default="torch", help="the `denoise batch --backend` measured end to end")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    width, height = map(int, args.size.lower().split("x"))
    work = Path(tempfile.mkdtemp(prefix="gpu-pipeline-"))
    folder = args.folder or work / "jpegs"
    started = time.perf_counter()
    megapixels = make_folder(folder, args.files, width, height)
    print(f"made {args.files} JPEGs of {width}x{height} ({megapixels:.0f} MP) in {time.perf_counter() - started:.0f} s",
          flush=True)
    report = {"files": args.files, "size": [width, height], "cores": os.cpu_count(),
              "pure_inference": pure_inference(args.device, 512, 8, args.repeats), "end_to_end": {}}
    for sigma, extra in (("0.1", []), ("auto", []), ("0.1", ["--max-batch", "16"])):
        label = f"--sigma {sigma} {' '.join(extra)}".strip()
        report["end_to_end"][label] = end_to_end(folder, args.backend, sigma, extra, work)
        print(label, report["end_to_end"][label], flush=True)
    reference = report["pure_inference"].get("fp16+graphs") or report["pure_inference"]["fp32"]
    print("\n| run | MP/s | vs pure inference | GPU SM busy % |\n|---|---|---|---|")
    for label, numbers in report["pure_inference"].items():
        print(f"| pure inference {label} (batches of 8 tiles, host copies included) | {numbers['mp_per_s']:.1f} | "
              f"{numbers['mp_per_s'] / reference['mp_per_s']:.2f} | - |")
    for label, numbers in report["end_to_end"].items():
        if "error" in numbers:
            print(f"| denoise batch {label} | failed: {numbers['error']} | | |")
            continue
        busy = numbers["gpu_sm_busy_pct"]
        print(f"| denoise batch {label} ({numbers['backend']}) | {numbers['mp_per_s']:.1f} | "
              f"{numbers['mp_per_s'] / reference['mp_per_s']:.2f} | {'-' if busy is None else f'{busy:.0f}'} |")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    if not args.folder:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
