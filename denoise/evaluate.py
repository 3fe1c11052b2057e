"""``denoise eval``: PSNR and SSIM of noisy, denoised and (optionally) CBM3D images against clean ones.

Noise is drawn with a fixed seed per (sigma, image), so a table is reproducible and every method is
measured on the same noisy images. PSNR/SSIM are computed on the uint8 result, averaged over images.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from denoise.errors import DenoiseError, missing_extra
from denoise.metrics import psnr_uint8, ssim_uint8, to_uint8
from denoise.formats import IMAGE_SUFFIXES
from denoise.noise import noisy_pair
from denoise.formats import list_inputs
from denoise.image_files import read_image

METHOD_TITLES = {"noisy": "noisy", "model": "model", "bm3d": "CBM3D"}


@dataclass
class EvalRow:
    sigma: float | str  # the noise level (for "camera": its strength; "auto" for real pairs run with --sigma auto)
    protocol: str  # a noise protocol, or "real" (pairs of real noisy shots and their clean versions)
    method: str  # "noisy", "model" or "bm3d"
    images: int
    psnr: float  # mean of per-image PSNR (the literature's tables)
    ssim: float | None
    set_psnr: float = float("nan")  # PSNR of the mean MSE over the set (the seed notebook's convention)

    def to_dict(self) -> dict:
        return {"sigma": self.sigma, "protocol": self.protocol, "method": self.method, "images": self.images,
                "psnr": round(self.psnr, 3), "ssim": None if self.ssim is None else round(self.ssim, 4),
                "set_psnr": round(self.set_psnr, 3)}


def cbm3d(noisy: np.ndarray, sigma: float) -> np.ndarray:
    """CBM3D from the `bm3d` package (optional extra `eval`), on the same [0,1] scale as our sigma."""
    try:
        import bm3d
    except ImportError:
        raise missing_extra("bm3d", "eval") from None
    return np.asarray(bm3d.bm3d_rgb(noisy, sigma_psd=max(sigma, 1e-4)), dtype=np.float32)


def noisy_images(images: list[np.ndarray], sigma: float, protocol: str, seed: int) -> tuple[list, list]:
    """(noisy float images, uint8 references): the references are the clean images themselves, or for the
    camera protocol the camera's noise-free pictures."""
    pairs = [noisy_pair(im.astype(np.float32) / 255.0, sigma, protocol,
                        np.random.default_rng([seed, index, int(round(sigma * 1e6))]))
             for index, im in enumerate(images)]
    if protocol != "camera":
        return [noisy for noisy, _ in pairs], images
    return [noisy for noisy, _ in pairs], [to_uint8(reference) for _, reference in pairs]


def denoise_all(denoiser, noisy: list[np.ndarray], sigma, batch_size: int = 64, strength: float = 1.0) -> list[np.ndarray]:
    """Model outputs, batching images of equal size together (CIFAR's 32x32 go 64 at a time); with
    ``sigma="auto"`` (or a strength) image by image, as ``denoise batch`` runs them."""
    if sigma == "auto" or strength != 1.0:
        return [denoiser.denoise_rgb(im, sigma, strength) for im in noisy]
    out: list[np.ndarray | None] = [None] * len(noisy)
    by_shape: dict[tuple, list[int]] = {}
    for i, im in enumerate(noisy):
        by_shape.setdefault(im.shape, []).append(i)
    for indices in by_shape.values():
        for start in range(0, len(indices), batch_size):
            chunk = indices[start:start + batch_size]
            results = denoiser.denoise_rgb_batch(np.stack([noisy[i] for i in chunk]), sigma)
            for i, result in zip(chunk, results):
                out[i] = result
    return out


def score(clean: list[np.ndarray], results: list[np.ndarray], with_ssim: bool) -> tuple[float, float | None, float]:
    """(mean per-image PSNR, mean SSIM or None, PSNR of the mean MSE over the set), all on uint8 results."""
    psnrs, ssims, mses = [], [], []
    for ref, res in zip(clean, results):
        res8 = to_uint8(res)
        psnrs.append(psnr_uint8(ref, res8))
        mses.append(np.mean((ref.astype(np.float64) - res8) ** 2))
        if with_ssim:
            ssims.append(ssim_uint8(ref, res8))
    set_psnr = float(20 * np.log10(255.0 / np.sqrt(np.mean(mses)))) if np.mean(mses) > 0 else float("inf")
    return float(np.mean(psnrs)), (float(np.mean(ssims)) if with_ssim else None), set_psnr


def evaluate(denoiser, images: list[np.ndarray], sigmas, protocols=("clip",), seed: int = 0, bm3d: bool = False,
             with_ssim: bool = True, keep: int = 0) -> tuple[list[EvalRow], dict]:
    """Rows for each (protocol, sigma, method); ``keep`` first images' noisy/denoised kept for the grid.

    The model is given the true sigma, except under the camera protocol, whose noise level is a map that
    no user knows: there it runs with ``sigma="auto"``, as ``denoise batch`` does by default (and CBM3D,
    which needs a number, is not run)."""
    if with_ssim and min(min(im.shape[:2]) for im in images) < 11:
        with_ssim = False  # SSIM's 11x11 window does not fit
    rows, examples = [], {}
    for protocol in protocols:
        for sigma in sigmas:
            denoiser.check_sigma(sigma)
            noisy, references = noisy_images(images, sigma, protocol, seed)
            camera = protocol == "camera"
            methods = {"noisy": noisy, "model": denoise_all(denoiser, noisy, "auto" if camera else sigma)}
            if bm3d and not camera:
                methods["bm3d"] = [cbm3d(n, sigma) for n in noisy]
            for method, results in methods.items():
                psnr, ssim, set_psnr = score(references, results, with_ssim)
                rows.append(EvalRow(sigma, protocol, method, len(images), psnr, ssim, set_psnr))
            if keep:
                examples[(protocol, sigma)] = {m: [to_uint8(r) for r in res[:keep]] for m, res in methods.items()}
    return rows, examples


