"""FP32 ONNX -> FP16 ONNX with FP32 inputs and outputs, verified on images before anyone trusts it.

Conversion: onnxconverter-common's ``convert_float_to_float16`` (maintained by the ONNX project) with
``keep_io_types=True``, so callers still feed and read float32. Every node runs in FP16: FP16's step
near 1.0 is 2**-11, a twentieth of an 8-bit grey level, so even the final residual subtraction loses
nothing visible. (Keeping the output node in FP32 with ``node_block_list`` makes onnxconverter-common
1.16 emit an FP16 graph output despite ``keep_io_types``; a test checks the output type.) TensorRT 11
has no FP16 builder flag, so this FP16 graph is also what engines are built from.

Verification: no NaN/Inf on the verification images, and PSNR against the clean images within
``MAX_PSNR_DROP_DB`` of the FP32 model on the same noisy inputs (ONNX Runtime, CPU).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from denoise.errors import DenoiseError, missing_extra
from denoise.metrics import psnr_uint8, to_uint8
from denoise.noise import add_noise

MAX_PSNR_DROP_DB = 0.05
VERIFY_SIGMAS = (0.05, 0.2, 0.5)


@dataclass
class Fp16Report:
    sigma: float
    psnr_fp32: float
    psnr_fp16: float
    max_abs: float
    finite: bool

    @property
    def ok(self) -> bool:
        return self.finite and self.psnr_fp32 - self.psnr_fp16 <= MAX_PSNR_DROP_DB

    def line(self) -> str:
        return (f"  sigma {self.sigma:g}: PSNR fp32 {self.psnr_fp32:.3f} dB, fp16 {self.psnr_fp16:.3f} dB "
                f"(drop {self.psnr_fp32 - self.psnr_fp16:+.3f}), max |fp16 - fp32| {self.max_abs:.2e}, "
                f"{'finite' if self.finite else 'NaN/Inf!'} -> {'ok' if self.ok else 'FAILED'}")


def convert_fp16(fp32_path: Path, fp16_path: Path) -> None:
    try:
        import onnx
        from onnxconverter_common import float16
    except ImportError:
        raise missing_extra("onnx and onnxconverter-common", "train") from None
    import warnings

    model = onnx.load(str(fp32_path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # it warns for every weight below FP16's smallest normal
        converted = float16.convert_float_to_float16(model, keep_io_types=True)
    for prop in converted.metadata_props:
        if prop.key == "precision":
            prop.value = "fp16"
            break
    else:
        converted.metadata_props.add(key="precision", value="fp16")
    onnx.checker.check_model(converted, full_check=True)
    onnx.save(converted, str(fp16_path))


def verification_images(folder: Path | None = None, size: int = 96) -> list[np.ndarray]:
    """Clean float images: the ones in ``folder`` when given, else procedural ones (gradients, edges,
    fine texture) that exist wherever the package is installed."""
    if folder is not None:
        from denoise.evaluate import load_eval_images

        return [im.astype(np.float32) / 255.0 for im in load_eval_images(folder, 8)]
    yy, xx = np.mgrid[0:size, 0:size] / size
    images = []
    for k in range(4):
        base = np.stack([xx, yy, 0.5 + 0.4 * np.sin(6.28 * (k + 1) * xx * yy)], axis=2)
        base[(xx - 0.5) ** 2 + (yy - 0.5) ** 2 < 0.04 * (k + 1)] *= 0.4  # a disc with a hard edge
        stripes = 0.1 * np.sign(np.sin(40 * xx + 10 * k))[..., None]
        images.append(np.clip(base + stripes, 0, 1).astype(np.float32))
    return images


def verify_fp16(fp32_path: Path, fp16_path: Path, images: list[np.ndarray], seed: int = 0) -> list[Fp16Report]:
    from denoise.runtime.onnx_backend import OnnxRuntimeBackend

    backends = [OnnxRuntimeBackend(p, backend="cpu") for p in (fp32_path, fp16_path)]
    reports = []
    for sigma in VERIFY_SIGMAS:
        scores = {0: [], 1: []}
        max_abs, finite = 0.0, True
        for index, clean in enumerate(images):
            noisy = add_noise(clean, sigma, "clip", np.random.default_rng([seed, index]))
            level = np.full((1, 1) + noisy.shape[:2], sigma, np.float32)
            outs = []
            for which, backend in enumerate(backends):
                out = backend.infer(noisy.transpose(2, 0, 1)[None].copy(), level)[0]
                outs.append(out)
                finite &= bool(np.isfinite(out).all())
                scores[which].append(psnr_uint8(to_uint8(clean), to_uint8(np.nan_to_num(out).transpose(1, 2, 0))))
            max_abs = max(max_abs, float(np.nanmax(np.abs(outs[0] - outs[1]))))
        reports.append(Fp16Report(sigma, float(np.mean(scores[0])), float(np.mean(scores[1])), max_abs, finite))
    return reports


def export_fp16(fp32_path: Path, fp16_path: Path, images_folder: Path | None = None) -> list[Fp16Report]:
    """Convert and verify; raise DenoiseError with the numbers when the FP16 model is not good enough."""
    convert_fp16(fp32_path, fp16_path)
    reports = verify_fp16(fp32_path, fp16_path, verification_images(images_folder))
    if not all(r.ok for r in reports):
        fp16_path.unlink(missing_ok=True)  # never leave an untrustworthy model where the runtime looks
        raise DenoiseError("FP16 model failed verification (file removed):\n" + "\n".join(r.line() for r in reports))
    return reports
