"""Regenerate samples/: a few CIFAR-10 test images and two CBSD68 photos, clean and noisy.

Noise: sigma 0.1 on the [0,1] scale, `uint8` protocol (clipped and rounded, as a real file holds),
seeded so the files are reproducible. Run from the repository root with ../shared/data present:

    python scripts/make_samples.py
"""

import io
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from denoise.noise import add_noise

DATA = Path("../shared/data")
SAMPLES = Path("samples")
SIGMA = 0.1
CIFAR = ["test/airplane/0000.jpg", "test/cat/0000.jpg", "test/dog/0001.jpg", "test/ship/0002.jpg",
         "test/horse/0003.jpg", "test/frog/0004.jpg"]
PHOTOS = ["101087.png", "21077.png"]


def save_pair(name: str, clean: np.ndarray, seed: int) -> None:
    noisy = add_noise(clean.astype(np.float32) / 255.0, SIGMA, "uint8", np.random.default_rng(seed))
    Image.fromarray(clean).save(SAMPLES / "clean" / name)
    Image.fromarray(np.round(noisy * 255).astype(np.uint8)).save(SAMPLES / "noisy" / name)


def main() -> None:
    (SAMPLES / "clean").mkdir(parents=True, exist_ok=True)
    (SAMPLES / "noisy").mkdir(parents=True, exist_ok=True)
    with tarfile.open(DATA / "cifar10" / "cifar10-jpeg.tar.gz") as tar:
        for seed, member in enumerate(CIFAR):
            clean = np.asarray(Image.open(io.BytesIO(tar.extractfile(member).read())).convert("RGB"))
            save_pair("cifar-" + member.split("/")[1] + "-" + Path(member).stem + ".png", clean, seed)
    for seed, name in enumerate(PHOTOS, start=100):
        save_pair("cbsd68-" + name, np.asarray(Image.open(DATA / "cbsd68" / name).convert("RGB")), seed)


if __name__ == "__main__":
    main()
