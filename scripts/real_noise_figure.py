"""A figure of the bundled model on real noise with `sigma="auto"` (the estimated noise map), as 160x160
centre crops: CC15 camera shots (noisy / denoised / the clean mean of ~500 shots, with PSNR) and RNI15
photos (noisy / denoised; they have no clean version). Each label gives the estimated level (mean of the map).

    python scripts/real_noise_figure.py --out docs/real-noise-auto.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from denoise import Denoiser
from denoise.metrics import psnr_uint8, to_uint8
from denoise.image_files import read_image

CC15 = ("5dmark3_iso3200_1.png", "d600_iso3200_2.png", "d800_iso3200_1.png", "d800_iso6400_2.png")
RNI15 = ("Bears.png", "Dog.png", "Boy.png", "Flowers.png")
CROP = 160
LABEL = 14


def centre_crop(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    y, x = (h - CROP) // 2, (w - CROP) // 2
    return image[y:y + CROP, x:x + CROP]


def column(denoiser: Denoiser, noisy: np.ndarray, clean: np.ndarray | None) -> tuple[list[np.ndarray], list[str]]:
    """The crops of one photo, top to bottom, and their labels."""
    result, seen = denoiser.denoise_with_level(noisy, "auto")
    labels = ["noisy", f"auto: level {seen['mean'] * 255:.1f}/255"]
    crops = [centre_crop(noisy), centre_crop(result)]
    if clean is not None:
        labels = [f"noisy {psnr_uint8(clean, noisy):.2f} dB", f"auto {psnr_uint8(clean, result):.2f} dB "
                  f"(level {seen['mean'] * 255:.1f})", "clean (mean of ~500)"]
        crops.append(centre_crop(clean))
    return crops, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cc15", type=Path, default=Path("../shared/data/cc15"))
    parser.add_argument("--rni15", type=Path, default=Path("../shared/data/rni15"))
    parser.add_argument("--out", type=Path, default=Path("docs/real-noise-auto.png"))
    args = parser.parse_args()
    denoiser = Denoiser()
    columns = [column(denoiser, to_uint8(read_image(args.cc15 / "real" / n).rgb), to_uint8(read_image(args.cc15 / "mean" / n).rgb))
               for n in CC15]
    columns += [column(denoiser, to_uint8(read_image(args.rni15 / n).rgb), None) for n in RNI15]
    names = [Path(n).stem for n in CC15 + RNI15]
    row_height = CROP + LABEL
    sheet = Image.new("RGB", (CROP * len(columns), LABEL + 3 * row_height), "white")
    draw = ImageDraw.Draw(sheet)
    for index, ((crops, labels), name) in enumerate(zip(columns, names)):
        x = index * CROP
        draw.text((x + 3, 1), ("CC15 " if index < len(CC15) else "RNI15 ") + name, fill="black")
        for row, (crop, label) in enumerate(zip(crops, labels)):
            y = LABEL + row * row_height
            draw.text((x + 3, y + 1), label, fill="black")
            sheet.paste(Image.fromarray(crop), (x, y + LABEL))
        print(f"{name}: " + "; ".join(labels))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, optimize=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
