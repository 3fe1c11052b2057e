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

from pathlib import Path

from denoise.atomic import atomic_save_onnx
from denoise.errors import DenoiseError, missing_extra
from denoise.export.precision_check import PrecisionReport, compare_precision, verification_images

MAX_PSNR_DROP_DB = 0.05


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
    atomic_save_onnx(converted, fp16_path)


def export_fp16(fp32_path: Path, fp16_path: Path, images_folder: Path | None = None) -> list[PrecisionReport]:
    """Convert and verify; raise DenoiseError with the numbers when the FP16 model is not good enough."""
    convert_fp16(fp32_path, fp16_path)
    reports = compare_precision(fp32_path, fp16_path, "fp16", verification_images(images_folder), MAX_PSNR_DROP_DB)
    if not all(r.ok for r in reports):
        fp16_path.unlink(missing_ok=True)  # never leave an untrustworthy model where the runtime looks
        raise DenoiseError("FP16 model failed verification (file removed):\n" + "\n".join(r.line() for r in reports))
    return reports
