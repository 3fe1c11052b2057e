"""Prepare gpu-data/ for a lent GPU machine within the 64 MiB that travel with the checkout (../shared/GPU.md).

    python scripts/gpu_data.py gpu-data

Writes: cbsd432/ (copied: 32 MB of JPEG), cbsd68/ as lossless WebP (12 MB instead of 18), sun80/ box-reduced
by 2 (a quarter of the pixels; JPEG quality 95, 4:4:4), and cifar10-part.tar.gz: the first CIFAR_TRAIN training images of the CIFAR-10
archive in its own layout (train/<class>/NNNN.jpg, bytes unchanged), so CIFAR batches keep the seed's protocol.
File names (stems) are kept, so `denoise train`'s every-10th validation split holds out the same photos.
"""

from __future__ import annotations

import argparse
import io
import shutil
import tarfile
from pathlib import Path

from PIL import Image

CIFAR_TRAIN = 12000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    args = parser.parse_args()
    out, shared = args.out, args.shared
    out.mkdir(parents=True, exist_ok=True)
    shutil.copytree(shared / "cbsd432", out / "cbsd432", dirs_exist_ok=True)
    (out / "cbsd68").mkdir(exist_ok=True)
    for path in sorted((shared / "cbsd68").glob("*.png")):
        Image.open(path).convert("RGB").save(out / "cbsd68" / (path.stem + ".webp"), lossless=True, quality=100, method=6)
    (out / "sun80").mkdir(exist_ok=True)
    for path in sorted((shared / "sun80").glob("*.jpg")):
        with Image.open(path) as im:
            im.convert("RGB").reduce(2).save(out / "sun80" / (path.stem + ".jpg"), quality=95, subsampling=0)
    with tarfile.open(shared / "cifar10" / "cifar10-jpeg.tar.gz") as src, \
            tarfile.open(out / "cifar10-part.tar.gz", "w:gz") as dst:
        members = sorted((m for m in src.getmembers() if m.isfile() and m.name.startswith("train/")), key=lambda m: m.name)
        step = max(1, len(members) // CIFAR_TRAIN)
        for member in members[::step][:CIFAR_TRAIN]:  # every class, evenly
            dst.addfile(member, io.BytesIO(src.extractfile(member).read()))
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {out}: {total / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
