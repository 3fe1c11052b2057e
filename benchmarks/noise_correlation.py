"""Issue 23 experiment: does a correlation statistic of the noise, read from the noisy image alone, tell how
much to scale the estimator's map (``strength``) on real camera noise, while leaving white noise alone?

Statistics (all from the noisy image only; white noise gives about 1, low-frequency noise more):

* ``r_cnn``: 2 * mean(estimator map of the 2x2-block-mean image) / mean(estimator map of the image).
* ``r_imm``: the same with Immerkaer's estimator (``denoise.noise.estimate_sigma``).
* ``r_res``: from the residual e = noisy - denoise(noisy, map, strength=RES_STRENGTH), per channel:
  sqrt(4 var(2x2 block mean of e) / var(e)) (the same ratio as r_cnn, measured on the residual).
* ``rho1``: the lag-1 autocorrelation of that residual (mean of horizontal and vertical).
* ``cnn_imm``: the estimator's mean level over Immerkaer's (JPEG and smoothing take high frequencies out,
  which Immerkaer's Laplacian sees first).

``fit``: on the TRAINING part of the real pairs (``denoise.train.pairs.load_pairs(..., "train")``, clean
brightness-aligned), centre crops of at most 256x256, and on synthesized noise on cbsd432 photos that
``denoise train`` does not hold out (white Gaussian 15/25/50, camera protocol with JPEG), the PSNR of
``denoise(noisy, map, strength=k)`` over a grid of k, k* per image, the statistics, their correlation with
k*, and fits f(stat) (f = max(1, r)^p; f = 1 + a max(0, r - 1)) chosen to maximise the mean PSNR over the fit set.
Writes the per-image table as JSON (``--out``).

``measure --stat r_cnn --power P`` (or ``--slope A``): with f fixed, mean PSNR with k = 1 (auto), k = f(r) and at the
best fixed sigma (real sets) or the true sigma (white noise), on CC15 (all 15), the held-out SIDD and RENOIR
pairs (as real_pairs.py: raw references; aligned references too), white Gaussian 15/25/50 on the held-out
CBSD68 photos (as auto_sigma.py --held-out), and the level read on the 12 MP JPEG case of auto_sigma.py.

    python benchmarks/noise_correlation.py fit --out /tmp/noise_corr_fit.json
    python benchmarks/noise_correlation.py measure --stat r_res1 --power 2.225 --jpeg-12mp

(the fit chose ``r_res1``, the ratio of the residual at strength 1, with f = max(1, r)^2.225). For the 12 MP
case the residual statistics are read on 4 crops of 256x256 (a whole-image pass is a minute on the CPU).

CC15 is only measured, never fitted on. Quality only; runs on the CPU, fp32.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from auto_sigma import jpeg_photo  # noqa: E402
from real_pairs import real_sets  # noqa: E402

from denoise import Denoiser  # noqa: E402
from denoise.camera_noise import camera_noise, draw_params  # noqa: E402
from denoise.datasets import image_folder_paths, load_eval_images  # noqa: E402
from denoise.evaluate import noisy_images  # noqa: E402
from denoise.image_files import read_image  # noqa: E402
from denoise.metrics import psnr_uint8, to_uint8  # noqa: E402
from denoise.noise import add_noise, estimate_sigma  # noqa: E402
from denoise.train.pairs import align_brightness, load_pairs  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
K_GRID = [0.7, 0.8, 0.9, 1.0, 1.15, 1.3, 1.5, 1.75, 2.0, 2.3, 2.65, 3.0, 3.5, 4.0]
RES_STRENGTH = 2.0
STATS = ("r_cnn", "r_imm", "cnn_imm", "r_res", "rho1", "r_flat", "r_res1", "rho1_1", "r_flat1")
FLAT_SHARE = 0.3


def u8(image: np.ndarray) -> np.ndarray:
    """A denoiser's output as uint8 (uint8 in gives uint8 out; float in, float out)."""
    return image if image.dtype == np.uint8 else to_uint8(image)


def as_float(noisy: np.ndarray) -> np.ndarray:
    return noisy.astype(np.float32) / 255 if noisy.dtype == np.uint8 else noisy.astype(np.float32)


