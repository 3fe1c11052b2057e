"""Tiling must not change the result: tiled equals whole-image (FP32) within 1e-5, on the real bundled
model in a real ONNX Runtime session."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from denoise import Denoiser
from denoise.runtime.tiling import plan_tiles, run_tiled

DENOISER = Denoiser(backend="cpu")


def whole(image, sigma):
    return DENOISER.backend.infer(image[None], np.array([sigma], np.float32))[0]


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 150), w=st.integers(1, 150), tile=st.sampled_from([2, 8, 16, 30]),
       sigma=st.floats(0, 1), seed=st.integers(0, 2**16))
def test_tiled_equals_whole(h, w, tile, sigma, seed):
    image = np.random.default_rng(seed).random((3, h, w), dtype=np.float32)
    tiled = run_tiled(DENOISER.backend.infer, image, sigma, (tile, tile), DENOISER.overlap, DENOISER.align, max_batch=3)
    assert np.abs(tiled - whole(image, sigma)).max() <= 1e-5


def test_too_little_overlap_is_detected():
    """The property above is not vacuous: with overlap far below the receptive radius, tiles differ."""
    image = np.random.default_rng(1).random((3, 90, 90), dtype=np.float32)
    tiled = run_tiled(DENOISER.backend.infer, image, 0.3, (16, 16), 2, DENOISER.align)
    assert np.abs(tiled - whole(image, 0.3)).max() > 1e-3


def test_denoiser_tiles_large_images_and_matches_whole():
    image = np.random.default_rng(2).random((200, 300, 3), dtype=np.float32)
    small_tiles = Denoiser(backend="cpu", tile=64, max_batch=4)
    assert len(plan_tiles(200, 300, small_tiles.tile, small_tiles.overlap, small_tiles.align)) == 20
    out = small_tiles.denoise(image, 0.2)
    assert np.abs(out - whole(image.transpose(2, 0, 1), 0.2).transpose(1, 2, 0)).max() <= 1e-5


def test_plan_covers_every_pixel_once():
    for h, w in [(1, 1), (17, 300), (513, 64)]:
        seen = np.zeros((h, w), int)
        for (y0, y1, x0, x1), (iy0, iy1, ix0, ix1) in plan_tiles(h, w, (16, 32), 42, 2):
            assert iy0 <= y0 and iy1 >= y1 and ix0 <= x0 and ix1 >= x1 and iy0 % 2 == 0 and ix0 % 2 == 0
            seen[y0:y1, x0:x1] += 1
        assert (seen == 1).all()
    with pytest.raises(ValueError):
        plan_tiles(10, 10, (15, 16), 42, 2)
