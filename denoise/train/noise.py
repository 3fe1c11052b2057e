"""The noise protocols of ``denoise.noise`` for torch batches (one sigma per image)."""

from __future__ import annotations

import torch


def add_noise(clean: torch.Tensor, sigma: torch.Tensor, protocol: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """clean [N,C,H,W] in [0,1], sigma [N] -> noisy [N,C,H,W] (see denoise.noise for the protocols)."""
    noise = torch.randn(clean.shape, generator=generator, dtype=clean.dtype, device=clean.device)
    noisy = clean + sigma.reshape(-1, 1, 1, 1) * noise
    if protocol == "gaussian":
        return noisy
    noisy = noisy.clamp(0.0, 1.0)
    if protocol == "uint8":
        noisy = torch.round(noisy * 255.0) / 255.0
    elif protocol != "clip":
        raise ValueError(f"unknown noise protocol {protocol!r}")
    return noisy