def half(noisy: np.ndarray) -> np.ndarray:
    """float32 [0,1] mean over 2x2 blocks (odd last row/column dropped)."""
    x = as_float(noisy)
    h, w = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
    return x[:h, :w].reshape(h // 2, 2, w // 2, 2, 3).mean(axis=(1, 3))


def statistics(d: Denoiser, noisy: np.ndarray, with_residual: bool = True) -> dict:
    """The statistics of the module docstring, and the estimator's map (key "map")."""
    level_map = d.estimate_map(noisy)
    level = float(level_map.mean())
    small = half(noisy)
    imm_full, imm_half = estimate_sigma(as_float(noisy)), estimate_sigma(small)
    out = {"map": level_map, "level": level, "imm": imm_full,
           "r_cnn": 2 * float(d.estimate_map(small).mean()) / max(level, 1e-6),
           "r_imm": 2 * imm_half / max(imm_full, 1e-6), "cnn_imm": level / max(imm_full, 1e-6)}
    if with_residual:
        for strength, suffix in ((RES_STRENGTH, ""), (1.0, "1")):
            denoised = as_float(d.denoise(noisy, level_map, strength=strength))
            res = as_float(noisy) - denoised
            out["r_res" + suffix], out["rho1" + ("_" + suffix if suffix else "")] = residual_ratio(res)
            out["r_flat" + suffix], _ = residual_ratio(res, flat_blocks(denoised))
    return out


def flat_blocks(image: np.ndarray, block: int = 8, share: float = FLAT_SHARE) -> np.ndarray:
    """[H//block, W//block] bool: the ``share`` of block x block squares of ``image`` with the least gradient
    energy (where the residual of a denoiser is noise, not image structure it took out)."""
    y = image.mean(axis=2)
    g = np.zeros_like(y)
    g[:, :-1] += np.diff(y, axis=1) ** 2
    g[:-1] += np.diff(y, axis=0) ** 2
    h, w = y.shape[0] // block * block, y.shape[1] // block * block
    energy = g[:h, :w].reshape(h // block, block, w // block, block).mean(axis=(1, 3))
    return energy <= np.quantile(energy, share)


def residual_ratio(res: np.ndarray, blocks: np.ndarray | None = None, block: int = 8) -> tuple[float, float]:
    """(sqrt(4 var(2x2 block mean) / var(pixel)), lag-1 autocorrelation) of a residual, per channel, averaged;
    ``blocks``: only the block x block squares marked True."""
    if blocks is None:
        h, w = res.shape[0] // 2 * 2, res.shape[1] // 2 * 2
        tiles = res[:h, :w][None]
    else:
        h, w = blocks.shape[0] * block, blocks.shape[1] * block
        tiles = res[:h, :w].reshape(blocks.shape[0], block, blocks.shape[1], block, 3).transpose(0, 2, 1, 3, 4)[blocks]
    tiles = tiles - tiles.mean(axis=(0, 1, 2))
    n, th, tw = tiles.shape[:3]
    var = (tiles ** 2).mean(axis=(0, 1, 2))
    means = tiles.reshape(n, th // 2, 2, tw // 2, 2, 3).mean(axis=(2, 4))
    ratio = np.sqrt(4 * (means ** 2).mean(axis=(0, 1, 2)) / np.maximum(var, 1e-12))
    lag = ((tiles[:, :, 1:] * tiles[:, :, :-1]).mean(axis=(0, 1, 2)) + (tiles[:, 1:] * tiles[:, :-1]).mean(axis=(0, 1, 2))) / 2
    return float(ratio.mean()), float((lag / np.maximum(var, 1e-12)).mean())


def centre_crop(x: np.ndarray, size: int = 256) -> np.ndarray:
    h, w = x.shape[:2]
    y0, x0 = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return x[y0:y0 + size, x0:x0 + size]


def fit_images(args) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """(group, name, noisy uint8 or float, reference uint8): the fit set of the module docstring."""
    items = []
    for folder, every in ((DATA / "sidd", args.sidd_every), (DATA / "renoir-t3i", args.renoir_every)):
        for pair in load_pairs(folder, "train")[::every]:
            items.append((folder.name, pair.name, centre_crop(pair.noisy), centre_crop(to_uint8(pair.clean))))
    paths = [p for i, p in enumerate(image_folder_paths(DATA / "cbsd432")) if i % 10 != 0][::args.photo_every][:args.photos]
    for index, path in enumerate(paths):
        clean = centre_crop(to_uint8(read_image(path).rgb))
        for s in (15, 25, 50):
            noisy = add_noise(clean / np.float32(255), s / 255, "gaussian", np.random.default_rng([1, index, s]))
            items.append((f"white {s}", path.name, noisy, clean))
        for strength, quality in ((0.02, 90), (0.06, 80)):
            rng = np.random.default_rng([2, index, int(strength * 1000)])
            params = dataclasses.replace(draw_params(rng, strength), jpeg_quality=quality)
            noisy, target, _ = camera_noise(clean / np.float32(255), rng, params=params)
            items.append((f"camera {strength} q{quality}", path.name, to_uint8(noisy), to_uint8(target)))
    return items


def interp_psnr(curve: list[float], k: np.ndarray) -> np.ndarray:
    """PSNR at strengths k, linear in log k between the grid points (clamped at the grid's ends)."""
    return np.interp(np.log(k), np.log(K_GRID), curve)


def stat_value(st: dict, name: str) -> float | np.ndarray:
    """A statistic on the scale of r (1: white): a lag-1 autocorrelation rho as sqrt(1 + 2 rho)."""
    x = np.asarray(st[name], dtype=np.float64)
    return np.sqrt(np.maximum(1 + 2 * x, 1e-6)) if name.startswith("rho") else x


def f_power(r, p):
    return np.maximum(1.0, r) ** p


def f_linear(r, a, knee=1.0):
    return 1.0 + a * np.maximum(0.0, r - knee)


def fit(args) -> None:
    started = time.perf_counter()
    d = Denoiser(backend="cpu", precision="fp32", threads=args.threads)
    rows = []
    old = json.loads(Path(args.reuse_curves).read_text())["rows"] if args.reuse_curves else None
    for index, (group, name, noisy, ref) in enumerate(fit_images(args)):
        stats = statistics(d, noisy)
        if old:
            assert (old[index]["group"], old[index]["name"]) == (group, name)
            curve = old[index]["curve"]
        else:
            curve = [psnr_uint8(ref, u8(d.denoise(noisy, stats["map"], strength=k))) for k in K_GRID]
        fine = np.exp(np.linspace(np.log(K_GRID[0]), np.log(K_GRID[-1]), 400))
        k_star = float(fine[np.argmax(interp_psnr(curve, fine))])
        true_rms = float(np.sqrt(((as_float(noisy) * 255 - ref.astype(np.float64)) ** 2).mean()))
        row = {"group": group, "name": name, "k_star": k_star, "curve": curve, "true255": true_rms,
               **{k: v for k, v in stats.items() if k != "map"}}
        row["level255"], row["imm255"] = row.pop("level") * 255, row.pop("imm") * 255
        rows.append(row)
        print(f"{group:18s} {name[:28]:28s} k*={k_star:4.2f} level={row['level255']:5.2f} true={true_rms:5.2f} "
              + " ".join(f"{s}={row[s]:.2f}" for s in STATS), flush=True)
    elapsed = time.perf_counter() - started
    Path(args.out).write_text(json.dumps({"k_grid": K_GRID, "rows": rows, "seconds": elapsed}, indent=1))
    report_fit(rows, elapsed)


def report_fit(rows: list[dict], elapsed: float | None = None) -> None:
    k_star = np.array([r["k_star"] for r in rows])
    curves = [r["curve"] for r in rows]
    groups = sorted({r["group"] for r in rows}, key=lambda g: [r["group"] for r in rows].index(g))
    print(f"\n{len(rows)} images" + (f", {elapsed:.0f} s" if elapsed else ""))
    print("\n| group | n | true RMS x255 | level x255 | k* (median) | " + " | ".join(STATS) + " |")
    print("|---" * (5 + len(STATS)) + "|")
    for g in groups:
        sel = [r for r in rows if r["group"] == g]
        print(f"| {g} | {len(sel)} | {np.mean([r['true255'] for r in sel]):.2f} | {np.mean([r['level255'] for r in sel]):.2f} | "
              f"{np.median([r['k_star'] for r in sel]):.2f} | " + " | ".join(f"{np.mean([r[s] for r in sel]):.2f}" for s in STATS) + " |")

    def mean_psnr(ks):
        return float(np.mean([interp_psnr(c, np.array([k]))[0] for c, k in zip(curves, ks)]))

    def rank_corr(a, b):
        ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
        return float(np.corrcoef(ra, rb)[0, 1])

    oracle, unit = mean_psnr(k_star), mean_psnr(np.ones(len(rows)))
    best_const = max(K_GRID, key=lambda k: mean_psnr(np.full(len(rows), k)))
    print(f"\nmean PSNR over the fit set: k=1 {unit:.3f}; best constant k={best_const} {mean_psnr(np.full(len(rows), best_const)):.3f}; "
          f"oracle k* {oracle:.3f}")
    print("\n| statistic | Pearson(stat, log k*) | Spearman | f = max(1,r)^p: best p | mean PSNR | f = 1+a(r-1)+: best a | mean PSNR "
          "| f = 1+a(r-r0)+: best a, r0 | mean PSNR |")
    print("|---|---|---|---|---|---|---|---|---|")
    for s in STATS:
        x = np.array([stat_value(r, s) for r in rows])
        pearson = float(np.corrcoef(x, np.log(k_star))[0, 1])
        ps = np.linspace(0, 3, 121)
        p_scores = [mean_psnr(f_power(x, p)) for p in ps]
        a_s = np.linspace(0, 3, 121)
        a_scores = [mean_psnr(f_linear(x, a)) for a in a_s]
        knees = [(mean_psnr(f_linear(x, a, r0)), a, r0) for a in np.linspace(0, 8, 81) for r0 in np.linspace(1, 1.5, 26)]
        best_knee = max(knees)
        print(f"| {s} | {pearson:+.2f} | {rank_corr(x, k_star):+.2f} | {ps[int(np.argmax(p_scores))]:.3f} | {max(p_scores):.3f} | "
              f"{a_s[int(np.argmax(a_scores))]:.3f} | {max(a_scores):.3f} | {best_knee[1]:.2f}, {best_knee[2]:.2f} | {best_knee[0]:.3f} |")
    print("\nper group, mean PSNR with each statistic's best power fit (k=1 | fit | oracle):")
    for s in STATS:
        x = np.array([stat_value(r, s) for r in rows])
        ps = np.linspace(0, 3, 121)
        p = ps[int(np.argmax([mean_psnr(f_power(x, p)) for p in ps]))]
        parts = []
        for g in groups:
            idx = [i for i, r in enumerate(rows) if r["group"] == g]
            c = [curves[i] for i in idx]
            mp = lambda ks: float(np.mean([interp_psnr(cc, np.array([k]))[0] for cc, k in zip(c, ks)]))  # noqa: E731
            parts.append(f"{g}: {mp(np.ones(len(idx))):.2f}|{mp(f_power(x[idx], p)):.2f}|{mp(k_star[idx]):.2f}")
        print(f"- {s} (p={p:.3f}): " + "; ".join(parts))


def measure(args) -> None:
    started = time.perf_counter()
    d = Denoiser(backend="cpu", precision="fp32", threads=args.threads)

    def f(r):
        return float(f_power(r, args.power)) if args.slope is None else float(f_linear(r, args.slope, args.knee))

    use_residual = args.stat not in ("r_cnn", "r_imm", "cnn_imm")
    sets = real_sets(SimpleNamespace(cc15=DATA / "cc15", pairs=[DATA / "sidd", DATA / "renoir-t3i"]))
    fixed = [5, 7.5, 10, 12.5, 15, 20, 25]
    print(f"f: {args.stat}, " + (f"max(1, r)^{args.power}" if args.slope is None else f"1 + {args.slope} max(0, r - {args.knee})"))
    print("\n| set (images) | level read x255 | mean f(r) | PSNR auto (k=1) | PSNR k=f(r) | best fixed sigma | PSNR there | "
          "f(r) - auto | f(r) - best fixed |")
    print("|---" * 10 + "|")
    for name, pairs in sets.items():
        refs = [[c for _, c in pairs]]
        if "held out" in name:  # also against the brightness-aligned references (denoise.train.pairs)
            refs.append([to_uint8(align_brightness(n, c)) for n, c in pairs])
        outs_auto, outs_f, levels, factors = [], [], [], []
        for noisy, _ in pairs:
            st = statistics(d, noisy, use_residual)
            x = float(stat_value(st, args.stat))
            factors.append(f(x))
            levels.append(st["level"] * 255)
            outs_auto.append(d.denoise(noisy, st["map"]))
            outs_f.append(d.denoise(noisy, st["map"], strength=factors[-1]))
        outs_fixed = {s: [d.denoise(n, s / 255) for n, _ in pairs] for s in fixed}
        for which, ref in zip(("raw ref", "aligned ref"), refs):
            mp = lambda outs: float(np.mean([psnr_uint8(r, o) for r, o in zip(ref, outs)]))  # noqa: E731
            a, b = mp(outs_auto), mp(outs_f)
            best = max(fixed, key=lambda s: mp(outs_fixed[s]))
            label = name if len(refs) == 1 else f"{name}, {which}"
            print(f"| {label} ({len(pairs)}) | {np.mean(levels):.2f} | {np.mean(factors):.2f} | {a:.2f} | {b:.2f} | "
                  f"{best}/255 | {mp(outs_fixed[best]):.2f} | {b - a:+.2f} | {b - mp(outs_fixed[best]):+.2f} |", flush=True)
    photos = load_eval_images(DATA / "cbsd68", None, True)
    for s in (15, 25, 50):
        noisy_list, refs = noisy_images(photos, s / 255, "gaussian", 0)
        a, b, t, levels, factors = [], [], [], [], []
        for noisy, ref in zip(noisy_list, refs):
            st = statistics(d, noisy, use_residual)
            x = float(stat_value(st, args.stat))
            factors.append(f(x))
            levels.append(st["level"] * 255)
            a.append(psnr_uint8(ref, u8(d.denoise(noisy, st["map"]))))
            b.append(psnr_uint8(ref, u8(d.denoise(noisy, st["map"], strength=factors[-1]))))
            t.append(psnr_uint8(ref, u8(d.denoise(noisy, s / 255))))
        print(f"| white {s}/255, CBSD68 held out ({len(photos)}) | {np.mean(levels):.2f} | {np.mean(factors):.2f} | "
              f"{np.mean(a):.2f} | {np.mean(b):.2f} | true {s}/255 | {np.mean(t):.2f} | {np.mean(b) - np.mean(a):+.2f} | "
              f"{np.mean(b) - np.mean(t):+.2f} |", flush=True)
    if args.jpeg_12mp:
        noisy, clean = jpeg_photo(0)
        true = float(np.sqrt(((noisy.astype(np.float64) - clean) ** 2).mean()))
        st = statistics(d, noisy, with_residual=False)
        if use_residual:  # a whole 12 MP denoising pass is a minute on the CPU: the residual of 4 crops of 256x256
            h, w = noisy.shape[:2]
            crops = [noisy[y:y + 256, x:x + 256] for y in (h // 4, 3 * h // 4 - 256) for x in (w // 4, 3 * w // 4 - 256)]
            x = float(np.mean([stat_value(statistics(d, c), args.stat) for c in crops]))
        else:
            x = float(stat_value(st, args.stat))
        level = st["level"] * 255
        print(f"\n12 MP JPEG q92, white 15/255: true RMS {true:.2f}/255; estimator {level:.2f} ({level / true - 1:+.0%}); "
              f"{args.stat} = {x:.3f}, f = {f(x):.3f}; scaled {level * f(x):.2f} ({level * f(x) / true - 1:+.0%})")
    print(f"\n{time.perf_counter() - started:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("fit")
    p.add_argument("--out", default="/tmp/noise_corr_fit.json")
    p.add_argument("--sidd-every", type=int, default=3, help="every n-th training pair of SIDD")
    p.add_argument("--renoir-every", type=int, default=3, help="every n-th training pair of RENOIR")
    p.add_argument("--photos", type=int, default=6, help="cbsd432 photos (training part) for synthesized noise")
    p.add_argument("--photo-every", type=int, default=37)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--reuse-curves", default=None, help="take the PSNR(k) curves from this JSON (same images)")
    p.add_argument("--report", default=None, help="only print the fit report of a JSON written before")
    m = sub.add_parser("measure")
    m.add_argument("--stat", default="r_cnn", choices=STATS)
    m.add_argument("--power", type=float, default=1.0, help="f = max(1, r)^power")
    m.add_argument("--slope", type=float, default=None, help="f = 1 + slope * max(0, r - knee) instead")
    m.add_argument("--knee", type=float, default=1.0, help="with --slope: f = 1 + slope * max(0, r - knee)")
    m.add_argument("--jpeg-12mp", action="store_true")
    m.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.command == "fit" and args.report:
        data = json.loads(Path(args.report).read_text())
        report_fit(data["rows"], data.get("seconds"))
    elif args.command == "fit":
        fit(args)
    else:
        measure(args)


if __name__ == "__main__":
    main()
