"""The noise protocols of ``denoise.noise`` for torch batches (one sigma per image).

Training also knows ``mixed``: each image of a batch gets one of clip, gaussian and uint8 at random, so
one model handles the seed's clipped noise, the literature's unclipped noise and real 8-bit files (a
model trained on clipped noise alone never sees values outside [0,1] and does worse on unclipped input).
"""

from __future__ import annotations

import torch

TRAIN_PROTOCOLS = ("clip", "gaussian", "uint8", "mixed")


def add_noise(clean: torch.Tensor, sigma: torch.Tensor, protocol: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """clean [N,C,H,W] in [0,1], sigma [N] -> noisy [N,C,H,W] (see denoise.noise for the protocols)."""
    if protocol not in TRAIN_PROTOCOLS:
        raise ValueError(f"unknown noise protocol {protocol!r}")
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
