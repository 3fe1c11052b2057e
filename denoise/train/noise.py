"""Noisy training batches: the white protocols of ``denoise.noise`` on torch tensors, and camera noise.

Every batch comes with the noise level the denoiser is given (and the estimator learns): one sigma per
image for white noise, a per-pixel map for camera noise (``denoise.camera_noise``).

* ``mixed``: each image of a white batch gets one of clip, gaussian and uint8 at random, so one model
  handles the seed's clipped noise, the literature's unclipped noise and real 8-bit files (a model trained
  on clipped noise alone never sees values outside [0,1] and does worse on unclipped input); and a share
  ``CAMERA_SHARE`` of the photo batches gets camera noise instead (CIFAR batches stay white: they keep the
  seed's protocol).
* ``camera``: every batch gets camera noise.
"""

from __future__ import annotations

import numpy as np
import torch

from denoise.camera_noise import camera_noise
from denoise.noise import TRAIN_PROTOCOLS

CAMERA_SHARE = 0.5  # of photo batches, under "mixed"


def add_noise(clean: torch.Tensor, sigma: torch.Tensor, protocol: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """clean [N,C,H,W] in [0,1], sigma [N] -> noisy [N,C,H,W]: the white protocols of ``denoise.noise.add_noise``,
    the same arithmetic in torch, so a training batch is made where it trains (on the GPU), one sigma per image,
    plus ``mixed`` (a protocol drawn per image). The numpy one stays for the torch-free runtime and eval."""
    if protocol not in ("clip", "gaussian", "uint8", "mixed"):
        raise ValueError(f"unknown white noise protocol {protocol!r}")
    noise = torch.randn(clean.shape, generator=generator, dtype=clean.dtype, device=clean.device)
    gaussian = clean + sigma.reshape(-1, 1, 1, 1) * noise
    if protocol == "gaussian":
        return gaussian
    clipped = gaussian.clamp(0.0, 1.0)
    if protocol == "clip":
        return clipped
    rounded = torch.round(clipped * 255.0) / 255.0
    if protocol == "uint8":
        return rounded
    choice = torch.randint(3, (len(clean), 1, 1, 1), generator=generator, device=clean.device)
    return torch.where(choice == 0, clipped, torch.where(choice == 1, gaussian, rounded))


def camera_batch(pixels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uint8 [N,H,W,3 or 4] clean crops -> float32 (noisy [N,3,H,W], target [N,3,H,W], level [N,1,H,W]),
    each image from its own random camera."""
    triples = [camera_noise(im[..., :3] / np.float32(255.0), rng) for im in pixels]
    noisy, target, level = (np.stack(parts) for parts in zip(*triples))
    return noisy.transpose(0, 3, 1, 2).copy(), target.transpose(0, 3, 1, 2).copy(), level[:, None].copy()


def uses_camera(protocol: str, photo_batch: bool, rng: np.random.Generator) -> bool:
    """Whether this batch gets camera noise (see the module docstring)."""
    if protocol not in TRAIN_PROTOCOLS:
        raise ValueError(f"unknown noise protocol {protocol!r}")
    return protocol == "camera" or (protocol == "mixed" and photo_batch and rng.random() < CAMERA_SHARE)
