"""The ``camera`` noise protocol: what a camera does to noise on its way to an sRGB file (numpy, no torch).

Real camera noise is not white: it is added in linear light on the Bayer mosaic and then goes through the
camera's processing, which makes it signal-dependent, spatially and cross-channel correlated, and
compressed. The synthesis follows the published recipes:

* Brooks et al. 2019, "Unprocessing Images for Learned Raw Denoising" (CVPR): invert the camera's
  processing of an sRGB photo -- tone curve (smoothstep), gamma, colour correction matrix, white balance
  and brightness gains -- to get linear raw values; their shot/read noise ranges of real sensors
  (log shot noise uniform over [1e-4, 1.2e-2], log read noise = 2.18 log shot + 1.2 + N(0, 0.26)).
* Foi et al. 2008 / Guo et al. 2019 (CBDNet, CVPR): Poisson-Gaussian noise, variance = shot * x + read,
  added to the mosaic; demosaicing and JPEG compression are part of the noise model.
* Zhang et al. 2023 (SCUNet): random degradations (here: JPEG or not, at a random quality).
* Malvar, He & Cutler 2004, "High-quality linear interpolation for demosaicing of Bayer-patterned color
  images" (ICASSP): the gradient-corrected 5x5 demosaicing many camera and raw-converter pipelines use
  beside bilinear; it correlates the noise differently (its kernels have negative taps).
* In-camera processing that Brooks et al. leave out and real JPEGs carry (Karaimer & Brown 2016, "A Software
  Platform for Manipulating the Camera Imaging Pipeline", ECCV, list both stages; Wang et al. 2021,
  Real-ESRGAN, draws unsharp-mask sharpening at random for the same reason): **noise reduction** in YCbCr --
  chroma smoothed strongly (colour noise is what cameras remove first), luma lightly -- and **unsharp-mask
  sharpening** of random amount, which amplifies the high frequencies of what noise is left.

Steps, per image: sRGB -> inverse tone -> inverse gamma -> camera RGB (inverse CCM) -> inverse white balance
and brightness -> Bayer mosaic (random phase) -> + N(0, shot * x + read) -> bilinear demosaic -> white
balance -> CCM -> clip -> gamma -> tone curve -> noise reduction (chroma, luma; each at random) -> sharpening
(at random) -> 8-bit rounding -> JPEG (4:2:0, quality 70-98) with probability 0.7. The demosaicing is
bilinear or Malvar-He-Cutler, half each. With probability 1 - MOSAIC_PROBABILITY the mosaic and demosaic steps are left out and the
noise is drawn for all three channels: bilinear demosaicing is the most correlating one there is, and better
demosaicing or a downscaled photo leaves noise closer to white (a random choice of degradation, as SCUNet).

The clean target is the same pipeline without noise, rounding or JPEG (noise reduction and sharpening
included: a camera smooths chroma and sharpens its noise-free pictures too): a noise-free photo from the same
camera, demosaiced the same way (a camera's clean picture is demosaiced too; CC15's clean means are); for
a JPEG shot, with the JPEG's 4:2:0 chroma subsampling too (quality 100: CC15's means are means of JPEGs). The
noise level map is the local RMS of (noisy - target) over a 9x9 window, averaged over the channels, taken
before the JPEG step: the true local level of the sensor's noise in the sRGB image, demosaicing, colour
correction and tone curve included. (JPEG's own error is large in texture; counted in the map it would tell
the denoiser to smooth texture. The denoiser learns to take JPEG out as part of the noise.)

``sigma`` parameterises the strength for evaluation: the standard deviation of shot noise at full-scale
raw signal (shot = sigma**2), with read noise on Brooks' line. Training draws the whole range instead.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

LEVEL_WINDOW = 9  # pixels: the window of the local noise level (the estimator's target)
SHOT_RANGE = (1e-4, 1.2e-2)  # Brooks et al. 2019, in raw [0,1] units
JPEG_PROBABILITY = 0.7
MOSAIC_PROBABILITY = 0.5  # else the noise is added to all three channels (see the module docstring)
JPEG_QUALITY = (70, 98)
MHC_PROBABILITY = 0.5  # of mosaicked images: Malvar-He-Cutler demosaicing, else bilinear
SHARPEN_PROBABILITY, SHARPEN_AMOUNT = 0.5, (0.2, 1.0)  # unsharp mask x + amount * (x - blur(x)), blur sigma 1
CHROMA_NR_PROBABILITY, CHROMA_NR_SIGMA = 0.5, (0.7, 2.0)  # Gaussian blur of Cb and Cr, in pixels
LUMA_NR_PROBABILITY, LUMA_NR_MIX = 0.3, (0.2, 0.6)  # Y blended with its blur (sigma 0.8) by this weight

# Camera RGB -> XYZ matrices of four cameras (Brooks et al. 2019, from Adobe DNG data), and XYZ -> linear sRGB.
_XYZ_TO_CAM = np.array([
    [[1.0234, -0.2969, -0.2266], [-0.5625, 1.6328, -0.0469], [-0.0703, 0.2188, 0.6406]],
    [[0.4913, -0.0541, -0.0202], [-0.613, 1.3513, 0.2906], [-0.1564, 0.2151, 0.7183]],
    [[0.838, -0.263, -0.0639], [-0.2887, 1.0725, 0.2496], [-0.0627, 0.1427, 0.5438]],
    [[0.6596, -0.2079, -0.0562], [-0.4782, 1.3016, 0.1933], [-0.097, 0.1581, 0.5181]],
])
_RGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                        [0.2126729, 0.7151522, 0.0721750],
                        [0.0193339, 0.1191920, 0.9503041]])


@dataclass(frozen=True)
class CameraParams:
    """One draw of a camera: its colour matrix, gains, noise and compression."""

    rgb_to_cam: np.ndarray  # 3x3, rows sum to 1 (grey stays grey)
    red_gain: float
    blue_gain: float
    brightness: float  # digital gain applied after the sensor
    shot: float
    read: float
    bayer_phase: tuple[int, int] | None  # (row, column) offset of the RGGB pattern; None: no mosaic
    jpeg_quality: int | None  # None: no JPEG
    demosaic: str = "bilinear"  # or "mhc" (Malvar-He-Cutler)
    chroma_nr: float = 0.0  # sigma in pixels of the Cb/Cr blur; 0: none
    luma_nr: float = 0.0  # weight of the blurred Y; 0: none
    sharpen: float = 0.0  # unsharp-mask amount; 0: none


def draw_params(rng: np.random.Generator, sigma: float | None = None) -> CameraParams:
    """A random camera (Brooks et al. 2019's ranges). ``sigma`` fixes the noise strength (shot = sigma**2,
    read on Brooks' line, no scatter); None draws it from the sensor ranges."""
    weights = rng.uniform(1e-8, 1.0, size=4)
    xyz_to_cam = np.tensordot(weights / weights.sum(), _XYZ_TO_CAM, axes=1)
    rgb_to_cam = xyz_to_cam @ _RGB_TO_XYZ
    rgb_to_cam = rgb_to_cam / rgb_to_cam.sum(axis=1, keepdims=True)
    if sigma is None:
        log_shot = rng.uniform(np.log(SHOT_RANGE[0]), np.log(SHOT_RANGE[1]))
        log_read = 2.18 * log_shot + 1.2 + rng.normal(0.0, 0.26)
    else:
        log_shot = np.log(max(float(sigma), 1e-6) ** 2)
        log_read = 2.18 * log_shot + 1.2
    return CameraParams(
        rgb_to_cam=rgb_to_cam,
        red_gain=float(rng.uniform(1.9, 2.4)),
        blue_gain=float(rng.uniform(1.5, 1.9)),
        brightness=float(np.clip(rng.normal(0.8, 0.1), 0.5, 1.1)),
        shot=float(np.exp(log_shot)),
        read=float(np.exp(log_read)),
        bayer_phase=(int(rng.integers(2)), int(rng.integers(2))) if rng.random() < MOSAIC_PROBABILITY else None,
        jpeg_quality=int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1)) if rng.random() < JPEG_PROBABILITY else None,
        # Drawn after the fields above, so those stay what the same seed gave before these steps existed.
        demosaic="mhc" if rng.random() < MHC_PROBABILITY else "bilinear",
        chroma_nr=float(rng.uniform(*CHROMA_NR_SIGMA)) if rng.random() < CHROMA_NR_PROBABILITY else 0.0,
        luma_nr=float(rng.uniform(*LUMA_NR_MIX)) if rng.random() < LUMA_NR_PROBABILITY else 0.0,
        sharpen=float(rng.uniform(*SHARPEN_AMOUNT)) if rng.random() < SHARPEN_PROBABILITY else 0.0,
    )


