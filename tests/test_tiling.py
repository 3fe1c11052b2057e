"""Tiling must not change the result: tiled equals whole-image (FP32) within 1e-5, on the real bundled
model in a real ONNX Runtime session."""

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from denoise import Denoiser
from denoise.metrics import from_float, to_float
from denoise.runtime.levels import level_summary
from denoise.runtime.tiling import TileBatcher, plan_tiles, run_tiled

DENOISER = Denoiser(backend="cpu", precision="fp32")  # said, not auto: auto runs INT8 on AVX2 and VNNI CPUs


def whole(image, sigma):
    """The model on the whole HxWx3 float image in one call, as exported (no tiling, no runtime padding);
    ``sigma`` a number or an HxW map."""
    chw = np.ascontiguousarray(image.transpose(2, 0, 1))
    level = np.broadcast_to(np.asarray(sigma, np.float32), image.shape[:2])[None, None]
    return DENOISER.backend.infer(chw[None], level)[0].transpose(1, 2, 0)


def tiled(image, sigma, tile, overlap, max_batch=8):
    batcher = TileBatcher(lambda level: DENOISER.backend.infer, (tile, tile), overlap, DENOISER.align, max_batch=max_batch)
    return run_tiled(batcher, image, sigma)


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 150), w=st.integers(1, 150), tile=st.sampled_from([2, 8, 16, 30]),
       sigma=st.floats(0, 1), seed=st.integers(0, 2**16))
def test_tiled_equals_whole(h, w, tile, sigma, seed):
    image = np.random.default_rng(seed).random((h, w, 3), dtype=np.float32)
    assert np.abs(tiled(image, sigma, tile, DENOISER.overlap, max_batch=3) - whole(image, sigma)).max() <= 1e-5


@settings(max_examples=15, deadline=None)
@given(h=st.integers(1, 120), w=st.integers(1, 120), tile=st.sampled_from([2, 8, 16, 30]), seed=st.integers(0, 2**16))
def test_tiled_equals_whole_with_a_noise_map(h, w, tile, seed):
    """A map that varies over the image is cut into tiles like the pixels: still exact."""
    rng = np.random.default_rng(seed)
    image = rng.random((h, w, 3), dtype=np.float32)
    level = (0.02 + 0.3 * rng.random((h, w))).astype(np.float32)
    assert np.abs(tiled(image, level, tile, DENOISER.overlap, max_batch=3) - whole(image, level)).max() <= 1e-5


def test_too_little_overlap_is_detected():
    """The property above is not vacuous: with overlap far below the receptive radius, tiles differ."""
    image = np.random.default_rng(1).random((90, 90, 3), dtype=np.float32)
    assert np.abs(tiled(image, 0.3, 16, 2) - whole(image, 0.3)).max() > 1e-3


def test_denoiser_tiles_large_images_and_matches_whole():
    image = np.random.default_rng(2).random((200, 300, 3), dtype=np.float32)
    small_tiles = Denoiser(backend="cpu", tile=64, max_batch=4, precision="fp32")
    assert len(plan_tiles(200, 300, small_tiles.tile, small_tiles.overlap, small_tiles.align)) == 20
    out = small_tiles.denoise(image, 0.2)
    assert np.abs(out - whole(image, 0.2)).max() <= 1e-5


def test_plan_covers_every_pixel_once():
    for h, w in [(1, 1), (17, 300), (513, 64)]:
        seen = np.zeros((h, w), int)
        for (y0, y1, x0, x1), (iy0, iy1, ix0, ix1) in plan_tiles(h, w, (16, 32), 42, 2):
            assert iy0 <= y0 and iy1 >= y1 and ix0 <= x0 and ix1 >= x1 and iy0 % 2 == 0 and ix0 % 2 == 0
            seen[y0:y1, x0:x1] += 1
        assert (seen == 1).all()
    with pytest.raises(ValueError):
        plan_tiles(10, 10, (15, 16), 42, 2)


def test_tiles_of_large_images_all_have_one_shape():
    """Every tile input of an image larger than one padded tile is tile + 2*overlap on that axis (border
    tiles are shifted inward), whatever the size -- so tiles of different images batch together."""
    size = 32 + 2 * 42
    for h, w in [(117, 117), (118, 500), (301, 233), (1000, 999)]:
        shapes = {(iy1 - iy0, ix1 - ix0) for _, (iy0, iy1, ix0, ix1) in plan_tiles(h, w, (32, 32), 42, 2)}
        assert shapes == {(size, size)}, (h, w, shapes)
    assert {(b[1] - b[0], b[3] - b[2]) for _, b in plan_tiles(60, 500, (32, 32), 42, 2)} == {(60, size)}


