"""Build a folder of extra clean training photos from Debian's wallpaper packages.

CBSD68 gives only 61 training photos. Debian ships 23 photographs (GPL-2+, see each package's
copyright file) in two wallpaper packages; reduced 3-8x with a box filter (which averages away sensor
noise and JPEG artefacts) to about 640 pixels on the long side, they add some 5.5 megapixels of varied
photo content. They are training data only: the unseen photos of the CBM3D comparison stay CBSD68's
held-out part and scikit-image's photos.

    python scripts/debian_photos.py gpu-data/photos-debian            # downloads with apt-get download
    python scripts/debian_photos.py gpu-data/photos-debian --debs DIR # or uses .deb files already in DIR
    denoise train --data cifar10-jpeg.tar.gz --data cbsd68 --data gpu-data/photos-debian ...

Needs `apt-get` and `dpkg-deb` (Debian or Ubuntu) and some 180 MB of downloads.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

from PIL import Image

PACKAGES = ("mate-backgrounds", "plasma-workspace-wallpapers")
MATE_PHOTOS = ("Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow", "LadyBird",
               "RainDrops", "Storm", "TwoWings", "Wood", "YellowFlower")
PLASMA_PHOTOS = ("BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf",
                 "Grey", "Kite", "OneStandsOut", "Path", "summer_1am")
LONG_SIDE = 640


def run(command: list[str], cwd: Path | None = None) -> None:
    try:
        subprocess.run(command, cwd=cwd, check=True)
    except FileNotFoundError:
        raise SystemExit(f"{command[0]} not found: this script needs Debian or Ubuntu (or pass --debs DIR)") from None
    except subprocess.CalledProcessError as exc:
        raise SystemExit(f"{' '.join(command)} failed with exit code {exc.returncode}") from None


def download(debs: Path) -> None:
    run(["apt-get", "download", *PACKAGES], cwd=debs)


def unpack(debs: Path, root: Path) -> None:
    found = [deb for deb in sorted(debs.glob("*.deb")) if deb.name.startswith(PACKAGES)]
    if not found:
        raise SystemExit(f"no {' or '.join(PACKAGES)} .deb file in {debs}")
    for deb in found:
        run(["dpkg-deb", "-x", str(deb), str(root)])


def pixel_count(path: Path) -> int:
    width, height = Image.open(path).size
    return width * height


def photo_files(root: Path) -> dict[str, Path]:
    """Each photo's largest file (the plasma wallpapers come in many sizes; the largest is the original)."""
    files = {f"mate-{name}": root / "usr/share/backgrounds/mate/nature" / f"{name}.jpg" for name in MATE_PHOTOS}
    for name in PLASMA_PHOTOS:
        sizes = list((root / "usr/share/wallpapers" / name / "contents/images").glob("*.*"))
        if sizes:
            files[f"plasma-{name}"] = max(sizes, key=pixel_count)
    return files


def reduce_photo(source: Path, target: Path) -> tuple[int, int]:
    image = Image.open(source).convert("RGB")
    factor = max(1, round(max(image.size) / LONG_SIDE))
    reduced = image.reduce(factor)
    reduced.save(target)
    return reduced.size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--debs", type=Path, help="a folder holding the two .deb files (default: download them)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as temp:
        debs = args.debs or Path(temp) / "debs"
        if args.debs is None:
            debs.mkdir()
            download(debs)
        root = Path(temp) / "root"
        unpack(debs, root)
        files = photo_files(root)
        wanted = {f"mate-{n}" for n in MATE_PHOTOS} | {f"plasma-{n}" for n in PLASMA_PHOTOS}
        missing = sorted(wanted - {name for name, path in files.items() if path.is_file()})
        if missing:
            raise SystemExit(f"not found in the packages: {', '.join(missing)}")
        for name, source in sorted(files.items()):
            width, height = reduce_photo(source, args.out / f"{name}.png")
            print(f"{args.out / name}.png  {width}x{height}  from {source.resolve().name}")


if __name__ == "__main__":
    main()
