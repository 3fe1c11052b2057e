"""``denoise export``: checkpoint -> verified FP32 ONNX -> verified FP16 ONNX -> TensorRT engine, and the
verified INT8 ONNX of a quantization-aware checkpoint for the CPU.

Each step runs only when asked for, and each verifies its result before the next uses it. Output
files in the output folder: ``model.onnx`` + ``model.json`` (the card), ``model.fp16.onnx``, ``model.int8.onnx`` (the
names: ``denoise.model_files``); engines go to the per-user engine cache (see ``runtime.engine_cache``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from denoise.atomic import atomic_write_text
from denoise.errors import DenoiseError
from denoise.export.onnx_export import DEFAULT_OPSET, export_onnx
from denoise.model import EstimatorConfig, config_from_dict
from denoise.model_files import MODEL_NAME, card_path, fp16_sibling, int8_sibling
from denoise.runtime.tiling import DEFAULT_MAX_BATCH, DEFAULT_TILE, engine_profile, overlap_for


def export_model(checkpoint: Path, out_dir: Path, fp16: bool = False, engine: bool = False, int8_from: Path | None = None,
                 opset: int = DEFAULT_OPSET, tile: tuple[int, int] = (DEFAULT_TILE, DEFAULT_TILE),
                 max_batch: int = DEFAULT_MAX_BATCH, version_compatible: bool = False,
                 hardware_compatible: bool = False, verify_images: Path | None = None,
                 say: Callable[[str], None] = print) -> dict:
    """Run the asked-for steps; returns the paths written. Raises DenoiseError naming the failed step."""
    out_dir = Path(out_dir)
    fp32_path = out_dir / MODEL_NAME
    card, reports = export_onnx(Path(checkpoint), fp32_path, opset=opset)
    say(f"wrote {fp32_path} (opset {opset}) and {card_path(fp32_path)}")
    say("FP32 check, ONNX Runtime (CPU) vs PyTorch on random inputs:")
    for report in reports:
        say(report.line())
    written = {"onnx": str(fp32_path), "card": str(card_path(fp32_path))}

    build_from, precision = fp32_path, "fp32"
    config = config_from_dict(card["config"])
    if isinstance(config, EstimatorConfig):
        if fp16 or engine or int8_from:  # it is a few % of the denoiser's work: ONNX Runtime runs it beside every backend
            say("the noise estimator stays FP32 (no FP16 or INT8 ONNX or engine: it runs in ONNX Runtime beside every backend)")
        return written
    if int8_from is not None:
        written["onnx_int8"] = str(write_int8(Path(int8_from), fp32_path, card, verify_images, say))
    if fp16 or engine:
        from denoise.export.fp16 import export_fp16

        fp16_path = fp16_sibling(fp32_path)
        fp16_reports = export_fp16(fp32_path, fp16_path, verify_images)
        say(f"wrote {fp16_path}")
        say(f"FP16 check, PSNR on {'images in ' + str(verify_images) if verify_images else 'procedural test images'} "
            f"(ONNX Runtime CPU):")
        for report in fp16_reports:
            say(report.line())
        written["onnx_fp16"] = str(fp16_path)
        build_from, precision = fp16_path, "fp16"

    if engine:
        from denoise.runtime.tensorrt_build import build_engine

        overlap = overlap_for(config.receptive_radius, config.shuffle)
        profile = engine_profile(tile, overlap, max_batch, sigma_map=bool(config.sigma_map))
        try:
            path, built = build_engine(build_from, precision, profile, version_compatible, hardware_compatible)
        except DenoiseError as exc:
            raise DenoiseError(f"{exc} (the ONNX files above were written and verified)") from None
        say(f"{'built' if built else 'reused cached'} TensorRT engine {path} "
            f"(profile max {profile[0][3]}, overlap {overlap})")
        written["engine"] = str(path)
    return written


def write_int8(qat_checkpoint: Path, fp32_path: Path, card: dict, verify_images: Path | None, say: Callable[[str], None]) -> Path:
    """The verified INT8 sibling of ``fp32_path``, from a QAT checkpoint (that of ``fp32_path`` or a QAT fine-tune of
    it), checked against ``fp32_path``; the card beside it gains an "int8" entry saying what was checked."""
    import json

    from denoise.export.int8 import export_int8

    int8_path = int8_sibling(fp32_path)
    checked = export_int8(qat_checkpoint, fp32_path, int8_path, verify_images)
    say(f"wrote {int8_path}")
    say(f"INT8 check, PSNR on {'images in ' + str(verify_images) if verify_images else 'procedural test images'} "
        "(ONNX Runtime CPU), the fake-quantized PyTorch model, and the kernels ONNX Runtime ran:")
    for report in checked["reports"]:  # above sigma_max a drop is not a failure: those images run in FP32
        say(report.line(failed="FAILED" if report.sigma <= checked["sigma_max"] else "FP32 runs these"))
    say(f"  -> INT8 runs images with noise up to sigma {checked['sigma_max']:g}; the runtime runs noisier ones in FP32")
    for match in checked["matches"]:
        say(match.line())
    say(f"  kernels run: {checked['kernels'].get('QLinearConv', 0)} QLinearConv (INT8), {checked['kernels'].get('Conv', 0)} "
        "Conv (FP32) -> ok")
    from denoise.runtime.precision import VPMADDUBSW_MAX, avx2_exact

    exact = avx2_exact({"int8": checked["card_entry"]})  # what the runtime will decide from the card written below
    say(f"  AVX2: two UINT8 x INT8 products of one channel sum to at most {checked['pair_sum_max']} "
        + (f"(<= {VPMADDUBSW_MAX}: exact in vpmaddubsw's 16 bits; AVX2 CPUs run it)" if exact else
           f"(> {VPMADDUBSW_MAX}: vpmaddubsw's 16-bit sums could saturate; AVX2 CPUs run FP32, VNNI ones INT8)"))
    card["int8"] = checked["card_entry"]
    atomic_write_text(card_path(fp32_path), json.dumps(card, indent=2) + "\n")
    return int8_path
