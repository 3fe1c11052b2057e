"""GPU inference throughput of each CAE configuration in PyTorch: FP32, FP16 and FP16 replayed as a
CUDA graph, in megapixels per second, next to the compute floor (multiply-adds per pixel x 2 FLOP /
the chip's dense FP16 rate; 990 TFLOP/s for an H200).

    python benchmarks/gpu_throughput.py --json throughput.json

Needs a CUDA GPU (exits with a message otherwise). Written for ../shared/GPU.md's step 2.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from denoise.model import CONFIGS, build_model

PEAK_FP16_FLOPS = {"H200": 990e12, "H100": 990e12, "A100": 312e12}


def timed(fn, repeats: int) -> float:
    """Median milliseconds of ``fn`` measured with CUDA events."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return sorted(times)[len(times) // 2]


def measure(name: str, batch: int, size: int, repeats: int) -> dict:
    model = build_model(name).cuda().eval().to(memory_format=torch.channels_last)
    x = torch.rand(batch, 3, size, size, device="cuda").contiguous(memory_format=torch.channels_last)
    s = torch.full((batch,), 0.1, device="cuda")
    megapixels = batch * size * size / 1e6
    result = {"model": name, "batch": batch, "size": size, "macs_per_pixel": CONFIGS[name].macs_per_pixel()}
    with torch.inference_mode():
        result["fp32_mp_s"] = megapixels / (timed(lambda: model(x, s), repeats) / 1e3)
        half, xh, sh = model.half(), x.half(), s.half()
        result["fp16_mp_s"] = megapixels / (timed(lambda: half(xh, sh), repeats) / 1e3)
        graph = torch.cuda.CUDAGraph()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):
                half(xh, sh)
        torch.cuda.current_stream().wait_stream(stream)
        with torch.cuda.graph(graph):
            half(xh, sh)
        result["fp16_cuda_graph_mp_s"] = megapixels / (timed(graph.replay, repeats) / 1e3)
    gpu = torch.cuda.get_device_name()
    peak = next((v for k, v in PEAK_FP16_FLOPS.items() if k in gpu), None)
    if peak:
        result["compute_floor_mp_s"] = peak / (2 * result["macs_per_pixel"]) / 1e6
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("no CUDA GPU visible to torch: this benchmark only runs on a GPU machine")
    rows = [measure(name, args.batch, args.size, args.repeats) for name in CONFIGS]
    report = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": rows}
    print(json.dumps(report, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
