"""Camera RAW files in (DNG, CR2/CR3, NEF, ARW, RAF, ORF, RW2, ...), developed through LibRaw (rawpy, the `raw`
extra) into a 16-bit sRGB image that takes the normal path: the estimator's map, the denoiser, tiling.

The development is fixed and never depends on the data, so the same mosaic with and without noise develops to the
same brightness: the camera's as-shot white balance, AHD demosaicing, 16 bits per channel, no auto brightening,
and LibRaw's ``adjust_maximum_thr`` at 0 (by default LibRaw lowers the white point to the brightest pixels it
finds). The output is sRGB -- its primaries and its tone curve, LibRaw's gamma (2.4, 12.92) -- and carries an sRGB
ICC profile.

The RAW's EXIF is copied. rawpy gives the exposure but not the camera's make and model nor GPS, so those are read
from the file's own structure: a TIFF for DNG, NEF, CR2, ARW, PEF, SRW, ORF and RW2 (the last two with magic
numbers of their own), the CMT boxes of a CR3, the preview JPEG of a RAF. What that gives not, LibRaw's reading
fills in (ISO, exposure time, aperture, focal length, date, lens). The camera's MakerNote is left out: its
offsets point into the RAW.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import struct
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms

from denoise.errors import DenoiseError, missing_extra
from denoise.image_files import LoadedImage, check_size
from denoise.raw_noise import fit_mosaic_noise
from denoise.tiff_writer import DESCRIPTIVE_TAGS, EXIF_IFD, GPS_IFD, INTEROP_IFD

SRGB_GAMMA = (2.4, 12.92)  # LibRaw's (power, toe slope) of the sRGB tone curve
MAKER_NOTE = 0x927C
ISO_TAG = 0x8827

log = logging.getLogger(__name__)
_STDERR_SWAP = threading.Lock()  # one LibRaw read at a time holds file descriptor 2 (libraw_lines_held)


@dataclass(frozen=True)
class RawInfo:
    """What a linear DNG and the manifest need from the RAW: the camera, its ISO, and how LibRaw developed it."""

    camera: str | None  # "make model", from the RAW's EXIF
    iso: int | None
    white_balance: tuple[float, float, float]  # the R, G, B multipliers the development used
    rgb_cam: np.ndarray  # 3x3: white-balanced camera RGB -> linear sRGB, as LibRaw developed
    colors: int  # colour channels of the sensor (3 for Bayer and X-Trans)
    noise: tuple[float, float] | None = None  # the mosaic's (shot, read), black 0 to white 1 (raw_noise); None: not read

    def manifest_fields(self) -> dict:
        fields = {"camera": self.camera, "iso": self.iso}
        if self.noise is not None:
            fields["raw_noise"] = {"shot": float(f"{self.noise[0]:.4g}"), "read": float(f"{self.noise[1]:.4g}")}
        return fields


def rawpy_module():
    """rawpy, or the one line that says which extra to install."""
    try:
        import rawpy
    except ImportError:
        raise missing_extra("rawpy (LibRaw, for camera RAW files)", "raw") from None
    return rawpy


def libraw_version() -> str | None:
    """LibRaw's version as rawpy carries it, or None without the `raw` extra."""
    try:
        return ".".join(map(str, rawpy_module().libraw_version))
    except DenoiseError:
        return None


@functools.cache
def srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def develop_options(rawpy) -> dict:
    """LibRaw's settings for every RAW (see the module docstring); a DNG written back is checked with the same."""
    return dict(demosaic_algorithm=rawpy.DemosaicAlgorithm.AHD, use_camera_wb=True, output_bps=16,
                no_auto_bright=True, adjust_maximum_thr=0.0, output_color=rawpy.ColorSpace.sRGB, gamma=SRGB_GAMMA)


