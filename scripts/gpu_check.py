"""Check the TensorRT path on a machine with an NVIDIA GPU, TensorRT and cuda-python.

    pip install -e '.[cpu,tensorrt]' && python scripts/gpu_check.py

Builds (or reuses) an FP16 engine from the bundled model and runs it through the runtime's TensorRT backend,
comparing it with ONNX Runtime on the CPU -- FP32 (the reference) and the same FP16 ONNX the engine was built
from -- as a table:
  * the sample photos (PSNR against the clean samples: FP16 may lose at most 0.05 dB);
  * random batches of several shapes with noise maps that vary;
  * a 1.57 MP image, tiled, against ONNX Runtime's tiled result;
  * CUDA graphs: a full batch of tiles with and without graphs, and shapes A, B, A with graphs (each replay
    compared with a plain run), asserting that graphs were really captured and used.
Exits 1 if any check fails, 2 if this machine cannot run TensorRT (saying what is missing).

The team's CPU machines cannot install TensorRT, and the lent GPU machine has none either, so this script is
how the TensorRT path gets verified: run it where TensorRT is, and record the result.
"""

import sys
import time
from pathlib import Path

import numpy as np

from denoise import DenoiseError, Denoiser
from denoise.metrics import psnr_uint8, to_uint8
from denoise.model_files import fp16_sibling
from denoise.image_files import read_image
from denoise.runtime.onnx_backend import OnnxRuntimeBackend
from denoise.weights import DEFAULT_MODEL

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
FAILED = []


def check(ok: bool, what: str) -> str:
    if not ok:
        FAILED.append(what)
    return "ok" if ok else "FAILED"


def maps(rng, n, h, w):
    """Noise maps that vary across each image (a ramp of a random level)."""
    ramp = np.linspace(0.5, 1.5, w, dtype=np.float32)[None, None, None, :]
    return (rng.uniform(0.02, 0.3, (n, 1, 1, 1)) * ramp * np.ones((1, 1, h, 1))).astype(np.float32)


def main() -> int:
    reference = Denoiser(backend="cpu", precision="fp32")
    fp16_ort = OnnxRuntimeBackend(fp16_sibling(DEFAULT_MODEL), backend="cpu")
    started = time.perf_counter()
    try:
        engine = Denoiser(backend="tensorrt")
    except DenoiseError as exc:
        print(f"cannot check TensorRT here: {exc}")
        return 2
    print(f"engine ready in {time.perf_counter() - started:.1f}s (build or cache load)")
    print("| input | max abs diff vs ORT FP32 | vs ORT FP16 | PSNR ORT FP32 | PSNR TensorRT FP16 | check |")
    print("|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    # CUDA graphs first, while the backend has captured none (at most MAX_GRAPHS shapes are)
    trt = engine.backend
    tile_shape = (engine.max_batch, 3, *(t + 2 * engine.overlap for t in engine.tile))  # every full batch of tiles
    batches = {"A": (rng.random(tile_shape, dtype=np.float32), maps(rng, tile_shape[0], *tile_shape[2:])),
               "B": (rng.random((2, 3, 100, 60), dtype=np.float32), maps(rng, 2, 100, 60))}
    trt.cuda_graphs = False
    plain = {name: trt.infer(*inputs) for name, inputs in batches.items()}
    timings = {}
    started = time.perf_counter()
    for _ in range(20):
        trt.infer(*batches["A"])
    timings[False] = (time.perf_counter() - started) / 20
    trt.cuda_graphs = True
    for name in ("A", "B", "A", "B", "A"):
        got = trt.infer(*batches[name])
        verdict = check(np.abs(got - plain[name]).max() <= 1e-3, f"graph replay {name}")
        print(f"| CUDA graph, shape {name} {batches[name][0].shape} | {np.abs(got - plain[name]).max():.2e} vs plain run "
              f"| - | - | - | {verdict} |")
    used = trt.cuda_graphs and tile_shape in trt.graphs and batches["B"][0].shape in trt.graphs
    print(f"| graphs captured and used | {len(trt.graphs)} graphs, on {len(trt.contexts)} contexts | - | - | - | "
          f"{check(used, 'graphs used')} |")
    started = time.perf_counter()
    for _ in range(20):
        trt.infer(*batches["A"])
    timings[True] = (time.perf_counter() - started) / 20
    for noisy_path in sorted((SAMPLES / "noisy").glob("*.png")):
        noisy = read_image(noisy_path).rgb
        clean = to_uint8(read_image(SAMPLES / "clean" / noisy_path.name).rgb)
        want, got = reference.denoise_rgb(noisy, 0.1), engine.denoise_rgb(noisy, 0.1)
        p32, p16 = psnr_uint8(clean, to_uint8(want)), psnr_uint8(clean, to_uint8(np.nan_to_num(got)))
        verdict = check(bool(np.isfinite(got).all()) and p32 - p16 <= 0.05, noisy_path.name)
        print(f"| {noisy_path.name} | {np.abs(got - want).max():.2e} | - | {p32:.3f} | {p16:.3f} | {verdict} |")
    for n, h, w in [(1, 7, 9), (3, 64, 48), (8, 300, 200)]:
        batch = rng.random((n, 3, h, w), dtype=np.float32)
        sigma = maps(rng, n, h, w)
        want, half, got = reference.backend.infer(batch, sigma), fp16_ort.infer(batch, sigma), engine.backend.infer(batch, sigma)
        diff, diff16 = np.abs(got - want).max(), np.abs(got - half).max()
        verdict = check(bool(np.isfinite(got).all()) and diff <= 0.05, f"random batch {n}x{h}x{w}")
        print(f"| random batch {n}x{h}x{w}, varying maps | {diff:.2e} | {diff16:.2e} | - | - | {verdict} |")
    image = rng.random((1024, 1536, 3), dtype=np.float32)
    started = time.perf_counter()
    got = engine.denoise_rgb(image, 0.2)
    seconds = time.perf_counter() - started
    want = reference.denoise_rgb(image, 0.2)
    diff = np.abs(got - want).max()
    verdict = check(bool(np.isfinite(got).all()) and diff <= 0.05, "tiled 1.57 MP image")
    print(f"| 1.57 MP image, tiled ({seconds * 1000:.0f} ms) | {diff:.2e} | - | - | - | {verdict} |")

    print(f"\nfull tile batch {tile_shape}: {timings[False] * 1000:.1f} ms without a CUDA graph, "
          f"{timings[True] * 1000:.1f} ms with one")
    print(f"{image.shape[0] * image.shape[1] / 1e6 / seconds:.1f} MP/s on the tiled 1.57 MP image")
    engine.close()
    print("RESULT:", f"FAILED ({', '.join(FAILED)})" if FAILED else "ok")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
