"""Noise levels and the named noise protocols, in numpy (the runtime and eval must not need torch).

Sigma is on the [0,1] intensity scale (the seed's convention); ``parse_sigma`` also takes "25/255".

Protocols (how a noisy image is made from a clean one x in [0,1]):

* ``clip``     -- clip(x + sigma*n, 0, 1): the seed notebook's protocol.
* ``gaussian`` -- x + sigma*n, unclipped float: the protocol of the literature's tables.
* ``uint8``    -- round(clip(x + sigma*n, 0, 1) * 255) / 255: what real 8-bit files hold.

* ``camera``   -- what a camera does: signal-dependent noise in linear light, demosaicing, colour
  correction, tone curve, 8-bit rounding and JPEG (``denoise.camera_noise``); ``sigma`` sets its strength
  there, and the reference is the same camera's noise-free picture (``noisy_pair``).

Training also has ``mixed`` (white protocols drawn per image, camera noise on photos): see
``denoise.train.noise``.
"""

from __future__ import annotations

import numpy as np

from denoise.errors import DenoiseError
from denoise.metrics import pixel_scale

PROTOCOLS = ("clip", "gaussian", "uint8", "camera")
TRAIN_PROTOCOLS = PROTOCOLS + ("mixed",)


def parse_sigma(text: str) -> float:
    """'0.3' -> 0.3, '25/255' -> 0.098...; raises DenoiseError with a hint on anything else."""
    text = str(text).strip()
    try:
        if "/" in text:
            num, den = text.split("/", 1)
            value = float(num) / float(den)
        else:
            value = float(text)
    except (ValueError, ZeroDivisionError):
        raise DenoiseError(
            f"sigma {text!r} is not a number: give a noise level on [0,1] such as 0.1, or a fraction such as 25/255"
        ) from None
    if not np.isfinite(value) or value < 0:
        raise DenoiseError(f"sigma {text!r} must be a finite number >= 0 (on the [0,1] scale, e.g. 0.1 or 25/255)")
    return value


def noisy_pair(clean: np.ndarray, sigma: float, protocol: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(noisy, reference) float32 HxWx3 from ``clean`` in [0,1]: the reference is ``clean`` itself for the
    white protocols and the camera's noise-free picture for ``camera``."""
    if protocol == "camera":
        from denoise.camera_noise import camera_noise

        noisy, target, _ = camera_noise(clean, rng, sigma=sigma)
        return noisy, target
    return add_noise(clean, sigma, protocol, rng), np.asarray(clean, dtype=np.float32)


def add_noise(clean: np.ndarray, sigma: float, protocol: str, rng: np.random.Generator) -> np.ndarray:
    """Noisy float32 version of ``clean`` (float in [0,1]) under the named protocol.

    One image, one sigma, in numpy: for the runtime, ``denoise eval`` and export's checks, which must not need
    torch. Training draws whole batches with the same white-noise arithmetic in torch, on its device
    (``denoise.train.noise.add_noise``)."""
    if protocol not in PROTOCOLS:
        raise DenoiseError(f"unknown noise protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    if protocol == "camera":
        return noisy_pair(clean, sigma, protocol, rng)[0]
    clean = np.asarray(clean, dtype=np.float32)
    noisy = clean + np.float32(sigma) * rng.standard_normal(clean.shape, dtype=np.float32)
    if protocol == "gaussian":
        return noisy
    noisy = np.clip(noisy, 0.0, 1.0)
    if protocol == "uint8":
        noisy = np.round(noisy * 255.0) / 255.0
    return noisy.astype(np.float32)


def immerkaer_residual(values: np.ndarray) -> np.ndarray:
    """Immerkaer's mask [[1,-2,1],[-2,4,-2],[1,-2,1]] as a 'valid' 2-D correlation over the first two axes (per
    channel): zero on planes and gradients of the signal; on white noise of sigma s its output has sigma 6 s."""
    return (values[:-2, :-2] - 2 * values[:-2, 1:-1] + values[:-2, 2:]
            - 2 * values[1:-1, :-2] + 4 * values[1:-1, 1:-1] - 2 * values[1:-1, 2:]
            + values[2:, :-2] - 2 * values[2:, 1:-1] + values[2:, 2:])


def estimate_sigma(image: np.ndarray, rows_per_strip: int = 256) -> float:
    """Blind estimate of Gaussian noise sigma on [0,1] (Immerkaer 1996, 'Fast noise variance estimation').

    ``image`` is HxW or HxWxC, float in [0,1] or uint8/uint16 pixels; the estimate is the mean over
    channels. The Laplacian-like mask cancels smooth image structure, so what remains is mostly noise.
    The sum runs over strips of rows, so a 100-megapixel image needs no float copy of itself.
    """
    img = np.asarray(image)
    scale = pixel_scale(img.dtype)
    if img.ndim == 2:
        img = img[..., None]
    h, w = img.shape[:2]
    if h < 3 or w < 3:
        return 0.0
    total = np.zeros(img.shape[2])
    for top in range(0, h - 2, rows_per_strip):  # output rows top..top+strip need input rows top..top+strip+2
        strip = img[top:top + rows_per_strip + 2].astype(np.float64) / scale
        total += np.abs(immerkaer_residual(strip)).sum(axis=(0, 1))
    sigma = np.sqrt(np.pi / 2) / (6.0 * (w - 2) * (h - 2)) * total
    return float(sigma.mean())
