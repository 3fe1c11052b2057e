"""A figure of the bundled model on real noise: RNI15 photos (no clean reference exists) denoised with
`sigma="auto"`, each as a 160x160 centre crop, noisy above and denoised below, with the estimated sigma.

    python scripts/real_noise_figure.py --out docs/rni15-auto.png

Real camera and scan noise is not the white Gaussian noise the model was trained on (it is correlated
between neighbouring pixels and depends on brightness), so this is for looking at, not for PSNR.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from denoise import Denoiser
from denoise.metrics import to_uint8
from denoise.noise import estimate_sigma
from denoise.runtime.images import read_image

PHOTOS = ("Bears.png", "Dog.png", "Flowers.png", "Frog.png", "Movie.png", "Window.png")
CROP = 160


def centre_crop(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    y, x = (h - CROP) // 2, (w - CROP) // 2
    return image[y:y + CROP, x:x + CROP]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=Path("../shared/data/rni15"))
    parser.add_argument("--out", type=Path, default=Path("docs/rni15-auto.png"))
    args = parser.parse_args()
    denoiser = Denoiser()
    label_height = 16
    sheet = Image.new("RGB", (CROP * len(PHOTOS), 2 * CROP + label_height), "white")
    draw = ImageDraw.Draw(sheet)
    for column, name in enumerate(PHOTOS):
        noisy = to_uint8(read_image(args.photos / name).rgb)
        sigma = estimate_sigma(noisy)
        clean = denoiser.denoise(noisy, "auto")
        x = column * CROP
        draw.text((x + 4, 2), f"{Path(name).stem}: auto sigma {sigma * 255:.1f}/255", fill="black")
        sheet.paste(Image.fromarray(centre_crop(noisy)), (x, label_height))
        sheet.paste(Image.fromarray(centre_crop(clean)), (x, label_height + CROP))
        print(f"{name}: estimated sigma {sigma:.4f} ({sigma * 255:.1f}/255)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, optimize=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