class CountingInfer:
    """The real backend's infer, recording each batch's shape (an observer, not a stand-in)."""

    def __init__(self, fail_sigma=None):
        self.shapes, self.fail_sigma = [], fail_sigma

    def __call__(self, batch, sigma):
        self.shapes.append(batch.shape)
        assert sigma.shape == (len(batch), 1) + batch.shape[2:]  # a map per tile, always
        if self.fail_sigma is not None and np.any(sigma == np.float32(self.fail_sigma)):
            raise RuntimeError("backend failure")
        return DENOISER.backend.infer(batch, sigma)


def test_batcher_runs_tiles_of_many_images_together_and_matches_whole():
    rng = np.random.default_rng(3)
    images = [(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), s)
              for h, w, s in [(200, 150, 0.1), (150, 200, 0.3), (37, 41, 0.5), (37, 41, 0.2), (250, 251, 0.7)]]
    images.append((rng.integers(0, 65536, (130, 90, 3), dtype=np.uint16), 0.4))
    infer = CountingInfer()
    batcher = TileBatcher(lambda level: infer, (32, 32), DENOISER.overlap, DENOISER.align, max_batch=4)
    for key, (pixels, sigma) in enumerate(images):
        batcher.add(key, pixels, sigma)
    done = batcher.run(flush=True)
    assert [key for key, _, _ in done] == list(range(len(images))) and batcher.in_flight == 0
    for key, result, _ in done:
        pixels, sigma = images[key]
        seen = level_summary(sigma, 1.0)  # what the manifest records for a number
        assert seen["min"] == seen["max"] == np.float32(sigma) and abs(seen["mean"] - sigma) < 1e-6
        assert result.dtype == pixels.dtype and result.shape == pixels.shape
        want = from_float(whole(to_float(pixels), sigma), pixels.dtype).astype(int)
        assert np.abs(result.astype(int) - want).max() <= 1  # float results agree to 1e-5; rounding may differ by 1
    size = 32 + 2 * DENOISER.overlap
    tiles = sum(n for n, _, _, _ in infer.shapes)
    full = [s for s in infer.shapes if s == (4, 3, size, size)]
    assert len(full) >= (tiles - 4 * 4) // 4 - 2  # nearly every batch is full and of the one tile shape
    assert (2, 3, 38, 42) in infer.shapes  # the two 37x41 images ran together (edge-replicated to even sizes)
    assert batcher.queues == {}  # no empty queue is kept per shape once its tiles ran


def test_a_failing_batch_fails_only_its_images():
    rng = np.random.default_rng(4)
    infer = CountingInfer(fail_sigma=0.25)
    batcher = TileBatcher(lambda level: infer, (32, 32), DENOISER.overlap, DENOISER.align, max_batch=4)
    batcher.add("bad", rng.random((300, 300, 3), dtype=np.float32), 0.25)
    batcher.add("good", rng.random((300, 300, 3), dtype=np.float32), 0.3)
    batcher.add("small", rng.random((20, 20, 3), dtype=np.float32), 0.3)
    results = {key: result for key, result, _ in batcher.run(flush=True)}
    assert isinstance(results["bad"], RuntimeError)
    assert isinstance(results["good"], np.ndarray) and isinstance(results["small"], np.ndarray)


def test_memory_is_the_image_in_its_own_type_not_float_copies():
    """A uint8 image is denoised holding the image, its uint8 result and one batch of tiles: numpy's
    peak allocation stays far below one float32 copy of the image (4x its bytes)."""
    image = np.random.default_rng(5).integers(0, 256, (1024, 1536, 3), dtype=np.uint8)
    denoiser = Denoiser(backend="cpu", tile=128, max_batch=4, precision="fp32")
    tracemalloc.start()
    result = denoiser.denoise(image, 0.2)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    batch = 4 * 3 * (128 + 2 * denoiser.overlap) ** 2 * 4
    assert result.dtype == np.uint8 and result.shape == image.shape
    assert peak < image.nbytes + 6 * batch, (peak, image.nbytes, batch)


def test_tiles_cut_and_stored_on_threads_equal_one_thread():
    """Beside a GPU the batcher cuts and stores tiles on several threads: bit-for-bit the same result, for
    uint8, uint16 and float images with numbers and maps."""
    rng = np.random.default_rng(6)
    images = [(rng.integers(0, 256, (300, 260, 3), dtype=np.uint8), 0.1),
              (rng.integers(0, 65536, (131, 97, 3), dtype=np.uint16), np.linspace(0.05, 0.3, 131 * 97, dtype=np.float32).reshape(131, 97)),
              (rng.random((70, 190, 3), dtype=np.float32), 0.2)]
    results = []
    for threads in (1, 4):
        batcher = TileBatcher(lambda level: DENOISER.backend.infer, (64, 64), DENOISER.overlap, DENOISER.align, max_batch=3,
                              threads=threads)
        for key, (pixels, level) in enumerate(images):
            batcher.add(key, pixels, level, 1.1)
        results.append({key: result for key, result, _ in batcher.run(flush=True)})
    for key, (pixels, _) in enumerate(images):
        assert results[0][key].dtype == pixels.dtype and np.array_equal(results[0][key], results[1][key])
