"""Is a lower-precision model (FP16, INT8) as good as its FP32 model? PSNR against the clean images, on the
same noisy inputs, at several noise levels, in ONNX Runtime on the CPU. Export runs this after every
conversion and keeps the file only when every level is within the allowed drop."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from denoise.metrics import psnr_uint8, to_uint8
from denoise.noise import add_noise

VERIFY_SIGMAS = (0.05, 0.2, 0.5)


@dataclass
class PrecisionReport:
    sigma: float
    precision: str  # of the model checked: "fp16", "int8"
    psnr_fp32: float
    psnr_other: float
    max_abs: float
    finite: bool
    max_drop_db: float

    @property
    def ok(self) -> bool:
        return self.finite and self.psnr_fp32 - self.psnr_other <= self.max_drop_db

    def line(self, failed: str = "FAILED") -> str:
        """One line of the export's output; ``failed``: what a failed check is called (INT8 above its verified range:
        not a failure, FP32 runs those images)."""
        return (f"  sigma {self.sigma:g}: PSNR fp32 {self.psnr_fp32:.3f} dB, {self.precision} {self.psnr_other:.3f} dB "
                f"(drop {self.psnr_fp32 - self.psnr_other:+.3f}, at most {self.max_drop_db:g}), "
                f"max |{self.precision} - fp32| {self.max_abs:.2e}, "
                f"{'finite' if self.finite else 'NaN/Inf!'} -> {'ok' if self.ok else failed}")


def verification_images(folder: Path | None = None, size: int = 96) -> list[np.ndarray]:
    """Clean float images: the ones in ``folder`` when given, else procedural ones (gradients, edges,
    fine texture) that exist wherever the package is installed."""
    if folder is not None:
        from denoise.datasets import load_eval_images

        return [im.astype(np.float32) / 255.0 for im in load_eval_images(folder, 8)]
    yy, xx = np.mgrid[0:size, 0:size] / size
    images = []
    for k in range(4):
        base = np.stack([xx, yy, 0.5 + 0.4 * np.sin(6.28 * (k + 1) * xx * yy)], axis=2)
        base[(xx - 0.5) ** 2 + (yy - 0.5) ** 2 < 0.04 * (k + 1)] *= 0.4  # a disc with a hard edge
        stripes = 0.1 * np.sign(np.sin(40 * xx + 10 * k))[..., None]
        images.append(np.clip(base + stripes, 0, 1).astype(np.float32))
    return images


Model = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (noisy [1,3,H,W], sigma map [1,1,H,W]) -> [1,3,H,W]


@dataclass
class PairedRun:
    """Two models on the same noisy images at one noise level (``paired_runs``)."""

    sigma: float
    psnr: tuple[float, float]  # each model's mean PSNR against the clean images
    max_abs: float  # the largest |difference| of their outputs
    mean_abs: float  # the mean over the images of each image's mean |difference|
    finite: bool  # every output of both was finite


def paired_runs(models: tuple[Model, Model], images: list[np.ndarray], sigmas, seed: int) -> list[PairedRun]:
    """Both ``models`` on the same noisy versions of ``images`` (clip noise, drawn with ``seed`` per image) at each
    sigma: the one loop behind the FP16 / INT8 checks against FP32 and the INT8 ONNX's match to its PyTorch model."""
    runs = []
    for sigma in sigmas:
        scores = ([], [])
        max_abs, diffs, finite = 0.0, [], True
        for index, clean in enumerate(images):
            noisy = add_noise(clean, sigma, "clip", np.random.default_rng([seed, index])).transpose(2, 0, 1)[None].copy()
            level = np.full((1, 1) + noisy.shape[2:], sigma, np.float32)
            outs = []
            for which, model in enumerate(models):
                out = model(noisy, level)
                outs.append(out)
                finite &= bool(np.isfinite(out).all())
                scores[which].append(psnr_uint8(to_uint8(clean), to_uint8(np.nan_to_num(out[0]).transpose(1, 2, 0))))
            difference = np.abs(outs[0] - outs[1])
            max_abs = max(max_abs, float(np.nanmax(difference)))
            diffs.append(float(difference.mean()))
        runs.append(PairedRun(sigma, (float(np.mean(scores[0])), float(np.mean(scores[1]))), max_abs,
                              float(np.mean(diffs)), finite))
    return runs


def compare_precision(fp32_path: Path, other_path: Path, precision: str, images: list[np.ndarray],
                      max_drop_db: float, sigmas=VERIFY_SIGMAS, seed: int = 0) -> list[PrecisionReport]:
    from denoise.runtime.onnx_backend import OnnxRuntimeBackend

    backends = [OnnxRuntimeBackend(p, backend="cpu") for p in (fp32_path, other_path)]
    runs = paired_runs((backends[0].infer, backends[1].infer), images, sigmas, seed)
    return [PrecisionReport(run.sigma, precision, run.psnr[0], run.psnr[1], run.max_abs, run.finite, max_drop_db)
            for run in runs]
