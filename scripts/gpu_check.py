"""Check the TensorRT path on a machine with an NVIDIA GPU, TensorRT and cuda-python.

    pip install -e '.[cpu,tensorrt]' && python scripts/gpu_check.py

Builds (or reuses) an FP16 engine from the bundled model, runs it through the runtime's TensorRT
backend on the sample photos and on random tiles of several shapes, and compares it with ONNX Runtime
on the CPU (FP32): max absolute difference and PSNR against the clean samples, printed as a table;
then times a full batch of tiles with and without a CUDA graph and checks both give the same output.
Exits 1 if the engine's PSNR is more than 0.05 dB below FP32 or its output has NaN/Inf, 2 if this
machine cannot run TensorRT (saying what is missing).

The team's CPU machines cannot install TensorRT, and the lent GPU machine has none either, so this
script is how the TensorRT path gets verified: run it where TensorRT is, and record the result.
"""

import sys
import time
from pathlib import Path

import numpy as np

from denoise import DenoiseError, Denoiser
from denoise.metrics import psnr_uint8, to_uint8
from denoise.runtime.images import read_image

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def main() -> int:
    reference = Denoiser(backend="cpu")
    started = time.perf_counter()
    try:
        engine = Denoiser(backend="tensorrt")
    except DenoiseError as exc:
        print(f"cannot check TensorRT here: {exc}")
        return 2
    print(f"engine ready in {time.perf_counter() - started:.1f}s (build or cache load)")
    failed = False
    print("| input | max abs diff vs ORT FP32 | PSNR ORT FP32 | PSNR TensorRT FP16 | finite |")
    print("|---|---|---|---|---|")
    for noisy_path in sorted((SAMPLES / "noisy").glob("*.png")):
        noisy = read_image(noisy_path).rgb
        clean = to_uint8(read_image(SAMPLES / "clean" / noisy_path.name).rgb)
        want, got = reference.denoise_rgb(noisy, 0.1), engine.denoise_rgb(noisy, 0.1)
        finite = bool(np.isfinite(got).all())
        p32, p16 = psnr_uint8(clean, to_uint8(want)), psnr_uint8(clean, to_uint8(np.nan_to_num(got)))
        failed |= not finite or p32 - p16 > 0.05
        print(f"| {noisy_path.name} | {np.abs(got - want).max():.2e} | {p32:.3f} | {p16:.3f} | {finite} |")
    rng = np.random.default_rng(0)
    for n, h, w in [(1, 7, 9), (3, 64, 48), (8, 300, 200)]:
        batch = rng.random((n, 3, h, w), dtype=np.float32)
        sigma = rng.uniform(0, 1, n).astype(np.float32)
        want, got = reference.backend.infer(batch, sigma), engine.backend.infer(batch, sigma)
        finite = bool(np.isfinite(got).all())
        failed |= not finite or np.abs(got - want).max() > 0.05
        print(f"| random batch {n}x{h}x{w} | {np.abs(got - want).max():.2e} | - | - | {finite} |")
    trt = engine.backend
    tile_shape = (engine.max_batch, 3, *(t + 2 * engine.overlap for t in engine.tile))  # every full batch of tiles
    batch = rng.random(tile_shape, dtype=np.float32)
    sigma = np.full(tile_shape[0], 0.2, np.float32)
    timings = {}
    for graphs in (False, True):
        trt.cuda_graphs = graphs
        results = [trt.infer(batch, sigma) for _ in range(3)]  # with graphs, the first one captures
        started = time.perf_counter()
        for _ in range(20):
            trt.infer(batch, sigma)
        timings[graphs] = (time.perf_counter() - started) / 20
        timings[f"out{graphs}"] = results[-1]
    diff = np.abs(timings["outTrue"] - timings["outFalse"]).max()
    failed |= diff > 1e-3 or not np.isfinite(timings["outTrue"]).all()
    print(f"\nfull tile batch {tile_shape}: {timings[False] * 1000:.1f} ms without a CUDA graph, "
          f"{timings[True] * 1000:.1f} ms with one ({len(trt.graphs)} graphs captured); max diff {diff:.2e}")
    image = rng.random((1024, 1536, 3), dtype=np.float32)
    started = time.perf_counter()
    engine.denoise_rgb(image, 0.2)
    seconds = time.perf_counter() - started
    print(f"\n1.57 MP image, tiled: {seconds * 1000:.0f} ms ({image.shape[0] * image.shape[1] / 1e6 / seconds:.1f} MP/s)")
    print("RESULT:", "FAILED" if failed else "ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
