"""Which layers carry the INT8 loss? Each Conv of the bundled model quantized alone (ONNX Runtime static QDQ,
per-channel INT8 weights, 8-bit activations, min/max calibration as in int8_ptq.py), the others FP32: PSNR
lost at sigma 25/255 on the held-out photos. A map for quantization-aware training (issue 17): the layers
that lose most alone are where QAT (or keeping them wider) must work.

    python benchmarks/int8_sensitivity.py --photos ../shared/data/cbsd68
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

from int8_ptq import Calibration, run, session
from denoise.datasets import load_eval_images, load_images
from denoise.evaluate import noisy_images
from denoise.metrics import psnr_uint8, to_uint8
from denoise.weights import DEFAULT_MODEL


def mean_psnr(sess, photos, noisy, sigma) -> float:
    return float(np.mean([psnr_uint8(c, to_uint8(run(sess, n, sigma))) for c, n in zip(photos, noisy)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=Path("../shared/data/cbsd68"))
    args = parser.parse_args()
    photos = load_eval_images(args.photos, None, held_out=True)
    sigma = 25 / 255
    noisy = noisy_images(photos, sigma, "gaussian", 0)[0]
    calibration = load_images(args.photos, "train")[:4]
    convs = [n.name for n in onnx.load(str(DEFAULT_MODEL)).graph.node if n.op_type == "Conv"]
    reference = mean_psnr(session(DEFAULT_MODEL), photos, noisy, sigma)
    print(f"FP32: {reference:.2f} dB at sigma 25 ({len(photos)} held-out photos)\n")
    print("| Conv (graph order) | PSNR with only it INT8 | lost (dB) |\n|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for index, name in enumerate(convs):
            path = Path(tmp) / "q.onnx"
            with contextlib.chdir(tmp):
                quantize_static(str(DEFAULT_MODEL), str(path), Calibration(calibration), quant_format=QuantFormat.QDQ,
                                per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                op_types_to_quantize=["Conv"], nodes_to_quantize=[name])
            value = mean_psnr(session(path), photos, noisy, sigma)
            print(f"| {index} ({name}) | {value:.2f} | {reference - value:.2f} |", flush=True)


if __name__ == "__main__":
    main()
