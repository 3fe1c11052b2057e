"""Tile geometry and tiled inference, shared by the runtime and engine building (so engines are built
for the shapes the runtime actually feeds them).

An image is cut into ``tile`` cores; each is run with ``overlap`` pixels of real context on every side
(clipped at the image border) and only the core is kept. With ``overlap`` at least the model's
receptive-field radius, and cores aligned to the model's pixel-shuffle factor, every kept pixel sees
exactly what it would see in a whole-image run, so the result does not depend on the tiling (a test
checks this to 1e-5). Tile inputs are never padded: padding would replace the zero padding the
network sees at a real image border. Images no larger than one padded tile run whole.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

DEFAULT_TILE = 512
DEFAULT_MAX_BATCH = 8


def overlap_for(receptive_radius: int, align: int = 1) -> int:
    """The smallest overlap >= the receptive radius that keeps tiles aligned to ``align``."""
    return -(-receptive_radius // align) * align


def tile_input_size(tile: int, overlap: int) -> int:
    """The largest input a tile produces: its core plus the overlap on both sides."""
    return tile + 2 * overlap


def engine_profile(tile: tuple[int, int], overlap: int, max_batch: int) -> tuple:
    """TensorRT optimisation profile ((input, min, opt, max), ...) covering every shape the runtime feeds:
    whole small images from 1x1 up to one padded tile, batched up to ``max_batch``."""
    tile_h, tile_w = tile
    if min(tile_h, tile_w) < 1 or overlap < 0 or max_batch < 1:
        raise ValueError(f"bad tile settings: tile={tile}, overlap={overlap}, max_batch={max_batch}")
    h, w = tile_input_size(tile_h, overlap), tile_input_size(tile_w, overlap)
    return (
        ("noisy", (1, 3, 1, 1), (max_batch, 3, h, w), (max_batch, 3, h, w)),
        ("sigma", (1,), (max_batch,), (max_batch,)),
    )


def _spans(length: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """Along one axis: (core start, core end, input start, input end) for each tile."""
    if length <= tile_input_size(tile, overlap):
        return [(0, length, 0, length)]
    spans = []
    for start in range(0, length, tile):
        end = min(start + tile, length)
        spans.append((start, end, max(0, start - overlap), min(length, end + overlap)))
    return spans


def plan_tiles(height: int, width: int, tile: tuple[int, int], overlap: int, align: int = 1):
    """Tiles of an image as ((y0, y1, x0, x1) core, (y0, y1, x0, x1) input) boxes."""
    tile_h, tile_w = tile
    if tile_h % align or tile_w % align or overlap % align:
        raise ValueError(f"tile {tile} and overlap {overlap} must be multiples of the model's alignment {align}")
    return [((cy0, cy1, cx0, cx1), (iy0, iy1, ix0, ix1))
            for cy0, cy1, iy0, iy1 in _spans(height, tile_h, overlap)
            for cx0, cx1, ix0, ix1 in _spans(width, tile_w, overlap)]


def run_tiled(infer: Callable[[np.ndarray, np.ndarray], np.ndarray], image: np.ndarray, sigma: float,
              tile: tuple[int, int], overlap: int, align: int = 1, max_batch: int = DEFAULT_MAX_BATCH) -> np.ndarray:
    """Denoise one float32 CxHxW image tile by tile; tiles of equal input shape are batched together.

    ``infer(batch [N,C,h,w], sigma [N]) -> [N,C,h,w]`` is a backend's inference call. Memory is bounded
    by ``max_batch`` padded tiles plus the image itself.
    """
    _, height, width = image.shape
    out = np.empty_like(image, dtype=np.float32)
    by_shape: dict[tuple[int, int], list] = {}
    for core, box in plan_tiles(height, width, tile, overlap, align):
        by_shape.setdefault((box[1] - box[0], box[3] - box[2]), []).append((core, box))
    for group in by_shape.values():
        for start in range(0, len(group), max_batch):
            chunk = group[start:start + max_batch]
            batch = np.stack([image[:, iy0:iy1, ix0:ix1] for _, (iy0, iy1, ix0, ix1) in chunk])
            result = infer(batch, np.full(len(chunk), sigma, dtype=np.float32))
            for (core, box), tile_out in zip(chunk, result):
                cy0, cy1, cx0, cx1 = core
                iy0, _, ix0, _ = box
                out[:, cy0:cy1, cx0:cx1] = tile_out[:, cy0 - iy0:cy1 - iy0, cx0 - ix0:cx1 - ix0]
    return out