@contextlib.contextmanager
def libraw_lines_held(path: Path):
    """While LibRaw reads ``path`` (opens and unpacks it), what the process writes to its stderr (file descriptor 2)
    is held in a temporary file and passed on afterwards, less LibRaw's own lines about this file.

    Why: on a damaged file LibRaw prints a line itself ("<file>: Unexpected end of file") beside the error it
    raises, which read_raw turns into the one line a failed file gets -- two lines for one failure. rawpy offers
    no way to set LibRaw's data-error handler. Other threads' writes in that window are not lost, only held: they
    are passed on when the read ends. Descriptor 2 itself, not ``sys.stderr``: LibRaw writes to C's stderr, whatever
    Python's has been pointed at. Where the process has no descriptor 2, nothing is held."""
    fd = 2
    try:
        os.fstat(fd)
    except OSError:
        yield
        return
    with _STDERR_SWAP, tempfile.TemporaryFile() as held:
        if sys.stderr is not None:
            sys.stderr.flush()  # what Python wrote before goes out first
        saved = os.dup(fd)
        os.dup2(held.fileno(), fd)
        try:
            yield
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            held.seek(0)
            own = f"{path}: ".encode()
            kept = b"".join(line for line in held.read().splitlines(keepends=True) if not line.startswith(own))
            if kept:
                os.write(fd, kept)


def read_raw(path: Path) -> LoadedImage:
    """Develop a camera RAW file (see the module docstring); a DenoiseError naming the file if LibRaw cannot."""
    path = Path(path)
    rawpy = rawpy_module()
    try:
        with rawpy.RawPy() as raw:
            with libraw_lines_held(path):  # where LibRaw reads the file (the development after it only computes)
                raw.open_file(str(path))
                check_size(path, raw.sizes.width, raw.sizes.height)  # before the mosaic is decoded
                raw.unpack()
            pixels = raw.postprocess(**develop_options(rawpy))
            from_libraw, colors = libraw_exif(raw), raw.num_colors
            white_balance = tuple(float(m) for m in raw.auto_whitebalance[:3])
            rgb_cam = np.array(raw.color_matrix, np.float64)[:, :3]
            noise = mosaic_noise(raw)
    except (rawpy.LibRawError, rawpy.NotSupportedError) as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        if isinstance(exc, rawpy.LibRawIOError):
            reason += ": the file is cut short or damaged"
        raise DenoiseError(f"{path}: LibRaw {libraw_version()} cannot read it as a camera RAW file ({reason})") from None
    ifd0, exif, gps = read_file_exif(path)
    exif = {**from_libraw, **exif}
    info = RawInfo(camera_name(ifd0), iso_of(exif), white_balance, rgb_cam, colors, noise)
    save_info = {"icc_profile": srgb_profile(), "exif": exif_bytes(ifd0, exif, gps)}
    return LoadedImage(np.ascontiguousarray(pixels), "RGB", None, save_info, 16, raw=info)


def mosaic_noise(raw) -> tuple[float, float] | None:
    """The Poisson-Gaussian fit of a Bayer RAW's mosaic (raw_noise.fit_mosaic_noise); None for other sensors
    (X-Trans, Foveon, linear DNGs), whose level the estimator reads from the development instead."""
    pattern = raw.raw_pattern
    if raw.num_colors != 3 or pattern is None or pattern.shape != (2, 2):
        return None
    black = np.asarray(raw.black_level_per_channel, np.float64)[raw.raw_colors_visible[:2, :2]]
    if np.any(black >= raw.white_level):
        return None
    return fit_mosaic_noise(raw.raw_image_visible, black, float(raw.white_level))


def read_file_exif(path: Path) -> tuple[dict, dict, dict]:
    """file_exif of the file; when its structure cannot be parsed, a warning, and LibRaw's fields are what is kept."""
    try:
        return file_exif(path.read_bytes())
    except (OSError, ValueError, SyntaxError, struct.error, KeyError, IndexError) as exc:
        log.warning("%s: its EXIF could not be read (%s); only what LibRaw reads is kept", path, exc)
        return {}, {}, {}


