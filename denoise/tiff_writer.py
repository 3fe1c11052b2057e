"""TIFF files laid out here, with Pillow's IFD writer: tifffile (which reads our 16-bit TIFFs) writes no EXIF or
GPS sub-IFDs, and Pillow writes no 16-bit colour TIFFs. A developed RAW keeps its EXIF (camera, lens, exposure,
ISO, date, GPS) beside its ICC profile in 16 bits, and a linear DNG is a TIFF with tags of its own.

The layout: the 8-byte header, the one IFD with its values and sub-IFDs, then the pixels in one uncompressed
strip, little-endian."""

from __future__ import annotations

import struct

import numpy as np
from PIL import Image, TiffTags
from PIL.TiffImagePlugin import ImageFileDirectory_v2

SHORT, LONG, UNDEFINED = TiffTags.SHORT, TiffTags.LONG, TiffTags.UNDEFINED
EXIF_IFD, GPS_IFD, INTEROP_IFD = 0x8769, 0x8825, 0xA005
# IFD0 tags that describe the photo rather than the file's layout: what is copied from a source's EXIF
# (description, make, model, software, date, artist, copyright). Orientation is not: it is applied to the pixels.
DESCRIPTIVE_TAGS = (270, 271, 272, 305, 306, 315, 33432)
UNASSOCIATED_ALPHA = 2  # ExtraSamples


def tiff_bytes(pixels: np.ndarray, tags: dict[int, tuple[int, object]], exif: bytes | None = None) -> bytes:
    """A TIFF of ``pixels`` (HxW or HxWxC, 16 bits) with ``tags`` ({tag: (TIFF type, value)}, the photometric
    interpretation among them) and the descriptive tags and Exif / GPS sub-IFDs of ``exif`` (EXIF bytes)."""
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    data = np.ascontiguousarray(pixels, dtype="<u2").tobytes()
    layout = {256: (LONG, width), 257: (LONG, height), 258: (SHORT, (16,) * channels), 259: (SHORT, 1),
              273: (LONG, 0), 277: (SHORT, channels), 278: (LONG, height), 279: (LONG, len(data)), 284: (SHORT, 1)}
    ifd = ImageFileDirectory_v2(prefix=b"II")
    for tag, (kind, value) in {**camera_tags(exif), **tags, **layout}.items():
        ifd.tagtype[tag] = kind
        ifd[tag] = value
    # Pillow's writer moves StripOffsets past the IFD's own data: the pixels follow the IFD.
    return b"II*\x00" + struct.pack("<I", 8) + ifd.tobytes(8) + data


def camera_tags(exif: bytes | None) -> dict[int, tuple[int, object]]:
    """The tags of ``exif`` that a TIFF of the same photo carries: IFD0's descriptive ones and the Exif and GPS
    sub-IFDs (without the Interoperability pointer, which would point into the source file)."""
    if not exif:
        return {}
    source = Image.Exif()
    source.load(exif)
    tags = {tag: (TiffTags.lookup(tag).type or TiffTags.ASCII, source[tag]) for tag in DESCRIPTIVE_TAGS if tag in source}
    for pointer in (EXIF_IFD, GPS_IFD):
        entries = {tag: value for tag, value in source.get_ifd(pointer).items() if tag != INTEROP_IFD}
        if entries:
            tags[pointer] = (LONG, entries)
    return tags
