"""``denoise eval``: PSNR of noisy and denoised images against a clean folder, per sigma.

Noise is drawn with a fixed seed per (sigma, image), so a table is reproducible and every model is
measured on the same noisy images.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from denoise.errors import DenoiseError
from denoise.metrics import psnr_uint8, to_uint8
from denoise.noise import add_noise
from denoise.runtime.batch import list_inputs
from denoise.runtime.images import IMAGE_SUFFIXES, read_image


@dataclass
class EvalRow:
    sigma: float
    protocol: str
    images: int
    noisy_psnr: float
    denoised_psnr: float

    def to_dict(self) -> dict:
        return {"sigma": self.sigma, "protocol": self.protocol, "images": self.images,
                "noisy_psnr": round(self.noisy_psnr, 3), "denoised_psnr": round(self.denoised_psnr, 3)}


def load_clean_folder(folder: Path, limit: int | None = None) -> list[np.ndarray]:
    folder = Path(folder)
    if not folder.is_dir():
        raise DenoiseError(f"clean folder {folder} does not exist or is not a folder")
    paths = [p for p in list_inputs(folder) if p.suffix.lower() in IMAGE_SUFFIXES][:limit]
    if not paths:
        raise DenoiseError(f"no images found in {folder}")
    return [read_image(p).rgb for p in paths]


def evaluate(denoiser, images: list[np.ndarray], sigmas, protocol: str = "clip", seed: int = 0) -> list[EvalRow]:
    rows = []
    for sigma in sigmas:
        denoiser.check_sigma(sigma)
        noisy_scores, denoised_scores = [], []
        for index, clean in enumerate(images):
            rng = np.random.default_rng([seed, index, int(round(sigma * 1e6))])
            noisy = add_noise(clean, sigma, protocol, rng)
            reference = to_uint8(clean)
            noisy_scores.append(psnr_uint8(reference, to_uint8(noisy)))
            denoised_scores.append(psnr_uint8(reference, to_uint8(denoiser.denoise_rgb(noisy, sigma))))
        rows.append(EvalRow(sigma, protocol, len(images), float(np.mean(noisy_scores)), float(np.mean(denoised_scores))))
    return rows


def format_table(rows: list[EvalRow]) -> str:
    lines = ["| sigma | protocol | images | noisy PSNR (dB) | denoised PSNR (dB) |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.sigma:.4g} | {r.protocol} | {r.images} | {r.noisy_psnr:.2f} | {r.denoised_psnr:.2f} |")
    return "\n".join(lines)
