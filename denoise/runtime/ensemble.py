"""Geometric self-ensemble: denoise the 8 flips and rotations of the input and average the results.

The noise is white, so each orientation sees an independent-looking view of the same image; averaging
the eight outputs removes part of the model's own error, for 8x the work (the gain: BENCHMARKS.md). It works
per batch of tiles, so tiling, batching and every backend are unchanged; a tile of HxW is also run as WxH
(square tiles, the default, keep TensorRT engines within their shape profile).
"""

from __future__ import annotations

import numpy as np

from denoise.runtime.contract import Infer


def _orient(array: np.ndarray, turns: int, flip: bool) -> np.ndarray:
    view = np.rot90(array, turns, axes=(2, 3))
    return np.ascontiguousarray(view[..., ::-1] if flip else view)


def self_ensemble(infer: Infer) -> Infer:
    """``infer(batch NCHW float32, sigma maps N1HW) -> NCHW`` -> the same, averaged over the 8 orientations
    (each map turned with its image)."""

    def ensemble_infer(batch: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
        total = np.zeros(batch.shape, dtype=np.float32)
        for turns in range(4):
            for flip in (False, True):
                out = np.asarray(infer(_orient(batch, turns, flip), _orient(sigmas, turns, flip)), dtype=np.float32)
                out = out[..., ::-1] if flip else out
                total += np.rot90(out, -turns, axes=(2, 3))
        return total / 8

    return ensemble_infer
