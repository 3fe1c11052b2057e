"""Tile geometry and tiled inference, shared by the runtime and engine building (so engines are built
for the shapes the runtime actually feeds them).

An image is cut into ``tile`` cores; each is run with at least ``overlap`` pixels of real context on
every side (clipped at the image border) and only the core is kept. With ``overlap`` at least the
model's receptive-field radius, and tiles aligned to the model's pixel-shuffle factor, every kept
pixel sees exactly what it would see in a whole-image run, so the result does not depend on the
tiling (a test checks this to 1e-5).

Fixed shapes: every tile input of an image larger than one padded tile is exactly
``tile + 2 * overlap`` pixels on that axis -- tiles at the border are shifted inward (taking more real
context) rather than cut short -- so one shape covers the tiles of every large image, which is what
batches across images, TensorRT profiles and CUDA graphs want. Images no larger than one padded tile
run whole. Tile inputs are never zero-padded (that would replace the zero padding the network sees at
a real image border); the only padding is the model's own: an image side that is not a multiple of
the pixel-shuffle factor is edge-replicated by up to factor-1 pixels, exactly as the model does
inside for a whole image, so tiles and the whole image see the same pixels.

Noise levels: each image comes with a number or an HxW map. A map is cut into tiles exactly as the pixels
are (edge-replicated the same way), so tiling stays exact with a map. The noise estimator's map (``--sigma
auto``) is made beforehand by ``estimate_map``, tiled the same way with the estimator's own receptive radius
as overlap, so it too equals a whole-image run -- and the denoiser's tiles keep their own overlap: the
fixed-sigma path pays nothing for the estimator's field.

Images are held as integer pixels (uint8 or uint16, or float) and converted to float one tile at a
time, and results are written straight back into an array of the input's type: memory is the image
and its result in their own bit depth plus one batch of tiles, not float copies of a 100-MP image.
"""

from __future__ import annotations

import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from denoise.errors import Stopped
from denoise.metrics import from_float, to_float
from denoise.runtime.contract import Infer

DEFAULT_TILE = 512
DEFAULT_MAX_BATCH = 8