def camera_name(ifd0: dict) -> str | None:
    make, model = (str(ifd0.get(tag, "")).strip("\0 ") for tag in (271, 272))
    name = model if model.lower().startswith(make.lower()) else f"{make} {model}".strip()
    return name or None


def iso_of(exif: dict) -> int | None:
    value = exif.get(ISO_TAG)
    value = value[0] if isinstance(value, tuple) and value else value
    return int(value) if value else None


def libraw_exif(raw) -> dict:
    """The Exif IFD's tags that LibRaw read, for RAWs whose own EXIF lacks them (zero or empty: unknown)."""
    other, lens = raw.other, raw.lens
    values = {ISO_TAG: round(other.iso_speed), 0x829A: other.shutter_speed, 0x829D: other.aperture,
              0x920A: other.focal_length, 0xA433: lens.make.strip(), 0xA434: lens.model.strip(),
              0x9003: other.timestamp.strftime("%Y:%m:%d %H:%M:%S") if other.timestamp.year > 1970 else ""}
    return {tag: value for tag, value in values.items() if value}


def exif_bytes(ifd0: dict, exif: dict, gps: dict) -> bytes:
    out = Image.Exif()
    out.update(ifd0)
    if exif:
        out.get_ifd(EXIF_IFD).update(exif)
    if gps:
        out.get_ifd(GPS_IFD).update(gps)
    return out.tobytes()


def file_exif(data: bytes) -> tuple[dict, dict, dict]:
    """(IFD0's descriptive tags, the Exif IFD, the GPS IFD) as the RAW's own structure holds them; empty for a
    container not known here (LibRaw's reading fills in then)."""
    tiff = data
    if data[:4] in (b"IIRO", b"IIRS", b"IIU\0"):  # Olympus ORF, Panasonic RW2: TIFF with magic numbers of their own
        tiff = b"II*\0" + data[4:]
    elif data[:4] == b"MMOR":
        tiff = b"MM\0*" + data[4:]
    if tiff[:4] in (b"II*\0", b"MM\0*"):
        return _parts(_load_exif(tiff))
    if data[4:12] == b"ftypcrx ":  # CR3: TIFF blocks in boxes, CMT1 IFD0, CMT2 the Exif IFD, CMT4 the GPS IFD
        ifd0, exif, gps = (_load_exif(_box(data, name)) for name in (b"CMT1", b"CMT2", b"CMT4"))
        return _descriptive(ifd0), _without_pointers(dict(exif)), dict(gps)
    if data.startswith(b"FUJIFILMCCD-RAW"):  # RAF: the preview JPEG's EXIF; its offset and length at byte 84
        start, length = struct.unpack(">II", data[84:92])
        with Image.open(io.BytesIO(data[start:start + length])) as preview:
            return _parts(preview.getexif())
    return {}, {}, {}


def _load_exif(tiff: bytes) -> Image.Exif:
    exif = Image.Exif()
    if tiff:
        exif.load(tiff)
    return exif


def _box(data: bytes, name: bytes) -> bytes:
    """The payload of the first ISO base media box called ``name`` (its 4-byte big-endian size comes before)."""
    at = data.find(name)
    if at < 4:
        return b""
    size = struct.unpack(">I", data[at - 4:at])[0]
    return data[at + 4:at - 4 + size]


def _parts(exif: Image.Exif) -> tuple[dict, dict, dict]:
    return _descriptive(exif), _without_pointers(exif.get_ifd(EXIF_IFD)), dict(exif.get_ifd(GPS_IFD))


def _descriptive(ifd0: Image.Exif) -> dict:
    return {tag: ifd0[tag] for tag in DESCRIPTIVE_TAGS if tag in ifd0}


def _without_pointers(exif: dict) -> dict:
    return {tag: value for tag, value in exif.items() if tag not in (MAKER_NOTE, INTEROP_IFD)}