def tone(x: np.ndarray) -> np.ndarray:
    return 3.0 * x ** 2 - 2.0 * x ** 3  # the smoothstep tone curve of Brooks et al.


def inverse_tone(y: np.ndarray) -> np.ndarray:
    y = np.clip(y, 0.0, 1.0)
    return 0.5 - np.sin(np.arcsin(1.0 - 2.0 * y) / 3.0)


def _bayer_masks(height: int, width: int, phase: tuple[int, int]) -> np.ndarray:
    """[H,W,3] 0/1 masks of the R, G and B sites of an RGGB mosaic shifted by ``phase``."""
    rows = (np.arange(height)[:, None] + phase[0]) % 2
    cols = (np.arange(width)[None, :] + phase[1]) % 2
    red = (rows == 0) & (cols == 0)
    blue = (rows == 1) & (cols == 1)
    return np.stack([red, ~(red | blue), blue], axis=-1).astype(np.float32)


def _conv3x3(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """2-D correlation of [H,W,C] with a 3x3 kernel, reflect-padded (small and exact; no scipy)."""
    padded = np.pad(x, ((1, 1), (1, 1), (0, 0)), mode="reflect")
    out = np.zeros_like(x)
    h, w = x.shape[:2]
    for dy in range(3):
        for dx in range(3):
            if kernel[dy, dx]:
                out += kernel[dy, dx] * padded[dy:dy + h, dx:dx + w]
    return out


_GREEN_KERNEL = np.array([[0, 1, 0], [1, 4, 1], [0, 1, 0]], np.float32) / 4
_RED_BLUE_KERNEL = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], np.float32) / 4


