"""Real camera noise, told from white noise by what the denoiser leaves of it, and the factor it needs.

The noise estimator reads the level a white-noise-trained denoiser sees per pixel. A camera's noise has been
through demosaicing, in-camera noise reduction and JPEG, and is spatially correlated: at the level the estimator
reads, the denoiser takes out its fine grain and leaves its low-frequency blotches, and it needs about twice that
level (issue 23; BENCHMARKS.md, "Real noise told from white noise").

The tell is the residual of a denoising pass at the estimated level, ``noisy - denoised``: for white noise it is
white, for a camera's it keeps low-frequency energy. The statistic is ``sqrt(4 var(2x2 block means) / var)`` of
the residual, per colour channel, averaged: 1 for white noise (the mean of 4 independent values has a quarter of
their variance), more for correlated noise. The estimated map is multiplied by ``max(1, r) ** POWER``: exactly 1
where the residual is white, so white noise keeps the estimator's level.

POWER was fitted (``benchmarks/noise_correlation.py fit``) on the training part of the SIDD and RENOIR pairs and
on synthesized white and camera noise, never on the sets it is measured on. The statistic works as a switch
between white and real noise more than as a measure of how much more level a photo needs (the note in
BENCHMARKS.md).

Cost: a denoising pass over crops spread over the image (``crop_boxes``: a thirty-second of it, but never fewer
pixels than ``MIN_PIXELS``, three 64 x 64 crops, nor more than ``CROPS`` crops of ``MAX_CROP``), all of them in one
batch where they fit, with the map the estimator made -- nothing is estimated again. The statistic needs pixels
more than context: read on small crops it moved the real sets' results by at most 0.04 dB and left white noise's
factor at 1 (BENCHMARKS.md, "The real-noise pass on small crops" and "What `auto` costs, brought to within 10% in FP32").
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from denoise.metrics import to_float

POWER = 2.225
SHARE = 1 / 32  # of the image's pixels the statistic is read on: at least MIN_PIXELS, at most CROPS crops of MAX_CROP
MIN_CROP, MAX_CROP = 64, 256
CROPS = 4
MIN_PIXELS = 3 * MIN_CROP * MIN_CROP  # below this the residual's statistics are too few to tell: the factor stays 1


def crop_boxes(height: int, width: int) -> list[tuple[int, int, int, int]]:
    """(y0, y1, x0, x1) of the square crops the statistic is read on, on a grid spread evenly over the image,
    starting on even rows and columns: SHARE of its pixels, but at least MIN_PIXELS (the whole image where that is
    all of it) and at most CROPS crops of MAX_CROP. The crops are as large as CROPS of them allow (a multiple of
    MIN_CROP): small photos get many small crops, large ones CROPS of MAX_CROP."""
    if height * width <= MIN_PIXELS or min(height, width) < MIN_CROP:
        return [(0, height, 0, width)]
    want = min(max(MIN_PIXELS, int(height * width * SHARE)), CROPS * MAX_CROP ** 2)
    side = max(MIN_CROP, min(MAX_CROP, int((want / CROPS) ** 0.5) // MIN_CROP * MIN_CROP, min(height, width) // MIN_CROP * MIN_CROP))
    count = -(-want // (side * side))
    rows = min(height // side, max(1, round((count * height / width) ** 0.5)))
    cols = min(width // side, -(-count // rows))
    rows = min(height // side, -(-count // cols))

    def starts(size: int, n: int) -> list[int]:
        # cell centres, within [0, size - side], on even rows and columns: the statistic's 2x2 blocks then line up
        # with a Bayer mosaic's and JPEG's chroma subsampling's 2x2 grids, as on the whole image (on the 12 MP
        # JPEG case of benchmarks/auto_sigma.py, crops off that grid read the noise as less correlated)
        return [int(round((i + 0.5) * size / n - side / 2)) // 2 * 2 for i in range(n)]

    corners = [(y, x) for y in starts(height, rows) for x in starts(width, cols)][:count]
    if len(corners) * side * side < MIN_PIXELS:  # too few crops fit (a side short of two crops): the whole image
        return [(0, height, 0, width)]
    return [(y, y + side, x, x + side) for y, x in corners]


def block_ratio(residual: np.ndarray) -> float:
    """sqrt(4 var(2x2 block means) / var) of an HxWx3 residual, per channel, averaged (1 for white noise)."""
    h, w = residual.shape[0] // 2 * 2, residual.shape[1] // 2 * 2
    res = residual[:h, :w].astype(np.float64)
    res = res - res.mean(axis=(0, 1))
    var = (res ** 2).mean(axis=(0, 1))
    means = res.reshape(h // 2, 2, w // 2, 2, -1).mean(axis=(1, 3))
    return float(np.mean(np.sqrt(4 * (means ** 2).mean(axis=(0, 1)) / np.maximum(var, 1e-12))))


def real_noise_factor(pixels: np.ndarray, level: np.ndarray,
                      denoise: Callable[[list[np.ndarray], list[np.ndarray]], list[np.ndarray]]) -> float:
    """The factor for the estimated HxW map ``level`` of HxWx3 ``pixels`` (uint8, uint16 or float in [0,1]):
    ``max(1, r) ** POWER`` of the residual's statistic r, read on crop_boxes; 1 for an image of fewer than
    MIN_PIXELS or a side under 2 (no 2x2 block). ``denoise(crops, levels) -> denoised crops`` (same dtype) is
    the denoiser at those levels: given every crop at once, it can run them in one batch."""
    height, width = pixels.shape[:2]
    if height * width < MIN_PIXELS or min(height, width) < 2:
        return 1.0
    boxes = crop_boxes(height, width)
    crops = [np.ascontiguousarray(pixels[y0:y1, x0:x1]) for y0, y1, x0, x1 in boxes]
    denoised = denoise(crops, [np.ascontiguousarray(level[y0:y1, x0:x1]) for y0, y1, x0, x1 in boxes])
    ratios = [block_ratio(to_float(crop) - to_float(out)) for crop, out in zip(crops, denoised)]
    return float(max(1.0, float(np.mean(ratios))) ** POWER)
