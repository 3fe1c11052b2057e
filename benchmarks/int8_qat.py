"""Issue 17's table: FP32 against INT8 (quantization-aware and post-training) in one run -- PSNR on the held-out
photos at sigma 15/25/50 (gaussian and uint8 noise) and CPU speed, every model in ONNX Runtime on the CPU.

    python benchmarks/int8_qat.py --photos ../shared/data/cbsd68 --fp32 ref.onnx --qat denoise/weights/default.onnx

--fp32: the FP32 model to compare with (the one INT8 replaces); --qat: an exported model whose INT8 sibling
(model.int8.onnx, `denoise export --int8`) is measured, with its own FP32 (the QAT weights unquantized). The
PTQ row quantizes --fp32 with ONNX Runtime's static quantizer on the same layers (calibrated on 4 training photos at
sigma 0.02-0.4). Speed: one whole photo per call (481x321), --threads, median of --repeats, the models timed
in turn within each repeat so that the machine's drift falls on all of them alike, each session without spinning
threads as the runtime opens them (with spinning, a session's idle threads busy-wait after its run and slow the
next session's, the faster model's most; --spinning times them so).

--time-also MODEL.onnx ... adds the speed of other models to the same run (e.g. the INT8 model bundled before
tied grids: `git show 4578918:denoise/weights/default.int8.onnx > /tmp/int8-before-tied.onnx`).

--wide C adds the speed of a wider member of the family (C channels instead of 64; 90 is 1.97x the
multiply-adds) in FP32 and INT8 (the convs the QAT model quantizes, PTQ): untrained weights (its quality needs a training run a CPU
cannot give it), but speed does not depend on the weights.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

from int8_ptq import run, session
from denoise.datasets import load_eval_images, load_images
from denoise.evaluate import noisy_images
from denoise.metrics import psnr_uint8, to_uint8
from denoise.model import build_model
from denoise.model_files import int8_sibling
from denoise.quantize import float_layers

SIGMAS = (15, 25, 50)
FLOAT_CONVS = list(float_layers(build_model("fast")))  # the convs the QAT model keeps FP32: PTQ keeps the same


class Calibration(CalibrationDataReader):
    def __init__(self, photos: list[np.ndarray]):
        self.feeds = iter([{"noisy": n[:128, :128].transpose(2, 0, 1)[None].astype(np.float32),
                            "sigma": np.full((1, 1, 128, 128), s, np.float32)}
                           for s in (0.02, 0.05, 0.1, 0.2, 0.4) for n in noisy_images(photos, s, "gaussian", 1)[0]])

    def get_next(self):
        return next(self.feeds, None)


def ptq(fp32: Path, out: Path, photos: list[np.ndarray], keep_float: list[int]) -> Path:
    convs = [n.name for n in onnx.load(str(fp32)).graph.node if n.op_type == "Conv"]
    with contextlib.chdir(out.parent):  # the quantizer leaves temporary files in the working folder
        quantize_static(str(fp32), str(out), Calibration(photos), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, op_types_to_quantize=["Conv"],
                        nodes_to_exclude=[convs[i] for i in keep_float])
    return out


def quality(sess, photos) -> dict:
    return {(protocol, s): float(np.mean([psnr_uint8(c, to_uint8(run(sess, n, s / 255)))
                                          for c, n in zip(photos, noisy_images(photos, s / 255, protocol, 0)[0])]))
            for protocol in ("gaussian", "uint8") for s in SIGMAS}


def wide_model(channels: int, path: Path) -> Path:
    from dataclasses import replace

    from denoise.export.onnx_export import write_onnx
    from denoise.model import CONFIGS, with_plain_convolutions

    config = replace(CONFIGS["fast"], channels=channels)
    print(f"wide model: {channels} channels, {config.macs_per_pixel() / CONFIGS['fast'].macs_per_pixel():.2f}x the "
          "multiply-adds of the bundled one")
    write_onnx(with_plain_convolutions(build_model(config)), path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=Path("../shared/data/cbsd68"))
    parser.add_argument("--fp32", type=Path, required=True, help="the FP32 model INT8 replaces")
    parser.add_argument("--qat", type=Path, required=True, help="an exported QAT model (with model.int8.onnx beside it)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--wide", type=int, default=0, help="channels of a wider model to time (0: none)")
    parser.add_argument("--spinning", action="store_true",
                        help="sessions with spinning threads (ONNX Runtime's default; how this was timed before 2026-12-01's fourth session)")
    parser.add_argument("--time-also", type=Path, nargs="*", default=[], help="other models to time in the same run")
    args = parser.parse_args()
    held_out = load_eval_images(args.photos, None, held_out=True)
    with tempfile.TemporaryDirectory() as tmp:
        models = {"FP32 (--fp32)": args.fp32, "FP32 of the QAT weights": args.qat,
                  "INT8, QAT": int8_sibling(args.qat),
                  "INT8, PTQ of --fp32 (same convs)": ptq(args.fp32, Path(tmp) / "ptq.onnx",
                                                          load_images(args.photos, "train")[:4], FLOAT_CONVS)}
        sessions = {label: session(path, args.threads, args.spinning) for label, path in models.items()}
        scores = {label: quality(sess, held_out) for label, sess in sessions.items()}
        for path in args.time_also:
            sessions[f"{path.name} (speed only)"] = session(path, args.threads, args.spinning)
        if args.wide:
            wide = wide_model(args.wide, Path(tmp) / "wide.onnx")
            for label, path in ((f"FP32, {args.wide} channels (untrained)", wide),
                                (f"INT8, {args.wide} channels (untrained, PTQ)",
                                 ptq(wide, Path(tmp) / "wide.int8.onnx", load_images(args.photos, "train")[:4], FLOAT_CONVS))):
                sessions[label] = session(path, args.threads, args.spinning)
        photo = noisy_images(held_out[:1], 0.1, "gaussian", 0)[0][0]
        times = {label: [] for label in sessions}
        for _ in range(args.repeats):
            for label, sess in sessions.items():
                start = time.perf_counter()
                run(sess, photo, 0.1)
                times[label].append(time.perf_counter() - start)
    megapixels = photo.shape[0] * photo.shape[1] / 1e6
    base = float(np.median(times["FP32 (--fp32)"]))
    head = " | ".join(f"{p} {s}" for p in ("gaussian", "uint8") for s in SIGMAS)
    print(f"| model ({len(held_out)} held-out photos) | {head} | CPU MP/s | x FP32 |")
    print("|---|" + "---|" * (2 * len(SIGMAS) + 2))
    for label in sessions:
        row = " | ".join(f"{scores[label][(p, s)]:.2f}" if label in scores else "-" for p in ("gaussian", "uint8") for s in SIGMAS)
        median = float(np.median(times[label]))
        print(f"| {label} | {row} | {megapixels / median:.3f} | {base / median:.2f} |")
    reference = scores["FP32 (--fp32)"]
    for label in list(scores)[1:]:
        drops = ", ".join(f"{p} {s}: {reference[(p, s)] - scores[label][(p, s)]:+.3f}" for p in ("gaussian", "uint8") for s in SIGMAS)
        print(f"dB lost against --fp32, {label}: {drops}")


if __name__ == "__main__":
    main()
