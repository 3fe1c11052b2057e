"""Where an ONNX model's time goes in ONNX Runtime on the CPU: each operator's share of the kernel time (its
profile, after all graph optimizations), and how many DequantizeLinear -> QuantizeLinear hand-overs (re-gridding
a UINT8 tensor through float) are left in the optimized graph.

    python benchmarks/int8_profile.py denoise/weights/default.int8.onnx denoise/weights/default.onnx

One 480x320 image (sigma 0.1), 2 threads, the first of --runs + 1 runs left out.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import onnxruntime as ort

from denoise.export.int8 import requantizations


def profile(model: Path, threads: int, runs: int) -> Counter:
    """Each operator's kernel time (microseconds) over ``runs`` runs, after one left out."""
    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "profile")
        session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        feeds = {"noisy": np.random.default_rng(0).random((1, 3, 320, 480), dtype=np.float32),
                 "sigma": np.full((1, 1, 320, 480), 0.1, np.float32)}
        for _ in range(runs + 1):
            session.run(None, feeds)
        events = json.loads(Path(session.end_profiling()).read_text())
    kernels = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    first_run = len(kernels) // (runs + 1)
    times = Counter()
    for event in kernels[first_run:]:
        times[event["args"]["op_name"]] += event["dur"]
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", type=Path, nargs="+")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    for model in args.models:
        times = profile(model, args.threads, args.runs)
        total = sum(times.values())
        print(f"{model}: {total / args.runs / 1000:.1f} ms of kernels per run; "
              f"DequantizeLinear -> QuantizeLinear hand-overs left: {requantizations(model)}")
        for op, microseconds in times.most_common(8):
            print(f"  {op:20s} {100 * microseconds / total:5.1f}%")


if __name__ == "__main__":
    main()