def demosaic_bilinear(mosaic: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """[H,W] Bayer samples -> [H,W,3]: each missing value the mean of its nearest same-colour neighbours."""
    sparse = mosaic[..., None] * masks
    green = _conv3x3(sparse[..., 1:2], _GREEN_KERNEL)
    red_blue = _conv3x3(sparse[..., 0::2], _RED_BLUE_KERNEL)
    return np.concatenate([red_blue[..., :1], green, red_blue[..., 1:]], axis=-1)


def _correlate(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """2-D correlation of [H,W] with an odd square kernel, reflect-padded."""
    r = kernel.shape[0] // 2
    padded = np.pad(x, r, mode="reflect")
    out = np.zeros_like(x)
    h, w = x.shape
    for dy, dx in zip(*np.nonzero(kernel)):
        out += kernel[dy, dx] * padded[dy:dy + h, dx:dx + w]
    return out


# Malvar-He-Cutler's kernels (their Fig. 2), /8: G at R or B sites; R (or B) at a G site whose row holds R
# (or B); the same at a G site whose column holds it; R at B sites (and B at R).
_MHC_G = np.array([[0, 0, -1, 0, 0], [0, 0, 2, 0, 0], [-1, 2, 4, 2, -1], [0, 0, 2, 0, 0], [0, 0, -1, 0, 0]]) / 8
_MHC_ROW = np.array([[0, 0, .5, 0, 0], [0, -1, 0, -1, 0], [-1, 4, 5, 4, -1], [0, -1, 0, -1, 0], [0, 0, .5, 0, 0]]) / 8
_MHC_COLUMN = _MHC_ROW.T
_MHC_DIAGONAL = np.array([[0, 0, -1.5, 0, 0], [0, 2, 0, 2, 0], [-1.5, 0, 6, 0, -1.5], [0, 2, 0, 2, 0], [0, 0, -1.5, 0, 0]]) / 8


def demosaic_mhc(mosaic: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """[H,W] Bayer samples -> [H,W,3] by Malvar-He-Cutler: bilinear corrected by the local Laplacian of the
    sampled colour, which keeps edges sharper (and passes more of the noise's high frequencies) than bilinear."""
    red, green, blue = (masks[..., i].astype(bool) for i in range(3))
    rows_red = red.any(axis=1, keepdims=True)  # rows that hold red samples (RGGB: every other row)
    cols_red = red.any(axis=0, keepdims=True)
    g_site_red_row = green & rows_red  # G sites with red left and right
    g_site_red_col = green & cols_red  # G sites with red above and below
    at_g, by_row, by_column, by_diagonal = (_correlate(mosaic, k) for k in (_MHC_G, _MHC_ROW, _MHC_COLUMN, _MHC_DIAGONAL))
    out = np.empty(mosaic.shape + (3,), mosaic.dtype)
    out[..., 1] = np.where(green, mosaic, at_g)
    out[..., 0] = np.select([red, blue, g_site_red_row, g_site_red_col], [mosaic, by_diagonal, by_row, by_column])
    out[..., 2] = np.select([blue, red, g_site_red_row, g_site_red_col], [mosaic, by_diagonal, by_column, by_row])
    return out


def gaussian_blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """[H,W] blurred by a separable Gaussian of ``sigma`` pixels (truncated at 3 sigma), reflect-padded."""
    r = max(1, int(np.ceil(3 * sigma)))
    taps = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    taps /= taps.sum()
    padded = np.pad(x, r, mode="reflect")
    h, w = x.shape
    rows = sum(t * padded[:, i:i + w] for i, t in enumerate(taps))
    return sum(t * rows[i:i + h] for i, t in enumerate(taps))


_RGB_TO_YCBCR = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])  # JPEG's


def in_camera_processing(rgb: np.ndarray, p: CameraParams) -> np.ndarray:
    """sRGB [H,W,3] -> the same after the camera's noise reduction and sharpening (each only if drawn)."""
    if p.chroma_nr or p.luma_nr:
        ycc = rgb @ _RGB_TO_YCBCR.T
        if p.chroma_nr:
            for c in (1, 2):
                ycc[..., c] = gaussian_blur(ycc[..., c], p.chroma_nr)
        if p.luma_nr:
            ycc[..., 0] = (1 - p.luma_nr) * ycc[..., 0] + p.luma_nr * gaussian_blur(ycc[..., 0], 0.8)
        rgb = ycc @ np.linalg.inv(_RGB_TO_YCBCR).T
    if p.sharpen:
        blurred = np.stack([gaussian_blur(rgb[..., c], 1.0) for c in range(3)], axis=-1)
        rgb = rgb + p.sharpen * (rgb - blurred)
    return np.clip(rgb, 0.0, 1.0)


def _unprocess(rgb: np.ndarray, p: CameraParams) -> np.ndarray:
    """sRGB [H,W,3] in [0,1] -> linear camera RGB with the white balance and brightness taken out."""
    linear = np.maximum(inverse_tone(rgb), 1e-8) ** 2.2
    cam = linear @ np.linalg.inv(p.rgb_to_cam).T  # inverse of the camera -> sRGB correction
    gains = np.array([p.red_gain, 1.0, p.blue_gain]) * p.brightness
    return np.clip(cam / gains, 0.0, 1.0)


def _process(raw_rgb: np.ndarray, p: CameraParams) -> np.ndarray:
    """Demosaiced linear camera RGB -> sRGB in [0,1] (what the camera's processor does)."""
    gains = np.array([p.red_gain, 1.0, p.blue_gain]) * p.brightness
    linear = np.clip((raw_rgb * gains) @ p.rgb_to_cam.T, 0.0, 1.0)
    return tone(np.maximum(linear, 1e-8) ** (1 / 2.2))


def jpeg_round_trip(rgb_uint8: np.ndarray, quality: int) -> np.ndarray:
    """Encode and decode as a camera would (baseline JPEG, 4:2:0 chroma)."""
    buffer = io.BytesIO()
    Image.fromarray(rgb_uint8).save(buffer, format="JPEG", quality=quality, subsampling=2)
    buffer.seek(0)
    with Image.open(buffer) as im:
        return np.asarray(im.convert("RGB"))


def box_mean(x: np.ndarray, window: int) -> np.ndarray:
    """Mean of [H,W] over a ``window`` x ``window`` square around each pixel (the window shrinks at the border)."""
    r = window // 2
    h, w = x.shape
    total = np.pad(x, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    y0, y1 = np.clip(np.arange(h) - r, 0, h), np.clip(np.arange(h) + r + 1, 0, h)
    x0, x1 = np.clip(np.arange(w) - r, 0, w), np.clip(np.arange(w) + r + 1, 0, w)
    sums = total[y1][:, x1] - total[y0][:, x1] - total[y1][:, x0] + total[y0][:, x0]
    return sums / ((y1 - y0)[:, None] * (x1 - x0)[None, :])


def local_noise_level(noisy: np.ndarray, clean: np.ndarray, window: int = LEVEL_WINDOW) -> np.ndarray:
    """[H,W] float32: the RMS of (noisy - clean) over the channels and a window around each pixel."""
    squared = ((np.asarray(noisy, np.float64) - clean) ** 2).mean(axis=-1)
    return np.sqrt(np.maximum(box_mean(squared, window), 0.0)).astype(np.float32)  # cumsum rounding can dip below 0


def camera_noise(clean: np.ndarray, rng: np.random.Generator, sigma: float | None = None,
                 params: CameraParams | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(noisy, target, level) for one clean sRGB image [H,W,3] float in [0,1].

    ``noisy`` is what the camera writes (8-bit values, maybe JPEG), as float32; ``target`` the same camera's
    noise-free picture; ``level`` the [H,W] true local noise level. ``sigma``: see the module docstring.
    """
    clean = np.asarray(clean, dtype=np.float64)
    p = params or draw_params(rng, sigma)
    height, width = clean.shape[:2]
    linear = _unprocess(clean, p)
    if p.bayer_phase is None:  # every channel sampled: no demosaicing
        noisy_linear = linear + np.sqrt(np.maximum(p.shot * linear + p.read, 0.0)) * rng.standard_normal(linear.shape)
        target, noisy = _process(linear, p), _process(noisy_linear, p)
    else:
        masks = _bayer_masks(height, width, p.bayer_phase)
        raw = (linear * masks).sum(axis=-1)  # one colour per pixel
        noisy_raw = raw + np.sqrt(np.maximum(p.shot * raw + p.read, 0.0)) * rng.standard_normal(raw.shape)
        demosaic = demosaic_mhc if p.demosaic == "mhc" else demosaic_bilinear
        target, noisy = _process(demosaic(raw, masks), p), _process(demosaic(noisy_raw, masks), p)
    target, noisy = in_camera_processing(target, p), in_camera_processing(noisy, p)
    noisy8 = np.round(noisy * 255.0).astype(np.uint8)
    level = local_noise_level(noisy8 / 255.0, target)  # before JPEG: see the module docstring
    if p.jpeg_quality is not None:
        noisy8 = jpeg_round_trip(noisy8, p.jpeg_quality)
        # What the same camera's JPEG of the noise-free picture keeps: its 4:2:0 chroma (quality 100 adds
        # almost no other loss). Colour detail that chroma subsampling removed cannot be denoised back.
        target = jpeg_round_trip(np.round(target * 255.0).astype(np.uint8), 100) / 255.0
    return noisy8.astype(np.float32) / 255.0, target.astype(np.float32), level
