"""Would INT8 make the CPU model faster without hurting it? ONNX Runtime static post-training quantization
(QDQ, per-channel INT8 weights) of the bundled model: PSNR on the held-out photos and CPU MP/s, vs FP32.

    python benchmarks/int8_ptq.py --photos ../shared/data/cbsd68

Calibration uses 128x128 crops of --calibration photos the model was trained on (noisy at sigma 0.05-0.4);
the evaluation uses the held-out photos. Variants: every Conv quantized; first and last Conv kept in FP32;
the same with 16-bit activations; the same with percentile and entropy calibration instead of min/max; only
the middle Convs in INT8 (where benchmarks/int8_sensitivity.py finds no loss).
Speed: one whole photo per call, 2 threads, median of --repeats. The model's sigma input is a noise map
([N,1,H,W], filled with the level).
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

from denoise.datasets import load_eval_images, load_images
from denoise.evaluate import noisy_images
from denoise.metrics import psnr_uint8, to_uint8
from denoise.weights import DEFAULT_MODEL


class Calibration(CalibrationDataReader):
    def __init__(self, photos: list[np.ndarray]):
        feeds = [{"noisy": n[:128, :128].transpose(2, 0, 1)[None].astype(np.float32),
                  "sigma": np.full((1, 1, 128, 128), s, np.float32)}
                 for s in (0.05, 0.1, 0.2, 0.4) for n in noisy_images(photos, s, "gaussian", 1)[0]]
        self.feeds = iter(feeds)

    def get_next(self):
        return next(self.feeds, None)


def session(path: Path, threads: int = 2, spinning: bool = True) -> ort.InferenceSession:
    """spinning=False: as the runtime opens its CPU sessions (runtime.backends). Sessions timed in turn should not
    spin: one's idle threads busy-wait for a while after its run and slow the next one's (the faster model most)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run(sess, noisy: np.ndarray, sigma: float) -> np.ndarray:
    feed = {"noisy": noisy.transpose(2, 0, 1)[None].astype(np.float32),
            "sigma": np.full((1, 1) + noisy.shape[:2], sigma, np.float32)}
    return sess.run(None, feed)[0][0].transpose(1, 2, 0)


def measure(sess, photos, sigmas, repeats: int) -> dict:
    psnr = {round(s * 255): float(np.mean([psnr_uint8(c, to_uint8(run(sess, n, s)))
                                           for c, n in zip(photos, noisy_images(photos, s, "gaussian", 0)[0])]))
            for s in sigmas}
    noisy = noisy_images(photos[:1], 0.1, "gaussian", 0)[0][0]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(sess, noisy, 0.1)
        times.append(time.perf_counter() - start)
    return {"psnr": psnr, "mp_s": noisy.shape[0] * noisy.shape[1] / 1e6 / float(np.median(times))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=Path("../shared/data/cbsd68"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--calibration", type=int, default=4, help="training photos to calibrate on")
    args = parser.parse_args()
    held_out = load_eval_images(args.photos, None, held_out=True)
    calibration = load_images(args.photos, "train")[:args.calibration]  # photos the model was trained on
    convs = [n.name for n in onnx.load(str(DEFAULT_MODEL)).graph.node if n.op_type == "Conv"]
    sigmas = (15 / 255, 25 / 255, 50 / 255)
    rows = [("FP32 (bundled)", measure(session(DEFAULT_MODEL), held_out, sigmas, args.repeats))]
    ends = [convs[0], convs[-1]]
    variants = [("INT8, every Conv", [], QuantType.QUInt8, CalibrationMethod.MinMax),
                ("INT8, first and last Conv in FP32", ends, QuantType.QUInt8, CalibrationMethod.MinMax),
                ("INT8, first and last in FP32, percentile calibration", ends, QuantType.QUInt8, CalibrationMethod.Percentile),
                ("INT8, first and last in FP32, entropy calibration", ends, QuantType.QUInt8, CalibrationMethod.Entropy),
                ("INT8 weights, 16-bit activations, first and last in FP32", ends, QuantType.QUInt16, CalibrationMethod.MinMax),
                # benchmarks/int8_sensitivity.py: the loss sits in the first two and the last four Convs
                ("INT8 Convs 2-15, the first two and last four FP32", convs[:2] + convs[16:], QuantType.QUInt8, CalibrationMethod.MinMax),
                ("INT8 Convs 4-15, the first four and last four FP32", convs[:4] + convs[16:], QuantType.QUInt8, CalibrationMethod.MinMax)]
    with tempfile.TemporaryDirectory() as tmp:
        for label, exclude, activations, method in variants:
            path = Path(tmp) / "q.onnx"
            with contextlib.chdir(tmp):  # the quantizer leaves temporary model files in the working folder
                quantize_static(str(DEFAULT_MODEL), str(path), Calibration(calibration), quant_format=QuantFormat.QDQ,
                                per_channel=True, activation_type=activations, weight_type=QuantType.QInt8,
                                op_types_to_quantize=["Conv"], nodes_to_exclude=exclude, calibrate_method=method)
            rows.append((label, measure(session(path), held_out, sigmas, args.repeats)))
    print(f"| model ({len(held_out)} held-out photos, gaussian) | PSNR 15 | PSNR 25 | PSNR 50 | CPU MP/s |")
    print("|---|---|---|---|---|")
    for label, r in rows:
        print(f"| {label} | {r['psnr'][15]:.2f} | {r['psnr'][25]:.2f} | {r['psnr'][50]:.2f} | {r['mp_s']:.3f} |")


if __name__ == "__main__":
    main()
