"""Tile geometry shared by the runtime and engine building, so engines are built for the shapes the
runtime actually feeds them.

An image is cut into ``tile`` x ``tile`` cores; each is run with ``overlap`` pixels of real context on
every side (clipped at the image border) and only the core is kept. With ``overlap`` at least the
model's receptive-field radius, and tiles aligned to the model's pixel-shuffle factor, the result does
not depend on the tiling. Images no larger than one padded tile run whole.
"""

from __future__ import annotations

DEFAULT_TILE = 256
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
