"""Write the colour photographs that ship inside scikit-image into a folder: a second set of photos that
no model of ours was trained on (CIFAR-10 and CBSD68 are the training data), for `denoise eval`.

    pip install scikit-image
    python scripts/unseen_photos.py photos-unseen
    denoise eval photos-unseen --bm3d --sigma 15/255 --sigma 25/255 --sigma 50/255 --protocol gaussian

The three are public domain (astronaut: NASA) or CC0 (chelsea, coffee), per scikit-image's data README.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

PHOTOS = ("astronaut", "chelsea", "coffee")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    try:
        from skimage import data
    except ImportError:
        raise SystemExit("this needs scikit-image: pip install scikit-image") from None
    args.out.mkdir(parents=True, exist_ok=True)
    for name in PHOTOS:
        Image.fromarray(getattr(data, name)()).save(args.out / f"{name}.png")
        print(args.out / f"{name}.png")


if __name__ == "__main__":
    main()
