"""Cost and quality of every model configuration, CBM3D and OpenCV NLM on the same photos, in one run.

For each CAE configuration (random weights: speed does not depend on them) it reports parameters,
multiply-adds per pixel, and megapixels per second in ONNX Runtime (CPU, FP32) and PyTorch eager; for
the bundled model, CBM3D (`bm3d`) and OpenCV's fastNlMeansDenoisingColored (h tuned per sigma on the
first image) it also reports PSNR on the same noisy photos (uint8 protocol, seeded).

    python benchmarks/cost.py --photos ../shared/data/cbsd68 --count 4 --sigma 25/255 --json out.json

Timings are medians of --repeats runs per image; compare them as ratios within one run (our CPU
machines are noisy), and quote absolute numbers only with the machine and date.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up (allocations, ORT's first-run optimisation)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def load_photos(folder: Path, count: int, held_out: bool) -> list[np.ndarray]:
    from denoise.datasets import load_eval_images

    return load_eval_images(folder, count, held_out)


def model_costs(photos, repeats: int) -> list[dict]:
    import onnxruntime as ort
    import torch

    from denoise.export.onnx_export import write_onnx
    from denoise.model import CONFIGS, build_model, count_parameters, with_plain_convolutions

    rows = []
    image = photos[0].astype(np.float32)[None].transpose(0, 3, 1, 2) / 255.0
    megapixels = image.shape[2] * image.shape[3] / 1e6
    sigma = np.array([0.1], np.float32)
    for name, config in CONFIGS.items():
        model = build_model(config).eval()
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "m.onnx"
            write_onnx(with_plain_convolutions(model), path)  # as `denoise export` writes it
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            feeds = {"noisy": image, "sigma": sigma} if len(session.get_inputs()) == 2 else {"noisy": image}
            ort_s = median_seconds(lambda: session.run(None, feeds), repeats)
        with torch.inference_mode():
            x, s = torch.from_numpy(image), torch.from_numpy(sigma)
            torch_s = median_seconds(lambda: model(x, s), repeats)
        rows.append({"method": f"CAE {name}", "params": count_parameters(model),
                     "macs_per_pixel": config.macs_per_pixel(), "onnxruntime_mp_s": megapixels / ort_s,
                     "torch_eager_mp_s": megapixels / torch_s, "ort_over_torch": torch_s / ort_s})
    return rows


def quality_and_speed(photos, sigma: float, repeats: int) -> list[dict]:
    """PSNR and MP/s of the bundled model (plain and x8 self-ensemble), CBM3D and NLM on the same noisy photos."""
    import bm3d
    import cv2

    from denoise import Denoiser
    from denoise.metrics import psnr_uint8, to_uint8
    from denoise.noise import add_noise

    denoiser = Denoiser(backend="cpu", precision="fp32")
    ensemble = Denoiser(backend="cpu", ensemble=True, precision="fp32")
    noisy = [to_uint8(add_noise(p / 255.0, sigma, "uint8", np.random.default_rng([0, i])))
             for i, p in enumerate(photos)]

    def nlm(image, h):
        return cv2.fastNlMeansDenoisingColored(image, None, h, h, 7, 21)

    # Tune NLM's h on the first image (generous to NLM: it sees the answer).
    best_h = max(range(3, 40, 2), key=lambda h: psnr_uint8(photos[0], nlm(noisy[0], h)))
    methods = {
        "bundled model (ONNX Runtime CPU)": lambda im: denoiser.denoise(im, sigma),
        "bundled model, --ensemble (x8)": lambda im: ensemble.denoise(im, sigma),
        f"OpenCV NLM (h={best_h})": lambda im: nlm(im, best_h),
        "CBM3D (bm3d package)": lambda im: to_uint8(bm3d.bm3d_rgb(im / 255.0, sigma_psd=sigma)),
    }
    rows = []
    for name, fn in methods.items():
        psnrs, seconds, pixels = [], 0.0, 0
        for clean, image in zip(photos, noisy):
            psnrs.append(psnr_uint8(clean, fn(image)))
            reps = repeats if "CBM3D" not in name else 1  # CBM3D takes tens of seconds an image
            seconds += median_seconds(lambda: fn(image), reps) if reps > 1 else _once(fn, image)
            pixels += clean.shape[0] * clean.shape[1]
        rows.append({"method": name, "psnr": float(np.mean(psnrs)), "mp_s": pixels / 1e6 / seconds})
    return rows


def _once(fn, image) -> float:
    t = time.perf_counter()
    fn(image)
    return time.perf_counter() - t


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=Path("../shared/data/cbsd68"))
    parser.add_argument("--count", type=int, default=4)
    parser.add_argument("--sigma", default="25/255")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--held-out", action="store_true",
                        help="Only the photos `denoise train` holds out of the folder (every 10th): the bundled model saw the rest")
    args = parser.parse_args()
    from denoise.noise import parse_sigma

    sigma = parse_sigma(args.sigma)
    photos = load_photos(args.photos, args.count, args.held_out)
    result = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {platform.processor()}",
              "photos": f"{args.photos} (first {len(photos)}{' held out' if args.held_out else ''})", "sigma": args.sigma,
              "models": model_costs(photos, args.repeats), "methods": quality_and_speed(photos, sigma, args.repeats)}
    print("| model | parameters | multiply-adds / pixel | ORT CPU MP/s | PyTorch eager MP/s | ORT / eager |")
    print("|---|---|---|---|---|---|")
    for r in result["models"]:
        print(f"| {r['method']} | {r['params']:,} | {r['macs_per_pixel'] / 1e3:,.0f} k | {r['onnxruntime_mp_s']:.3f} | "
              f"{r['torch_eager_mp_s']:.3f} | {r['ort_over_torch']:.2f}x |")
    print()
    print(f"| method (sigma {args.sigma}, uint8 protocol) | PSNR (dB) | MP/s |")
    print("|---|---|---|")
    for r in result["methods"]:
        print(f"| {r['method']} | {r['psnr']:.2f} | {r['mp_s']:.4f} |")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
