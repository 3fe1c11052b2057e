"""The image file types denoise reads and writes, by suffix, and the one way folders are listed: below both
training and the runtime, which both list image folders (training must not depend on the deployment code
for it, and `denoise eval DIR` must read the files `denoise eval DIR --held-out` and `denoise batch` read)."""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path

IMAGE_SUFFIXES = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF",
                  ".webp": "WEBP", ".bmp": "BMP", ".avif": "AVIF", ".heic": "HEIF", ".heif": "HEIF",
                  ".gif": "GIF"}
# HEIC/HEIF need pillow-heif (in the cpu and gpu extras); AVIF is Pillow's own (Pillow 11.2+).

# Camera RAW files, read through LibRaw (rawpy, the `raw` extra: denoise/raw_files.py). They are inputs only: a
# RAW's output is a developed image (a 16-bit TIFF unless --format says otherwise) or a linear DNG.
RAW_SUFFIXES = (".dng", ".cr2", ".cr3", ".nef", ".nrw", ".arw", ".raf", ".orf", ".rw2", ".pef", ".srw")
RAW_OUTPUT_SUFFIX = ".tif"  # a RAW's output without --format: 16 bits per channel, EXIF and ICC profile kept

# What can be written: the image files, and a linear DNG (from a RAW input only: it needs the camera's matrices).
OUTPUT_SUFFIXES = {**IMAGE_SUFFIXES, ".dng": "DNG"}


def is_raw(path: Path) -> bool:
    return Path(path).suffix.lower() in RAW_SUFFIXES


def is_input(path: Path) -> bool:
    """Whether `denoise batch` takes the file: an image file or a camera RAW, told by its suffix."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES or is_raw(path)


def list_inputs(input_dir: Path, pattern: str = "*", follow_symlinks: bool = False) -> list[Path]:
    """Regular files under ``input_dir`` whose relative path matches the shell-style ``pattern`` ("*" also
    matches "/"; case-insensitive, as file types are told by suffix: cameras write IMG_0001.JPG), sorted. Hidden files and folders are left out, and so are links leading outside
    ``input_dir`` unless ``follow_symlinks`` (then each real folder is visited once, so link cycles end)."""
    root = input_dir.resolve()
    files, seen = [], set()
    for folder, dirs, names in os.walk(input_dir, followlinks=follow_symlinks):
        real = Path(folder).resolve()
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (follow_symlinks or _inside(Path(folder) / d, root)))
        for name in names:
            path = Path(folder) / name
            relative = path.relative_to(input_dir).as_posix()
            if name.startswith(".") or not path.is_file() or not fnmatch.fnmatchcase(relative.lower(), pattern.lower()):
                continue
            if follow_symlinks or _inside(path, root):
                files.append(path)
    return sorted(files)


def _inside(path: Path, root: Path) -> bool:
    real = path.resolve()
    return real == root or root in real.parents


def list_images(folder: Path) -> list[Path]:
    """The image files under ``folder`` (list_inputs' rules: hidden files and outside links left out), sorted."""
    return [p for p in list_inputs(Path(folder)) if p.suffix.lower() in IMAGE_SUFFIXES]