def overlap_for(receptive_radius: int, align: int = 1) -> int:
    """The smallest overlap >= the receptive radius that keeps tiles aligned to ``align``."""
    return -(-receptive_radius // align) * align


def tile_input_size(tile: int, overlap: int) -> int:
    """The input size of every tile of a large image: its core plus the overlap on both sides."""
    return tile + 2 * overlap


def tile_input_pixels(tile: tuple[int, int], overlap: int) -> int:
    """Pixels in the input of one full tile (the one shape every tile of a large image has)."""
    return tile_input_size(tile[0], overlap) * tile_input_size(tile[1], overlap)


def engine_profile(tile: tuple[int, int], overlap: int, max_batch: int, sigma_map: bool = True) -> tuple:
    """TensorRT optimisation profile ((input, min, opt, max), ...) covering every shape the runtime feeds:
    whole small images from 1x1 up to one padded tile, batched up to ``max_batch``; opt is the one shape
    every tile of a large image has. ``sigma_map``: the model's sigma is a [N,1,H,W] map (else [N])."""
    tile_h, tile_w = tile
    if min(tile_h, tile_w) < 1 or overlap < 0 or max_batch < 1:
        raise ValueError(f"bad tile settings: tile={tile}, overlap={overlap}, max_batch={max_batch}")
    h, w = tile_input_size(tile_h, overlap), tile_input_size(tile_w, overlap)
    if not sigma_map:
        return (("noisy", (1, 3, 1, 1), (max_batch, 3, h, w), (max_batch, 3, h, w)),
                ("sigma", (1,), (max_batch,), (max_batch,)))
    return (("noisy", (1, 3, 1, 1), (max_batch, 3, h, w), (max_batch, 3, h, w)),
            ("sigma", (1, 1, 1, 1), (max_batch, 1, h, w), (max_batch, 1, h, w)))


def _spans(length: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """Along one axis of ``length`` (a multiple of the alignment): (core start, core end, input start,
    input end) per tile. Inputs are all ``tile + 2 * overlap`` long, shifted inward at the borders."""
    size = tile_input_size(tile, overlap)
    if length <= size:
        return [(0, length, 0, length)]
    spans = []
    for start in range(0, length, tile):
        end = min(start + tile, length)
        first = min(max(0, start - overlap), length - size)
        spans.append((start, end, first, first + size))
    return spans


def plan_tiles(height: int, width: int, tile: tuple[int, int], overlap: int, align: int = 1):
    """Tiles of an image as ((y0, y1, x0, x1) core, (y0, y1, x0, x1) input) boxes. Cores lie inside the
    image; an input box may reach up to align-1 pixels past it (the model's edge replication)."""
    tile_h, tile_w = tile
    if tile_h % align or tile_w % align or overlap % align:
        raise ValueError(f"tile {tile} and overlap {overlap} must be multiples of the model's alignment {align}")
    padded_h, padded_w = -(-height // align) * align, -(-width // align) * align
    return [((cy0, min(cy1, height), cx0, min(cx1, width)), (iy0, iy1, ix0, ix1))
            for cy0, cy1, iy0, iy1 in _spans(padded_h, tile_h, overlap)
            for cx0, cx1, ix0, ix1 in _spans(padded_w, tile_w, overlap)
            if cy0 < height and cx0 < width]


def core_in_tile(core: tuple[int, int, int, int], box: tuple[int, int, int, int]) -> tuple[slice, slice]:
    """Where a tile's core lies in its input (and in the model's output for it): (rows, columns)."""
    return slice(core[0] - box[0], core[1] - box[0]), slice(core[2] - box[2], core[3] - box[2])


def tile_input(pixels: np.ndarray, box: tuple[int, int, int, int], out: np.ndarray | None = None) -> np.ndarray:
    """float32 CxHxW input of one tile from HxWxC pixels (uint8, uint16 or float; an HxW map gives 1xHxW),
    edge-replicated where the box reaches past the image (by less than the alignment). Written into ``out``
    (a CxHxW float32 array, e.g. one slot of a batch) when given: one pass from the pixels, no copies."""
    iy0, iy1, ix0, ix1 = box
    crop = pixels[iy0:iy1, ix0:ix1]
    if crop.ndim == 2:
        crop = crop[..., None]
    h, w = crop.shape[:2]
    if out is None:
        out = np.empty((crop.shape[2], iy1 - iy0, ix1 - ix0), np.float32)
    to_float(crop.transpose(2, 0, 1), out=out[:, :h, :w])
    if h < out.shape[1]:
        out[:, h:, :w] = out[:, h - 1:h, :w]
    if w < out.shape[2]:
        out[:, :, w:] = out[:, :, w - 1:w]
    return out


def store_core(result: np.ndarray, core: tuple[int, int, int, int], output: np.ndarray) -> None:
    """Write a tile's model output (float32 CxHxW, the core part) into the HxWxC ``result`` at ``core``, in
    the result's type (metrics.from_float: clipped to [0,1], scaled, rounded half to even; floats as given)."""
    cy0, cy1, cx0, cx1 = core
    target = result[cy0:cy1, cx0:cx1]
    for channel in range(output.shape[0]):  # channel by channel: faster than one transposed pass (contiguous reads)
        target[..., channel] = from_float(output[channel], result.dtype)


Level = float | np.ndarray  # a number, or an HxW float32 map
_POOLS: dict[int, ThreadPoolExecutor] = {}


def host_threads() -> int:
    """Threads for host-side work beside a GPU (cutting tiles; decoding and encoding in job.pipeline): half
    the cores, at least 2, at most 16."""
    return max(2, min(16, (os.cpu_count() or 2) // 2))


def host_pool(threads: int) -> ThreadPoolExecutor:
    """One shared pool per size for cutting and storing tiles (made on first use, kept for the process)."""
    if threads not in _POOLS:
        _POOLS[threads] = ThreadPoolExecutor(threads, thread_name_prefix="tiles")
    return _POOLS[threads]


@dataclass(eq=False)
class _InFlight:
    """One image in a TileBatcher: its pixels and noise level, the result being filled in and the tiles
    still to run."""

    key: object
    pixels: np.ndarray
    level: Level
    strength: float
    result: np.ndarray
    tiles_left: int
    infer: Infer  # the call its tiles run on (TileBatcher's ``infer_for``)
    started: float = field(default_factory=time.perf_counter)
    error: BaseException | None = None


def tiles_per_batch(shape: tuple, max_batch: int, max_batch_pixels: int | None) -> int:
    """Tiles of ``shape`` per batch: ``max_batch``, or fewer where ``max_batch_pixels`` says so (on the CPU,
    where batching large tiles gains nothing and multiplies ONNX Runtime's working memory)."""
    if max_batch_pixels is None:
        return max_batch
    return max(1, min(max_batch, max_batch_pixels // (shape[0] * shape[1])))


class TileBatcher:
    """Runs the tiles of many images in batches of one shape, across image boundaries.

    ``add`` an image (HxWx3 uint8, uint16 or float32 in [0,1]) with its noise level and strength; ``run``
    executes every full batch of ``max_batch`` equal-shape tiles (``flush=True``: the partial ones too) and
    returns the images now complete, in the order they were added, as ``(key, result, seconds)``. ``result``
    has the input's dtype, or is the exception that failed one of the image's batches -- a failing batch
    fails only the images with a tile in it.
    ``infer_for(level)`` gives the inference call, ``infer(batch [N,3,h,w], sigma [N,1,h,w]) -> [N,3,h,w]``, for
    an image whose largest level (times strength) is ``level``: every tile of an image runs on the same call, and
    only tiles of the same call share a batch (runtime.contract's ``for_level``; a single backend gives one call
    for every level: ``lambda level: backend.infer``). ``limits``: the
    model's noise range; a map times strength is clamped into it (a given number is refused beforehand, by
    Denoiser.check_scaled_sigma; an estimated map cannot be, and a model fed levels it never saw gives garbage).
    """

    def __init__(self, infer_for: Callable[[float], Infer], tile: tuple[int, int], overlap: int, align: int = 1,
                 max_batch: int = DEFAULT_MAX_BATCH, max_batch_pixels: int | None = None, threads: int = 1,
                 limits: tuple[float, float] = (0.0, np.inf)):
        self.infer_for, self.tile, self.overlap, self.align = infer_for, tile, overlap, align
        self.max_batch, self.limits = max_batch, limits
        self.threads = threads  # >1: tiles are cut and stored by that many threads (a GPU backend's host side)
        self.max_batch_pixels = max_batch_pixels  # None: no limit but max_batch (see batch_size)
        self.queues: dict[tuple[int, int], deque] = {}
        self.images: list[_InFlight] = []
        self.buffers: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}  # batch shape -> reused input arrays

    @property
    def in_flight(self) -> int:
        return len(self.images)

    @property
    def pixels_in_flight(self) -> int:
        return sum(im.pixels.shape[0] * im.pixels.shape[1] for im in self.images)

    def add(self, key, pixels: np.ndarray, level: Level, strength: float = 1.0,
            infer_for: Callable[[float], Infer] | None = None) -> None:
        """``infer_for``: this image's instead of the batcher's (a second model's calls: the RAW model's)."""
        height, width = pixels.shape[:2]
        if not isinstance(level, np.ndarray):
            level = float(level)
        plan = plan_tiles(height, width, self.tile, self.overlap, self.align)
        dtype = pixels.dtype if pixels.dtype in (np.uint8, np.uint16) else np.float32
        infer = (infer_for or self.infer_for)(float(np.max(level)) * strength)
        image = _InFlight(key, pixels, level, float(strength), np.empty(pixels.shape, dtype), len(plan), infer)
        self.images.append(image)
        for core, box in plan:  # queues by shape and by the call the image runs on
            self.queues.setdefault((box[1] - box[0], box[3] - box[2], infer), deque()).append((image, core, box))

    def batch_size(self, shape: tuple) -> int:
        return tiles_per_batch(shape, self.max_batch, self.max_batch_pixels)

    def run(self, flush: bool = False, stop: Callable[[], bool] | None = None) -> list[tuple[object, np.ndarray | BaseException, float]]:
        """``stop()`` is asked before every batch: when it says True, nothing more runs and nothing is returned
        (the images under way stay unfinished: a signal is answered within one batch, whatever the image size)."""
        for shape, queue in list(self.queues.items()):
            size = self.batch_size(shape)
            while len(queue) >= size or (flush and queue):
                if stop is not None and stop():
                    return []
                self._run_batch([queue.popleft() for _ in range(min(size, len(queue)))])
            if not queue:  # a folder of many sizes would otherwise keep (and walk) a queue per size ever seen
                del self.queues[shape]
        done = [im for im in self.images if im.tiles_left == 0]
        self.images = [im for im in self.images if im.tiles_left]
        return [(im.key, im.error or im.result, time.perf_counter() - im.started) for im in done]

    def _inputs(self, count: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """The (pixels [N,3,h,w], levels [N,1,h,w]) float32 arrays a batch is written into, reused from batch
        to batch (a fresh array per batch of large tiles costs more in page faults than filling it; backends copy their
        inputs). The few most recent shapes are kept."""
        shape = (count, height, width)
        if shape not in self.buffers:
            if len(self.buffers) >= 4:
                self.buffers.pop(next(iter(self.buffers)))
            self.buffers[shape] = (np.empty((count, 3, height, width), np.float32),
                                   np.empty((count, 1, height, width), np.float32))
        return self.buffers[shape]

    def _levels(self, live: list, levels: np.ndarray) -> np.ndarray:
        """Fill [N,1,h,w] noise levels of a batch's tiles: the image's map cut like its pixels, or its number;
        times each image's strength."""
        for i, (image, _, box) in enumerate(live):
            if isinstance(image.level, np.ndarray):
                tile_input(image.level, box, levels[i])
            else:
                levels[i] = image.level
            levels[i] *= image.strength
        return np.clip(levels, *self.limits, out=levels)

    def _each(self, work: list[Callable[[], object]]) -> None:
        """Run the calls, on ``threads`` threads when there are more than one (numpy releases the GIL in the
        conversions they do), and raise the first error."""
        if self.threads <= 1 or len(work) <= 1:
            for call in work:
                call()
            return
        for _ in host_pool(self.threads).map(lambda call: call(), work):
            pass

    def _run_batch(self, tiles: list) -> None:
        live = [t for t in tiles if t[0].error is None]  # tiles of an image that already failed are dropped
        try:
            if live:
                box = live[0][2]
                batch, levels = self._inputs(len(live), box[1] - box[0], box[3] - box[2])
                self._each([lambda t=t, slot=slot: tile_input(t[0].pixels, t[2], slot) for t, slot in zip(live, batch)])
                self._levels(live, levels)
                output = live[0][0].infer(batch, levels)
                self._each([lambda t=t, out=out: store_core(t[0].result, t[1], out[(slice(None),) + core_in_tile(t[1], t[2])])
                            for t, out in zip(live, output)])
        except Exception as exc:  # the images of this batch fail; the others go on
            for image, _, _ in live:
                image.error = image.error or exc
        for image, _, _ in tiles:
            image.tiles_left -= 1


def run_tiled(batcher: TileBatcher, image: np.ndarray, level: Level, strength: float = 1.0,
              infer_for: Callable[[float], Infer] | None = None) -> np.ndarray:
    """Denoise one HxWx3 image (uint8, uint16 or float32 in [0,1]) tile by tile on an empty ``batcher``;
    same dtype out. ``infer_for``: as TileBatcher.add's."""
    return run_tiled_many(batcher, [image], [level], strength, infer_for)[0]


def run_tiled_many(batcher: TileBatcher, images: list[np.ndarray], levels: list[Level],
                   strength: float = 1.0, infer_for: Callable[[float], Infer] | None = None) -> list[np.ndarray]:
    """``run_tiled`` of several images at once, on an empty ``batcher``: their tiles share batches (small images
    run in one call instead of one each); the results in the order given. The first failure is raised."""
    for index, (image, level) in enumerate(zip(images, levels)):
        batcher.add(index, image, level, strength, infer_for)
    done = sorted(batcher.run(flush=True), key=lambda finished: finished[0])
    for _, result, _ in done:
        if isinstance(result, BaseException):
            raise result
    return [result for _, result, _ in done]


def estimate_map(estimate: Callable[[np.ndarray], np.ndarray], pixels: np.ndarray, tile: tuple[int, int],
                 overlap: int, align: int = 1, max_batch: int = DEFAULT_MAX_BATCH,
                 max_batch_pixels: int | None = None, stop: Callable[[], bool] | None = None) -> np.ndarray:
    """The noise estimator's HxW float32 map of an HxWx3 image, tile by tile (``overlap`` at least the
    estimator's receptive radius: then it equals the whole-image map). ``estimate(batch [N,3,h,w]) ->
    [N,1,h,w]``; equal-shape tiles run in batches as the TileBatcher's (``tiles_per_batch``). ``stop()``,
    asked before every batch, raises Stopped when it says True."""
    height, width = pixels.shape[:2]
    level = np.empty((height, width), np.float32)
    by_shape: dict[tuple[int, int], list] = {}
    for core, box in plan_tiles(height, width, tile, overlap, align):
        by_shape.setdefault((box[1] - box[0], box[3] - box[2]), []).append((core, box))
    for shape, tiles in by_shape.items():
        size = tiles_per_batch(shape, max_batch, max_batch_pixels)
        for start in range(0, len(tiles), size):
            if stop is not None and stop():
                raise Stopped("stopped while estimating the noise level")
            chunk = tiles[start:start + size]
            _, box = chunk[0]
            batch = np.empty((len(chunk), 3, box[1] - box[0], box[3] - box[2]), np.float32)
            for (_, box), slot in zip(chunk, batch):
                tile_input(pixels, box, slot)
            out = estimate(batch)
            for (core, box), values in zip(chunk, out):
                cy0, cy1, cx0, cx1 = core
                level[cy0:cy1, cx0:cx1] = values[0][core_in_tile(core, box)]
    return level
