"""Linear DNG out (``--format dng``): the denoised development of a camera RAW put back into linear light and the
camera's colours, with the matrix and as-shot white balance LibRaw developed it with, so that a raw converter
(Lightroom, darktable, LibRaw) opens it as a raw file whose white balance and exposure are still free.

It is the development of raw_files undone, step by step: the sRGB tone curve; the colour matrix (linear sRGB back
to white-balanced camera RGB, the inverse of LibRaw's ``rgb_cam``); the white balance (LibRaw's multipliers with
the smallest at 1, as it scales them). The DNG says LinearRaw, 16 bits, black 0, white 65535; ColorMatrix1 is the
matrix from XYZ that gives LibRaw the same ``rgb_cam`` (for D65), AsShotNeutral the inverse of the multipliers.
Developed again with raw_files' settings it gives back the denoised image up to 16-bit rounding, except where the
first development clipped -- colours outside sRGB, highlights above white --, which no inverse brings back.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import TiffTags

from denoise.atomic import atomic_write
from denoise.errors import DenoiseError
from denoise.image_files import LoadedImage
from denoise.tiff_writer import SHORT, tiff_bytes

BYTE, LONG, ASCII, RATIONAL, SIGNED_RATIONAL = (TiffTags.BYTE, TiffTags.LONG, TiffTags.ASCII, TiffTags.RATIONAL,
                                                TiffTags.SIGNED_RATIONAL)
LINEAR_RAW = 34892  # PhotometricInterpretation
D65 = 21  # CalibrationIlluminant
# Linear sRGB -> XYZ (D65) as LibRaw has it (xyz_rgb): it turns a DNG's ColorMatrix1 into its rgb_cam with it.
LIBRAW_XYZ_RGB = np.array([[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169],
                           [0.019334, 0.119193, 0.950227]])


def srgb_to_linear(values: np.ndarray) -> np.ndarray:
    return np.where(values <= 0.04045, values / 12.92, ((values + 0.055) / 1.055) ** 2.4)


def multipliers_of(white_balance) -> np.ndarray:
    """The R, G, B white balance multipliers as LibRaw scales the raw values by them: the smallest at 1."""
    return np.asarray(white_balance[:3], np.float64) / min(white_balance[:3])


def to_camera_rgb(linear: np.ndarray, white_balance, rgb_cam: np.ndarray) -> np.ndarray:
    """Linear sRGB (HxWx3) back to the camera's raw values per colour: ``rgb_cam`` and the white balance undone."""
    return linear @ np.linalg.inv(rgb_cam).T / multipliers_of(white_balance)


def write_linear_dng(result: np.ndarray, image: LoadedImage, path: Path) -> None:
    """Write ``result`` (HxWx3 uint16, the denoised development of ``image``, a camera RAW) as a linear DNG."""
    raw = image.raw
    if raw is None:
        raise DenoiseError(f"{path}: a linear DNG is made from camera RAW inputs only (it needs the camera's colour "
                           "matrix); choose another --format for this file")
    if raw.colors != 3 or not np.linalg.det(raw.rgb_cam):
        raise DenoiseError(f"{path}: this camera has {raw.colors} colour channels or no colour matrix in LibRaw; a "
                           "linear DNG is made for RGB sensors with a matrix only (choose --format tif)")
    multipliers = multipliers_of(raw.white_balance)
    linear = to_camera_rgb(srgb_to_linear(result.astype(np.float64) / 65535.0), raw.white_balance, raw.rgb_cam)
    pixels = np.round(np.clip(linear, 0.0, 1.0) * 65535.0).astype(np.uint16)
    xyz_to_camera = np.linalg.inv(raw.rgb_cam) @ np.linalg.inv(LIBRAW_XYZ_RGB)  # rgb_cam: camera RGB -> linear sRGB
    tags = {254: (LONG, 0), 262: (SHORT, LINEAR_RAW), 274: (SHORT, 1),
            50706: (BYTE, bytes((1, 4, 0, 0))), 50707: (BYTE, bytes((1, 1, 0, 0))),  # DNG version, backward version
            50708: (ASCII, raw.camera or "camera RAW denoised by denoise"),  # UniqueCameraModel
            50714: (LONG, 0), 50717: (LONG, 65535),  # black and white levels
            50721: (SIGNED_RATIONAL, tuple(float(v) for v in xyz_to_camera.ravel())), 50778: (SHORT, D65),
            50728: (RATIONAL, tuple(float(v) for v in multipliers[1] / multipliers))}  # AsShotNeutral
    data = tiff_bytes(pixels, tags, image.save_info.get("exif"))
    atomic_write(path, lambda f: f.write(data))
