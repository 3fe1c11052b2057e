"""The pipeline every run (local, shard, Ray actor) runs its jobs through: readers decode ahead, the calling
thread runs inference, writers encode behind, in pools of threads sized to the machine's cores (Pillow's and
tifffile's codecs release the GIL), with bounded queues so memory stays bounded. A file that fails is
recorded and the run goes on; a backend fault (errors.BackendFault: CUDA, TensorRT, ONNX Runtime) fails the
files it hit, and after MAX_FAULTS_IN_ROW of them in a row the run stops instead of failing every file left."""

from __future__ import annotations

import logging
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

from denoise.errors import BackendFault, DenoiseError, Stopped
from denoise.image_files import read_image, write_result
from denoise.job.engine import Engine
from denoise.job.manifest import failed_record, level_fields
from denoise.job.options import JobOptions
from denoise.job.plan import Job
from denoise.runtime.tiling import host_threads, tile_input_pixels

log = logging.getLogger(__name__)

MAX_FAULTS_IN_ROW = 3  # backend faults in a row (without a success between them) that stop a run


def prefetch() -> int:
    """Images decoded ahead of inference, and encoded behind it, at most: enough to keep every thread busy."""
    return max(4, 2 * host_threads())


def _read(job: Job):
    started = time.perf_counter()
    return read_image(job.source), time.perf_counter() - started


def _write(job: Job, image, result, level: dict, timings: dict, jpeg_quality: int) -> dict:
    started = time.perf_counter()
    record = {"path": str(job.source), "output": str(job.output), "status": "ok", "error": None, "sigma": None}
    try:
        write_result(result, image, job.output, jpeg_quality)
    except (DenoiseError, OSError) as exc:  # e.g. disk full or permission denied for this one output
        record.update(status="failed", output=None, error=f"{job.output}: cannot write ({exc})")
        return record
    except Exception as exc:  # a bug must not kill the batch: it is recorded, and its traceback logged
        log.warning("unexpected error writing %s", job.output, exc_info=True)
        record.update(status="failed", output=None, error=f"{job.output}: internal error {type(exc).__name__}: {exc}")
        return record
    timings["write"] = time.perf_counter() - started
    pixels = sum(frame.shape[0] * frame.shape[1] for frame in (result if isinstance(result, list) else [result]))
    record.update(level, megapixels=round(pixels / 1e6, 6), timings={k: round(v, 4) for k, v in timings.items()})
    if isinstance(result, list) and image.mode != "CMYK":  # CMYK's two planes are not frames
        record["frames"] = len(result)
    if image.raw is not None:  # a camera RAW: its camera and ISO beside the level found (ISO may help the estimator)
        record.update(image.raw.manifest_fields())
    return record


def _decode(engine: Engine, job: Job, read: Callable[[], tuple], sigma, stop: Callable[[], bool] | None = None):
    """Decode (via ``read``) one file and settle its sigma: (image, a level per frame, timings, whether it runs on
    the RAW model), or (its failed record, the exception); Stopped goes through (a signal came while estimating)."""
    try:
        image, read_seconds = read()
        started = time.perf_counter()
        log.info("%s: its noise level", job.source)  # -v shows where a run is (the stop tests wait on these)
        found = _raw_level(engine, image, sigma)
        if found is not None:
            levels, on_raw_model = [found[0]], found[1]
        else:
            levels, on_raw_model = [engine.resolve_sigma(sigma, frame.pixels, stop) for frame in image.frames or [image]], False
    except Stopped:
        raise
    except Exception as exc:
        return failed_record(job, _describe(job, exc)), exc
    timings = {"read": read_seconds, "estimate": time.perf_counter() - started}  # estimate: the noise level's
    return image, levels, timings, on_raw_model


def _raw_level(engine: Engine, image, sigma):
    """With "auto", a Bayer RAW's level comes from its mosaic (raw_noise: the sensor's own noise, carried through
    the development), which reads it far closer than the estimator does on the development, and it runs on the
    RAW model where the engine has one: (level, on the RAW model), or None for every other image."""
    if image.raw is None or not (isinstance(sigma, str) and sigma == "auto"):
        return None
    return engine.raw_level(image.pixels, image.raw)


def _describe(job: Job, exc: BaseException) -> str:
    """A failure's manifest text. A bug must not kill the batch: its traceback goes to the log; so does a
    backend fault's (shown with -v)."""
    if isinstance(exc, DenoiseError):
        return str(exc)
    if isinstance(exc, BackendFault):
        log.info("backend fault on %s", job.source, exc_info=exc)
        return f"backend fault: {exc}"
    log.warning("unexpected error on %s", job.source, exc_info=exc)
    return f"{job.source}: internal error {type(exc).__name__}: {exc}"


class FaultCounter:
    """Backend faults in a row; one exception shared by the images of one failed batch counts once."""

    def __init__(self):
        self.in_row, self.last = 0, None

    def success(self) -> None:
        self.in_row, self.last = 0, None

    def failure(self, error: BaseException) -> None:
        """Count ``error`` if it is a backend fault not counted yet (a user error changes nothing)."""
        if isinstance(error, BackendFault) and error is not self.last:
            self.in_row, self.last = self.in_row + 1, error

    @property
    def stop_reason(self) -> str:
        if self.in_row < MAX_FAULTS_IN_ROW:
            return ""
        return (f"stopped after {self.in_row} backend faults in a row (the last: {self.last}); files not reached "
                "are not in the manifest, and re-running continues there")


