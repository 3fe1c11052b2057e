"""Reading and writing image files without losing or corrupting anything.

Decoding goes through Pillow. Every output is written to a temporary file in the destination folder
and renamed into place, so a killed run never leaves a truncated image behind.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from denoise.atomic import atomic_write
from denoise.errors import DenoiseError

IMAGE_SUFFIXES = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF",
                  ".webp": "WEBP", ".bmp": "BMP"}

DEFAULT_MAX_MEGAPIXELS = 200.0
Image.MAX_IMAGE_PIXELS = None  # our own check below replaces Pillow's warning, with a message that says what to do


def max_megapixels() -> float:
    """Largest image we decode (``DENOISE_MAX_MEGAPIXELS``, default 200): a guard against decompression bombs."""
    return float(os.environ.get("DENOISE_MAX_MEGAPIXELS", DEFAULT_MAX_MEGAPIXELS))


@dataclass
class LoadedImage:
    """RGB pixels as float32 HxWx3 in [0,1], plus what is needed to write the result back the same way."""

    rgb: np.ndarray
    mode: str  # "RGB", "L", "RGBA" or "LA": the mode the output is written in
    alpha: np.ndarray | None = None  # uint8 HxW, passed through untouched
    save_info: dict = field(default_factory=dict)  # ICC profile / EXIF to copy to the output


def read_image(path: Path) -> LoadedImage:
    """Decode an image file; raise DenoiseError naming the file if it is not a readable image."""
    try:
        with Image.open(path) as im:
            megapixels = im.size[0] * im.size[1] / 1e6
            if megapixels > max_megapixels():
                raise DenoiseError(f"{path}: {megapixels:.0f} megapixels is over the limit of {max_megapixels():.0f} "
                                   f"(a decompression bomb?); set DENOISE_MAX_MEGAPIXELS to allow it")
            im.load()
            im = ImageOps.exif_transpose(im)  # output looks like the input did in a viewer
            info = {k: im.info[k] for k in ("icc_profile",) if im.info.get(k)}
            return _to_loaded(im, info)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DenoiseError(f"{path}: not a readable image ({exc})") from None


def _to_loaded(im: Image.Image, info: dict) -> LoadedImage:
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("1", "I;16", "I;16B", "I;16L", "I", "F"):
        im = im.convert("L")
    if im.mode in ("L", "LA"):
        gray = np.asarray(im.getchannel("L"), dtype=np.float32) / 255.0
        alpha = np.asarray(im.getchannel("A")) if im.mode == "LA" else None
        return LoadedImage(np.repeat(gray[..., None], 3, axis=2), im.mode, alpha, info)
    alpha = np.asarray(im.getchannel("A")) if im.mode in ("RGBA", "RGBa") else None
    mode = "RGBA" if alpha is not None else "RGB"
    rgb = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    return LoadedImage(rgb, mode, alpha, info)


def to_pil(rgb_uint8: np.ndarray, mode: str, alpha: np.ndarray | None) -> Image.Image:
    """uint8 HxWx3 result -> a Pillow image in the original mode (grayscale stays grayscale)."""
    if mode in ("L", "LA"):
        gray = np.round(rgb_uint8.astype(np.float32).mean(axis=2)).astype(np.uint8)
        im = Image.fromarray(gray, "L")
    else:
        im = Image.fromarray(rgb_uint8, "RGB")
    if alpha is not None:
        im.putalpha(Image.fromarray(alpha, "L"))
    return im


def write_image_atomic(im: Image.Image, path: Path, save_info: dict | None = None, jpeg_quality: int = 95) -> None:
    """Write ``im`` to ``path`` via a temporary file in the same folder and an atomic rename."""
    fmt = IMAGE_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise DenoiseError(f"{path}: cannot write this file type; use one of {', '.join(sorted(IMAGE_SUFFIXES))}")
    options = dict(save_info or {})
    if fmt == "JPEG":
        options.update(quality=jpeg_quality, subsampling=0)
        if im.mode in ("RGBA", "LA"):
            im = im.convert(im.mode[:-1])  # JPEG has no alpha
    if fmt == "WEBP":
        options.update(quality=jpeg_quality)
    atomic_write(path, lambda f: im.save(f, format=fmt, **options))
