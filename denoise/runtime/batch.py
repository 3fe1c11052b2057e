"""The folder job behind ``denoise batch``: every image under IN denoised into OUT, nothing lost.

* Inputs are never written: OUT may not be IN, inside IN, or contain IN.
* Each output goes to a temporary name and is renamed into place, so an existing output is complete:
  a re-run skips it (``overwrite=True`` redoes it) and picks up where a killed run stopped.
* A file that fails is recorded and the run goes on.
* The manifest is JSON Lines, one object per input, appended and flushed as the run goes.
* One run at a time per OUT: a second run on the same OUT stops with a message (an flock on
  ``OUT/.denoise.lock``, released by the kernel even when a run is killed; the file is removed at the end).
* Symbolic links are not followed out of IN unless ``follow_symlinks``; an output path whose folder or
  file is a link pointing outside OUT is refused.
* Decoding, inference and encoding overlap: pools of reader and writer threads sized to the machine's cores
  around the inference loop (Pillow's and tifffile's codecs release the GIL), with bounded queues so memory
  stays bounded.
* A backend fault (runtime.errors.BackendFault: CUDA, TensorRT, ONNX Runtime) fails the files it hit; after
  MAX_FAULTS_IN_ROW of them in a row the run stops (exit code 1) instead of failing every remaining file.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from denoise.errors import BackendFault, DenoiseError, Stopped
from denoise.formats import IMAGE_SUFFIXES, list_inputs
from denoise.runtime.images import read_image, write_result
from denoise.runtime.levels import check_strength, level_summary
from denoise.runtime.rerun import EarlierOutputs
from denoise.runtime.tiling import host_threads, tile_input_pixels

log = logging.getLogger(__name__)

MANIFEST_NAME = "denoise-manifest.jsonl"
LOCK_NAME = ".denoise.lock"
MAX_FAULTS_IN_ROW = 3  # backend faults in a row (without a success between them) that stop a run


def prefetch() -> int:
    """Images decoded ahead of inference, and encoded behind it, at most: enough to keep every thread busy."""
    return max(4, 2 * host_threads())


@dataclass
class BatchSummary:
    ok: int = 0
    redone: int = 0  # of ok: outputs made again because the settings changed (runtime.rerun)
    skipped: int = 0
    failed: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (input path, error)
    manifest: str = ""
    seconds: float = 0.0
    megapixels: float = 0.0
    note: str = ""  # why there was nothing to do, when there was not
    stopped: str = ""  # why the run stopped before the end (backend faults), when it did
    interrupted: str = ""  # the signal that stopped it ("SIGTERM", "SIGINT"), when one did

    @property
    def exit_code(self) -> int:
        """0 when every input is done (or was already done), 3 when some failed, 1 when the run stopped on
        backend faults; 143 / 130 when SIGTERM / SIGINT stopped it (the shell's 128 + signal)."""
        if self.interrupted:
            return 128 + {"SIGTERM": 15, "SIGINT": 2}.get(self.interrupted, 15)
        return 1 if self.stopped else 3 if self.failed else 0

    def to_dict(self) -> dict:
        return {"ok": self.ok, "redone": self.redone, "skipped": self.skipped, "failed": self.failed,
                "failures": [{"path": p, "error": e} for p, e in self.failures],
                "manifest": self.manifest, "seconds": round(self.seconds, 3),
                "megapixels": round(self.megapixels, 3), "exit_code": self.exit_code, "note": self.note,
                "stopped": self.stopped, "interrupted": self.interrupted}


@dataclass
class Job:
    source: Path
    output: Path | None  # None: nothing to write (skipped before reading)
    reason: str | None = None  # why it is skipped, if it is
    redo: str = ""  # the output exists but was made with other settings: what changed (runtime.rerun)


def check_folders(input_dir: Path, output_dir: Path) -> tuple[Path, Path]:
    """Resolve both folders and refuse any layout where an output could land on an input."""
    if not input_dir.exists():
        raise DenoiseError(f"input folder {input_dir} does not exist")
    if not input_dir.is_dir():
        raise DenoiseError(f"input {input_dir} is not a folder; give a folder of images")
    src, dst = input_dir.resolve(), output_dir.resolve()
    if src == dst:
        raise DenoiseError(f"output folder {output_dir} is the input folder; choose a separate output folder")
    if src in dst.parents:
        raise DenoiseError(f"output folder {output_dir} is inside the input folder; choose a folder outside it")
    if dst in src.parents:
        raise DenoiseError(f"input folder {input_dir} is inside the output folder; choose a folder outside it")
    if dst.exists() and not dst.is_dir():
        raise DenoiseError(f"output {output_dir} exists and is not a folder")
    return src, dst


def output_path_for(source: Path, src: Path, dst: Path, fmt: str | None) -> Path:
    out = dst / source.relative_to(src)
    return out.with_suffix("." + fmt.lower().lstrip(".")) if fmt else out


def safe_output(path: Path, dst: Path) -> bool:
    """False when writing ``path`` would go through a link (the file or a folder) leading outside OUT."""
    if path.is_symlink():
        return False
    parent = path.parent.resolve()
    return parent == dst or dst in parent.parents


def plan_file(path: Path, out: Path, dst: Path, overwrite: bool, earlier: EarlierOutputs | None = None) -> Job:
    """One input's job: skipped (not an image, an output through a link out of ``dst``, an output already
    there and made with this run's settings, or with settings unknown), or to do (``redo`` says why an
    existing output is made again)."""
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        return Job(path, None, f"not an image file type ({path.suffix or 'no extension'})")
    if not safe_output(out, dst):
        return Job(path, None, f"output {out} would be written through a link leading outside the output folder")
    if out.exists() and not overwrite:
        changed = earlier.changed(out) if earlier else ""
        if changed:
            return Job(path, out, redo=changed)
        return Job(path, out, "output already exists (use --overwrite to redo)")
    return Job(path, out)


def plan_jobs(src: Path, dst: Path, pattern: str, follow_symlinks: bool, overwrite: bool, fmt: str | None,
              shard=None, earlier: EarlierOutputs | None = None) -> list[Job]:
    return [plan_file(path, output_path_for(path, src, dst, fmt), dst, overwrite, earlier)
            for path in list_inputs(src, pattern, follow_symlinks)
            if shard is None or shard.owns(path.relative_to(src).as_posix())]


@dataclass
class Inputs:
    """What a run was given: one folder (mirrored into OUT, as always), or files and folders together --
    each file goes to OUT/its name (or, for one file and an OUT with an image suffix, to OUT itself), each
    folder to OUT/its name/... . ``dst`` is the folder written into and locked."""

    paths: list[Path]
    dst: Path
    target: Path | None = None  # the output file, for one input file written to a named file

    @property
    def single_folder(self) -> Path | None:
        return self.paths[0] if len(self.paths) == 1 and self.paths[0].is_dir() else None


def check_inputs(inputs, output: Path) -> Inputs:
    """Resolve the inputs and the output and refuse anything that could write over an input."""
    paths = [Path(p) for p in ([inputs] if isinstance(inputs, (str, Path)) else inputs)]
    if not paths:
        raise DenoiseError("no input given: name a folder of images, or image files")
    if len(paths) == 1 and not paths[0].is_file():
        src, dst = check_folders(paths[0], Path(output))
        return Inputs([src], dst)
    output = Path(output)
    resolved = []
    for path in paths:
        if not path.exists():
            raise DenoiseError(f"input {path} does not exist")
        resolved.append(path.resolve())
    target = None
    if len(paths) == 1 and output.suffix.lower() in IMAGE_SUFFIXES and not output.is_dir():
        target, dst = output.resolve(), output.resolve().parent
    else:
        dst = output.resolve()
        if dst.exists() and not dst.is_dir():
            raise DenoiseError(f"output {output} exists and is not a folder; with several inputs, name a folder")
    for path in resolved:
        if path.is_dir():
            check_folders(path, dst / path.name if target is None else dst)
            if path == dst or dst in path.parents:
                raise DenoiseError(f"input folder {path} is inside the output folder; choose a folder outside it")
        elif (target or dst / path.name) == path:
            raise DenoiseError(f"the output for {path} would be the input itself; choose another output")
    return Inputs(resolved, dst, target)


def plan_inputs(given: Inputs, pattern: str, follow_symlinks: bool, overwrite: bool, fmt: str | None,
                shard=None, earlier: EarlierOutputs | None = None) -> list[Job]:
    """The jobs for what the run was given (see Inputs); an output name two inputs would share is done
    once, for the first of them, and the other is skipped with a reason."""
    if given.single_folder:
        return plan_jobs(given.single_folder, given.dst, pattern, follow_symlinks, overwrite, fmt, shard, earlier)
    jobs, taken = [], set()
    for path in given.paths:
        if path.is_dir():
            planned = plan_jobs(path, given.dst / path.name, pattern, follow_symlinks, overwrite, fmt, shard, earlier)
            for job in planned:  # outputs lie under OUT/<folder name>; the link check is against OUT
                if job.output is not None and not job.reason and not safe_output(job.output, given.dst):
                    job.output, job.reason = None, "output would be written through a link leading outside the output folder"
        elif shard is not None and not shard.owns(path.name):
            continue
        else:
            planned = [plan_file(path, given.target or output_path_for(path, path.parent, given.dst, fmt), given.dst,
                                 overwrite, earlier)]
        for job in planned:
            if job.output is not None and job.output in taken:
                job.output, job.reason = None, f"another input has the same output name {job.output}"
            if job.output is not None:
                taken.add(job.output)
            jobs.append(job)
    return jobs


def nothing_found_note(given, pattern: str, follow_symlinks: bool, shard=None) -> str:
    """What to tell a user whose run found no inputs (an empty folder, a --glob that matches nothing, a
    shard that owns none): an exit code 0 alone would hide the mistake. ``given``: a folder or Inputs."""
    if isinstance(given, Inputs) and not given.single_folder:
        return f"nothing to do: none of the {len(given.paths)} inputs given is for this run" + (
            f" (shard {shard.suffix} owns none of them)" if shard is not None else "")
    src = given.single_folder if isinstance(given, Inputs) else given
    found = len(list_inputs(src, pattern, follow_symlinks))
    if found and shard is not None:
        return f"nothing to do: shard {shard.suffix} owns none of the {found} files under {src}"
    where = f"under {src}" + (f" match --glob {pattern!r}" if pattern != "*" else "")
    links = "" if follow_symlinks else "; links leading outside it need --follow-symlinks"
    return f"nothing to do: no files {where} (hidden files are left out{links})"


@contextmanager
def output_lock(dst: Path, name: str = LOCK_NAME):
    """Hold an exclusive flock on OUT/.denoise.lock (one per shard), or stop at once if another run holds it.

    The file is removed when the run ends (so it does not travel with the folder), while the lock is still
    held. A run that opened the file just before that removal may then get the lock on a file no other run
    can find; so after taking it, check that the path still names the file locked, else start again. A file
    left by a killed run (the kernel released its lock) is simply taken over."""
    dst.mkdir(parents=True, exist_ok=True)
    path = dst / name
    while True:
        try:
            handle = open(path, "a+")
        except PermissionError:
            raise DenoiseError(f"cannot write into {dst} (permission denied): choose an output folder you can write to") from None
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "pid unknown"
            handle.close()
            raise DenoiseError(f"another denoise batch is writing to {dst} ({holder}); "
                               f"wait for it, or choose another output folder") from None
        if _names_same_file(path, handle):
            break
        handle.close()  # the file was removed (or replaced) between open and flock: take the new one
    try:
        handle.truncate(0)
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        yield
    finally:
        path.unlink(missing_ok=True)
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        handle.close()


def _names_same_file(path: Path, handle) -> bool:
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(handle.fileno())
    return (on_disk.st_dev, on_disk.st_ino) == (held.st_dev, held.st_ino)


def remove_partials(jobs: list[Job]) -> int:
    """Delete the temporary files a killed run left for these outputs (called holding their lock, so no
    live writer owns them; other shards' outputs are never touched)."""
    count = 0
    for job in jobs:
        if job.output is None or not job.output.parent.is_dir():
            continue
        for partial in job.output.parent.glob(f".{glob_escape(job.output.name)}.*.part"):
            if partial.is_file() and not partial.is_symlink():
                partial.unlink()
                count += 1
    return count


def glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def run_batch(denoiser, inputs, output_dir: Path, sigma="auto", overwrite: bool = False,
              manifest_path: Path | None = None, jpeg_quality: int = 95, pattern: str = "*",
              follow_symlinks: bool = False, fmt: str | None = None, dry_run: bool = False,
              on_file: Callable[[dict], None] | None = None,
              on_plan: Callable[[int], None] | None = None, shard=None, strength: float = 1.0,
              interrupted: Callable[[], str] | None = None) -> BatchSummary:
    """Denoise every image under the folder ``inputs`` into the mirrored tree under ``output_dir`` -- or the
    image files and folders ``inputs`` lists (see Inputs). ``sigma``: a
    number, or "auto" (estimated per image); ``strength`` scales the level either way. ``interrupted()``
    returns the name of a signal that asked the run to stop (else ""): then no new file is started, the
    writes under way finish, and the summary says so (a re-run continues)."""
    given = check_inputs(inputs, Path(output_dir))
    dst = given.dst
    if fmt and "." + fmt.lower().lstrip(".") not in IMAGE_SUFFIXES:
        raise DenoiseError(f"unknown output format {fmt!r}; choose one of {', '.join(sorted(IMAGE_SUFFIXES))}")
    strength = check_strength(strength)
    if sigma != "auto":
        denoiser.check_scaled_sigma(denoiser.check_sigma(float(sigma)), strength)
    summary = BatchSummary()
    settings = denoiser.output_settings(sigma, strength)
    one_file = given.target is not None
    default_manifest = f"denoise-manifest.{shard.suffix}.jsonl" if shard else MANIFEST_NAME
    manifest_path = Path(manifest_path) if manifest_path else None if one_file else dst / default_manifest
    plan = lambda: plan_inputs(given, pattern, follow_symlinks, overwrite, fmt, shard,  # noqa: E731
                               None if overwrite else EarlierOutputs.read(manifest_path, settings))
    if dry_run:
        jobs = plan()
        if not jobs:
            summary.note = nothing_found_note(given, pattern, follow_symlinks, shard)
        for job in jobs:
            record = {"path": str(job.source), "output": str(job.output) if job.output else None,
                      "status": "skipped" if job.reason else "would redo" if job.redo else "would denoise",
                      "error": job.reason or (f"settings changed: {job.redo}" if job.redo else None)}
            summary.skipped += 1 if job.reason else 0
            if on_file:
                on_file(record)
        return summary
    # One file to a named file (`denoise batch IMG.jpg clean.jpg`) is a cp-like copy: nothing is left beside the
    # output (no lock, no manifest) unless --manifest asks for one. A folder run keeps both: re-runs and a
    # second run on the same folder depend on them.
    lock_name = None if one_file else f".denoise.{shard.suffix}.lock" if shard else LOCK_NAME
    note = lambda: nothing_found_note(given, pattern, follow_symlinks, shard)  # noqa: E731
    with planned_run(dst, lock_name, manifest_path, plan, note, summary, denoiser.backend_name, on_file,
                     settings) as (todo, finish):
        if on_plan:
            on_plan(len(todo) + summary.skipped)
        start = time.perf_counter()
        summary.stopped, _ = run_jobs(denoiser, todo, sigma, jpeg_quality, finish, strength, interrupted)
        summary.interrupted = interrupted() if interrupted else ""
        summary.seconds = time.perf_counter() - start
    return summary


@contextmanager
def planned_run(dst: Path, lock_name: str | None, manifest_path: Path | None, plan: Callable[[], list[Job]],
                note: Callable[[], str], summary: BatchSummary, backend: str, on_file: Callable[[dict], None] | None,
                settings: dict):
    """The sequence every run (local or Ray) goes through: take OUT's lock, plan the jobs, remove what a killed
    run left half-written, open the manifest and record the skipped jobs; yields (the jobs to do, the function
    that records a finished one, with ``settings`` and, for a file redone, what changed). The lock is held until
    the block ends. No ``lock_name``: no lock; no ``manifest_path``: the records go only to ``on_file`` and the
    summary."""
    with output_lock(dst, lock_name) if lock_name else nullcontext():
        jobs = plan()
        remove_partials(jobs)
        if not jobs:
            summary.note = note()
        summary.manifest = str(manifest_path) if manifest_path else ""
        with open(manifest_path or os.devnull, "a", encoding="utf-8") as manifest:
            redone = {str(job.output): job.redo for job in jobs if job.redo and not job.reason}
            finish = manifest_recorder(manifest, summary, backend, on_file, settings, redone)
            for job in jobs:
                if job.reason:
                    finish(skipped_record(job))
            yield [job for job in jobs if not job.reason], finish


def manifest_recorder(manifest, summary: BatchSummary, backend: str, on_file: Callable[[dict], None] | None,
                      settings: dict, redone: dict[str, str]) -> Callable[[dict], None]:
    """The one place a finished record goes: appended and flushed to the manifest, counted in the summary,
    then passed to ``on_file``. Records that already name their backend (Ray's) keep it. An ``ok`` record
    gets the run's settings, and ``redone`` (what changed) when it replaced an output made with others."""

    def finish(record: dict) -> None:
        record.setdefault("backend", backend)
        if record["status"] == "ok":
            record["settings"] = settings
            if record["output"] in redone:
                record["redone"] = f"settings changed: {redone[record['output']]}"
                summary.redone += 1
        manifest.write(json.dumps(record) + "\n")
        manifest.flush()
        status = record["status"]
        setattr(summary, status, getattr(summary, status) + 1)
        if status == "failed":
            summary.failures.append((record["path"], record["error"]))
        summary.megapixels += record.get("megapixels", 0.0)
        if on_file:
            on_file(record)

    return finish


def skipped_record(job: Job) -> dict:
    return {"path": str(job.source), "output": str(job.output) if job.output else None, "status": "skipped",
            "error": job.reason, "sigma": None}


def failed_record(job: Job, error: str) -> dict:
    return {"path": str(job.source), "output": None, "status": "failed", "error": error, "sigma": None}


def _read(job: Job):
    started = time.perf_counter()
    return read_image(job.source), time.perf_counter() - started


def level_fields(levels: list, strength: float, estimated: bool, limits: tuple[float, float]) -> dict:
    """The manifest's account of the noise level the model was given (over every frame of the file):
    ``sigma`` its mean, ``sigma_min`` / ``sigma_max`` its range (equal for a number), ``strength``, whether
    it was estimated, and ``sigma_clamped`` where the strength took part of a map above the model's range."""
    seen = [level_summary(level, strength, limits) for level in levels]
    fields = {"sigma": round(float(np.mean([s["mean"] for s in seen])), 6),
              "sigma_min": round(min(s["min"] for s in seen), 6), "sigma_max": round(max(s["max"] for s in seen), 6),
              "strength": strength, "sigma_estimated": estimated}
    if any(s["clamped"] for s in seen):
        fields["sigma_clamped"] = True
    return fields


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
    return record


def _decode(denoiser, job: Job, read: Callable[[], tuple], sigma, stop: Callable[[], bool] | None = None):
    """Decode (via ``read``) one file and settle its sigma: (image, a level per frame, timings), or (its
    failed record, the exception); Stopped goes through (a signal came while estimating)."""
    try:
        image, read_seconds = read()
        started = time.perf_counter()
        levels = [denoiser.resolve_sigma(sigma, frame.pixels, stop) for frame in image.frames or [image]]
    except Stopped:
        raise
    except Exception as exc:
        return failed_record(job, _describe(job, exc)), exc
    return image, levels, {"read": read_seconds, "estimate": time.perf_counter() - started}  # estimate: the noise level's


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


def run_jobs(denoiser, jobs: list[Job], sigma, jpeg_quality: int, finish: Callable[[dict], None],
             strength: float = 1.0, interrupted: Callable[[], str] | None = None) -> tuple[str, list[Job]]:
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
    batcher = denoiser.batcher()
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
                    outcome = _decode(denoiser, job, pending.result, sigma, halted)
                except Stopped:
                    break  # this image is abandoned: no record, nothing written; a re-run does it
                if isinstance(outcome, tuple) and isinstance(outcome[0], dict):
                    record(outcome[0], job, outcome[1])
                else:
                    image, levels, timings = outcome
                    try:  # e.g. no memory for this image's result: it fails, the run goes on
                        fields = level_fields(levels, strength, sigma == "auto", denoiser.sigma_range)
                        fields["backend"] = denoiser.backend_for(levels, strength)
                        why = denoiser.precision_why(fields["backend"])
                        if why:
                            fields["precision_why"] = why
                        frames.start(job, len(levels))
                        for index, (frame, level) in enumerate(zip(image.frames or [image], levels)):
                            batcher.add((job, image, fields, timings, index), frame.pixels, level, strength)
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
                writes.append((job, writers.submit(_write, job, image, output, level, timings, jpeg_quality)))
            while writes and (writes[0][1].done() or len(writes) > ahead):
                job, done = writes.popleft()
                record(done.result(), job)
        for job, pending in reads:
            pending.cancel()
        while writes:
            job, done = writes.popleft()
            record(done.result(), job)
    return faults.stop_reason, [job for job in jobs if id(job) not in recorded]