class FrameCollector:
    """The denoised frames of each file (one for most files) until all are there, in frame order."""

    def __init__(self):
        self.frames: dict[int, list] = {}

    def start(self, job: Job, count: int) -> None:
        self.frames[id(job)] = [None] * count

    def expects(self, job: Job) -> bool:
        return id(job) in self.frames

    def drop(self, job: Job) -> None:
        self.frames.pop(id(job), None)

    def add(self, job: Job, index: int, result) -> list | None:
        """Keep one frame's result; all of the file's frames once the last one came, else None."""
        frames = self.frames[id(job)]
        frames[index] = result
        if any(frame is None for frame in frames):
            return None
        return self.frames.pop(id(job))


def run_jobs(engine: Engine, jobs: list[Job], options: JobOptions, finish: Callable[[dict], None],
             interrupted: Callable[[], str] | None = None) -> tuple[str, list[Job]]:
    """Denoise ``jobs``, calling ``finish`` with each one's manifest record (never raises for a bad input;
    the local path and every Ray actor run this). Readers decode ahead, the calling thread runs inference,
    writers encode behind (at most ``prefetch()`` images wait on either side).

    Inference goes through a TileBatcher: tiles of several images run together in full batches of one
    shape. Partial batches are run (flushed) as soon as waiting would idle the backend -- the next
    image is not decoded yet, or none is left -- or when the images held reach ``max_batch`` or
    ``max_batch`` tiles' worth of pixels, which bounds memory.

    Returns ("", []) when every job got its record, or, when backend faults stopped the run, (why, the jobs
    that got none); when ``interrupted()`` says a signal came, images not yet being written are abandoned
    (no record, nothing on disk) -- the one under way at the next batch of tiles, however large it is --, the
    writes under way finish, and ("", the jobs that got none) is returned.
    """
    todo = iter(jobs)
    batcher = engine.batcher()
    sigma, strength = options.sigma, options.strength
    held_pixels = batcher.max_batch * tile_input_pixels(batcher.tile, batcher.overlap)
    faults, ahead, frames = FaultCounter(), prefetch(), FrameCollector()
    recorded: set[int] = set()

    def halted() -> bool:
        return bool(faults.stop_reason or (interrupted and interrupted()))

    def record(entry: dict, job: Job, error: BaseException | None = None) -> None:
        if error is not None:
            faults.failure(error)
        recorded.add(id(job))
        finish(entry)

    with ThreadPoolExecutor(host_threads(), thread_name_prefix="read") as readers, \
            ThreadPoolExecutor(host_threads(), thread_name_prefix="write") as writers:
        reads: deque[tuple[Job, Future]] = deque()
        writes: deque[tuple[Job, Future]] = deque()

        def refill():
            while len(reads) < ahead and not halted():
                job = next(todo, None)
                if job is None:
                    return
                reads.append((job, readers.submit(_read, job)))

        refill()
        while (reads or batcher.in_flight) and not halted():
            if reads:
                job, pending = reads.popleft()
                refill()
                try:
                    outcome = _decode(engine, job, pending.result, sigma, halted)
                except Stopped:
                    break  # this image is abandoned: no record, nothing written; a re-run does it
                if isinstance(outcome, tuple) and isinstance(outcome[0], dict):
                    record(outcome[0], job, outcome[1])
                else:
                    image, levels, timings, on_raw_model = outcome
                    try:  # e.g. no memory for this image's result: it fails, the run goes on
                        fields = level_fields(levels, strength, options.estimated, engine.sigma_range)
                        fields["backend"], why = engine.route(levels, strength, on_raw_model)
                        if why:
                            fields["precision_why"] = why
                        infer_for = engine.raw_infer if on_raw_model else None
                        frames.start(job, len(levels))
                        for index, (frame, level) in enumerate(zip(image.frames or [image], levels)):
                            batcher.add((job, image, fields, timings, index), frame.pixels, level, strength, infer_for)
                        log.info("%s: denoising", job.source)
                    except Exception as exc:
                        frames.drop(job)
                        record(failed_record(job, _describe(job, exc)), job, exc)
            flush = (not reads or not reads[0][1].done() or batcher.in_flight >= batcher.max_batch
                     or batcher.pixels_in_flight >= held_pixels)
            for (job, image, level, timings, index), result, seconds in batcher.run(flush=flush, stop=halted):
                if not frames.expects(job):
                    continue  # another frame of this file failed already
                if isinstance(result, BaseException):
                    frames.drop(job)
                    record(failed_record(job, _describe(job, result)), job, result)
                    continue
                faults.success()
                done = frames.add(job, index, result)
                if done is None:
                    continue  # frames of this file still running
                timings["denoise"] = seconds
                output = done if image.frames else done[0]
                writes.append((job, writers.submit(_write, job, image, output, level, timings, options.jpeg_quality)))
            while writes and (writes[0][1].done() or len(writes) > ahead):
                job, done = writes.popleft()
                record(done.result(), job)
        for job, pending in reads:
            pending.cancel()
        while writes:
            job, done = writes.popleft()
            record(done.result(), job)
    return faults.stop_reason, [job for job in jobs if id(job) not in recorded]
