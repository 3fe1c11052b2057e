"""How well `--sigma auto` does: the noise estimator's map against the true level, and the PSNR it gives
beside the PSNR with the true level, on white noise and on synthesized camera noise.

For every photo and noise level, the same seeded noisy image is denoised twice with the bundled model:
once with the true level (white noise: the sigma that made it; camera noise: the true local level map of
denoise.camera_noise), once with `sigma="auto"` (the bundled estimator's map). The level error is the
per-pixel |20 log10(estimated / true)| in dB (both floored at 1/255), and the bias of the image means.

    python benchmarks/auto_sigma.py --photos ../shared/data/cbsd68 --held-out \
        --sigma 15/255 --sigma 25/255 --sigma 50/255 --camera 0.01 --camera 0.03 --camera 0.08 --jpeg-12mp

``--jpeg-12mp``: one 12-megapixel photo (4000x3000, tiled from a sample photo with flips) with white noise of
15/255 saved as JPEG quality 92, as a camera-size file; its true level is the RMS of the decoded JPEG
against the clean photo (JPEG removes part of the noise). ``--model``/``--estimator``: other exported files.

Quality only (no timing), so it can run on a busy machine.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from denoise import Denoiser
from denoise.camera_noise import camera_noise
from denoise.datasets import load_eval_images
from denoise.evaluate import noisy_images
from denoise.metrics import psnr_uint8, to_uint8
from denoise.noise import parse_sigma

FLOOR = 1 / 255


def estimated_map(denoiser: Denoiser, noisy: np.ndarray) -> np.ndarray:
    """The map ``--sigma auto`` gives the denoiser: the estimator's, raised for real noise (runtime.real_noise)."""
    return denoiser.resolve_sigma("auto", noisy)


def row(denoiser, pairs) -> dict:
    """pairs: (noisy, reference uint8, true level: a number or a map)."""
    errors, bias, psnr_true, psnr_auto, means = [], [], [], [], []
    for noisy, reference, level in pairs:
        estimate = estimated_map(denoiser, noisy)
        true = np.broadcast_to(np.float32(level), estimate.shape)
        errors.append(float(np.abs(20 * np.log10((estimate + FLOOR) / (true + FLOOR))).mean()))
        bias.append(float(20 * np.log10((estimate.mean() + FLOOR) / (true.mean() + FLOOR))))
        means.append((float(true.mean()) * 255, float(estimate.mean()) * 255))
        psnr_true.append(psnr_uint8(reference, to_uint8(denoiser.denoise(noisy, level))))
        psnr_auto.append(psnr_uint8(reference, to_uint8(denoiser.denoise(noisy, "auto"))))
    true_mean, est_mean = np.mean(means, axis=0)
    return {"images": len(pairs), "true255": true_mean, "estimate255": est_mean, "error_db": np.mean(errors),
            "bias_db": np.mean(bias), "psnr_true": np.mean(psnr_true), "psnr_auto": np.mean(psnr_auto)}


def jpeg_photo(seed: int, width: int = 4000, height: int = 3000, sigma: float = 15 / 255, quality: int = 92):
    """(noisy uint8 as decoded from the JPEG, clean uint8) of the 12 MP case (module docstring)."""
    import io

    from PIL import Image

    with Image.open(Path(__file__).resolve().parents[1] / "samples" / "clean" / "cbsd68-101087.png") as im:
        base = np.asarray(im.convert("RGB"))
    tiles = [base, base[:, ::-1], base[::-1], base[::-1, ::-1]]
    rows, cols = -(-height // base.shape[0]), -(-width // base.shape[1])
    clean = np.concatenate([np.concatenate([tiles[(r * 2 + c) % 4] for c in range(cols)], axis=1)
                            for r in range(rows)], axis=0)[:height, :width]
    noise = np.random.default_rng(seed).normal(0, sigma * 255, clean.shape)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(clean + noise, 0, 255).round().astype(np.uint8)).save(buffer, format="JPEG", quality=quality)
    with Image.open(buffer) as im:
        return np.asarray(im.convert("RGB")), clean


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=Path("../shared/data/cbsd68"))
    parser.add_argument("--held-out", action="store_true", help="only the photos `denoise train` holds out")
    parser.add_argument("--sigma", action="append", default=None, help="white noise levels")
    parser.add_argument("--protocol", default="gaussian", help="white noise protocol")
    parser.add_argument("--camera", action="append", default=None, help="camera noise strengths (denoise.camera_noise)")
    parser.add_argument("--jpeg-12mp", action="store_true", help="the 12 MP white-noise JPEG case (docstring)")
    parser.add_argument("--model", type=Path, default=None, help="an exported denoiser (default: bundled)")
    parser.add_argument("--estimator", type=Path, default=None, help="an exported estimator (default: bundled)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    photos = load_eval_images(args.photos, None, args.held_out)
    denoiser = Denoiser(args.model, backend="cpu", precision="fp32", estimator=args.estimator)
    if denoiser.estimator is None:
        raise SystemExit("this model has no noise estimator (it takes one level per image)")
    print("| noise | images | true level (x255, mean) | estimate (x255, mean) | level error, per pixel (dB) | "
          "bias of the mean (dB) | PSNR, true level | PSNR, auto | auto - true (dB) |")
    print("|---|---|---|---|---|---|---|---|---|")
    rows = []
    for text in args.sigma or ["15/255", "25/255", "50/255"]:
        sigma = parse_sigma(text)
        noisy, references = noisy_images(photos, sigma, args.protocol, args.seed)
        rows.append((f"{args.protocol} {text}", row(denoiser, [(n, r, sigma) for n, r in zip(noisy, references)])))
    for text in args.camera or ["0.01", "0.03", "0.08"]:
        strength = float(text)
        triples = [camera_noise(im / np.float32(255), np.random.default_rng([args.seed, i, 7]), sigma=strength)
                   for i, im in enumerate(photos)]
        rows.append((f"camera {text}", row(denoiser, [(n, to_uint8(t), lv) for n, t, lv in triples])))
    if args.jpeg_12mp:
        noisy, clean = jpeg_photo(args.seed)
        true = float(np.sqrt(((noisy.astype(np.float64) - clean) ** 2).mean())) / 255
        rows.append(("12 MP JPEG q92, white 15/255", row(denoiser, [(noisy / np.float32(255), clean, true)])))
    for name, r in rows:
        print(f"| {name} | {r['images']} | {r['true255']:.2f} | {r['estimate255']:.2f} | {r['error_db']:.2f} | "
              f"{r['bias_db']:+.2f} | {r['psnr_true']:.2f} | {r['psnr_auto']:.2f} | {r['psnr_auto'] - r['psnr_true']:+.2f} |")


if __name__ == "__main__":
    main()