def load_real_pairs(noisy_dir: Path, clean_dir: Path, limit: int | None = None) -> tuple[list[str], list, list]:
    """(names, noisy float images, clean uint8 images) of real noisy shots and their clean versions, matched
    by file name without suffix (CC15's ``real/`` and ``mean/``, SIDD-style folders)."""
    noisy_paths = {p.stem: p for p in list_inputs(Path(noisy_dir)) if p.suffix.lower() in IMAGE_SUFFIXES}
    clean_paths = {p.stem: p for p in list_inputs(Path(clean_dir)) if p.suffix.lower() in IMAGE_SUFFIXES}
    names = sorted(set(noisy_paths) & set(clean_paths))[:limit]
    if not names:
        raise DenoiseError(f"no image in {noisy_dir} has a clean version of the same name in {clean_dir}")
    noisy, clean = [], []
    for name in names:
        shot, reference = read_image(noisy_paths[name]).rgb, to_uint8(read_image(clean_paths[name]).rgb)
        if shot.shape != reference.shape:
            raise DenoiseError(f"{noisy_paths[name]} is {shot.shape[1]}x{shot.shape[0]} but its clean version "
                               f"{clean_paths[name]} is {reference.shape[1]}x{reference.shape[0]}")
        noisy.append(shot.astype(np.float32))
        clean.append(reference)
    return names, noisy, clean


def evaluate_real(denoiser, noisy: list[np.ndarray], clean: list[np.ndarray], sigmas=("auto",), strength: float = 1.0,
                  with_ssim: bool = True) -> list[EvalRow]:
    """Rows for real pairs: the noisy shots, and the model at each sigma ("auto": estimated per image)."""
    if with_ssim and min(min(im.shape[:2]) for im in clean) < 11:
        with_ssim = False
    noisy_score = score(clean, noisy, with_ssim)
    rows = []
    for sigma in sigmas:
        rows.append(EvalRow(sigma, "real", "noisy", len(clean), *noisy_score))
        results = denoise_all(denoiser, noisy, sigma, strength=strength)
        psnr, ssim, set_psnr = score(clean, results, with_ssim)
        rows.append(EvalRow(sigma, "real", "model", len(clean), psnr, ssim, set_psnr))
    return rows


def format_markdown(rows: list[EvalRow], set_psnr: bool = False) -> str:
    """One line per (protocol, sigma), a PSNR / SSIM column pair per method (and, with ``set_psnr``, the
    model's PSNR of the mean MSE, the seed notebook's convention)."""
    methods = list(dict.fromkeys(r.method for r in rows))
    header = "| sigma | sigma x255 | protocol | images | " + " | ".join(
        f"{METHOD_TITLES[m]} PSNR (dB) | {METHOD_TITLES[m]} SSIM" for m in methods) + " |"
    if set_psnr:
        header += " model PSNR of mean MSE (dB) |"
    lines = [header, "|" + "---|" * (4 + 2 * len(methods) + (1 if set_psnr else 0))]
    table: dict[tuple, dict[str, EvalRow]] = {}
    for r in rows:
        table.setdefault((r.protocol, r.sigma, r.images), {})[r.method] = r
    for (protocol, sigma, count), by_method in table.items():
        cells = []
        for m in methods:
            r = by_method.get(m)
            cells += [f"{r.psnr:.2f}" if r else "-", f"{r.ssim:.4f}" if r and r.ssim is not None else "-"]
        if set_psnr:
            cells.append(f"{by_method['model'].set_psnr:.2f}" if "model" in by_method else "-")
        level = f"{sigma:.4g} | {sigma * 255:.1f}" if isinstance(sigma, float) else f"{sigma} | {sigma}"
        lines.append(f"| {level} | {protocol} | {count} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def save_grid(examples: dict, clean: list[np.ndarray], path: Path, scale: int = 0) -> None:
    """The seed's figure: a row of clean images, then noisy and denoised rows for each sigma."""
    from PIL import Image

    count = len(next(iter(examples.values()))["noisy"])
    h, w = clean[0].shape[:2]
    scale = scale or max(1, 96 // max(h, w))
    gap = 4
    rows = [clean[:count]]
    for by_method in examples.values():
        rows.append(by_method["noisy"])
        rows += [by_method[m] for m in by_method if m != "noisy"]
    canvas = Image.new("RGB", (count * (w * scale + gap) + gap, len(rows) * (h * scale + gap) + gap), "white")
    for r, row in enumerate(rows):
        for c, im in enumerate(row):
            if im.shape[:2] != (h, w):
                continue  # mixed sizes: the grid shows only images of the first image's size
            tile = Image.fromarray(im).resize((w * scale, h * scale), Image.NEAREST)
            canvas.paste(tile, (gap + c * (w * scale + gap), gap + r * (h * scale + gap)))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)


def save_plot(rows: list[EvalRow], path: Path) -> None:
    """PSNR versus sigma, one line per method and protocol (needs matplotlib: extra `eval`)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise missing_extra("matplotlib", "eval") from None
    fig, ax = plt.subplots(figsize=(6, 4))
    for key in dict.fromkeys((r.method, r.protocol) for r in rows):
        points = sorted((r.sigma, r.psnr) for r in rows if (r.method, r.protocol) == key)
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o",
                label=f"{METHOD_TITLES[key[0]]} ({key[1]})")
    ax.set_xlabel("sigma (on [0,1])")
    ax.set_ylabel("PSNR (dB)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
