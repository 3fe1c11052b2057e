"""The folder job behind ``denoise batch``: every image under IN denoised into OUT, nothing lost. The parts:

* plan: what was given, each input's output, what is skipped and why (inputs are never written);
* lock: one run at a time per OUT, and what a killed run left half-written removed;
* pipeline: decoding, inference and encoding overlapping, a failing file recorded and the run going on;
* manifest: one JSON object per input, appended and flushed as the run goes, and the summary;
* rerun: what shaped each output, so a re-run redoes only what other settings would change;
* shards and ray_batch: the same job split over array jobs, or over a Ray cluster.

Each output goes to a temporary name and is renamed into place, so an existing output is complete: a re-run
skips it (``overwrite`` redoes it) and picks up where a killed run stopped.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Callable

from denoise.job.engine import Engine
from denoise.job.lock import LOCK_NAME, output_lock, remove_partials
from denoise.job.manifest import MANIFEST_NAME, BatchSummary, manifest_recorder, skipped_record
from denoise.job.pipeline import run_jobs
from denoise.job.options import EngineOptions, JobOptions
from denoise.job.plan import Inputs, Job, check_inputs, nothing_found_note, plan_inputs
from denoise.job.rerun import EarlierOutputs, output_settings
from denoise.runtime.denoiser import Denoiser


def denoise_folder(denoiser: Denoiser, inputs, output_dir, sigma="auto", *, options: JobOptions | None = None,
                   on_file: Callable[[dict], None] | None = None, on_plan: Callable[[int], None] | None = None,
                   interrupted: Callable[[], str] | None = None, **fields) -> BatchSummary:
    """Denoise every image under the folder ``inputs`` (or the files and folders it lists, or an ``Inputs``
    already checked) into ``output_dir`` with ``denoiser``, as ``options`` say (or JobOptions' ``fields`` and
    ``sigma``). The sigma asked for is checked against the model's range here, once, before the run::

        with Denoiser(backend="cpu") as denoiser:
            summary = denoise_folder(denoiser, "noisy", "clean", sigma=0.1)
    """
    job = options or JobOptions(sigma=sigma, **fields)
    given = inputs if isinstance(inputs, Inputs) else check_inputs(inputs, Path(output_dir))
    if not job.estimated:
        denoiser.check_scaled_sigma(denoiser.check_sigma(float(job.sigma)), job.strength)
    engine = EngineOptions(model=str(denoiser.model_path), precision=denoiser.precision, ensemble=denoiser.ensemble,
                           estimator=str(denoiser.estimator_path) if denoiser.estimator_path else None)
    return run_batch(denoiser, given, job, output_settings(engine, job), on_file, on_plan, interrupted)


def run_batch(engine: Engine, given: Inputs, options: JobOptions, settings: dict,
              on_file: Callable[[dict], None] | None = None, on_plan: Callable[[int], None] | None = None,
              interrupted: Callable[[], str] | None = None) -> BatchSummary:
    """Denoise what ``given`` holds (plan.check_inputs: a folder mirrored into OUT, or files and folders) with
    ``engine``, as ``options`` say; ``settings`` (rerun.output_settings) go into every ``ok`` record and decide
    which existing outputs a re-run redoes. ``interrupted()`` returns the name of a signal that asked the run to
    stop (else ""): then no new file is started, the writes under way finish, and the summary says so (a re-run
    continues)."""
    summary = BatchSummary()
    shard = options.shard
    one_file = given.target is not None
    default_manifest = f"denoise-manifest.{shard.suffix}.jsonl" if shard else MANIFEST_NAME
    manifest_path = (Path(options.manifest_path) if options.manifest_path else None if one_file
                     else given.dst / default_manifest)
    plan = lambda: plan_inputs(given, options.pattern, options.follow_symlinks, options.overwrite,  # noqa: E731
                               options.fmt, shard, None if options.overwrite else EarlierOutputs.read(manifest_path, settings))
    note = lambda: nothing_found_note(given, options.pattern, options.follow_symlinks, shard)  # noqa: E731
    if options.dry_run:
        return dry_run(plan(), note, summary, on_file)
    # One file to a named file (`denoise batch IMG.jpg clean.jpg`) is a cp-like copy: nothing is left beside the
    # output (no lock, no manifest) unless --manifest asks for one. A folder run keeps both: re-runs and a
    # second run on the same folder depend on them.
    lock_name = None if one_file else f".denoise.{shard.suffix}.lock" if shard else LOCK_NAME
    with planned_run(given.dst, lock_name, manifest_path, plan, note, summary, engine.backend_name, on_file,
                     settings) as (todo, finish):
        if on_plan:
            on_plan(len(todo) + summary.skipped)
        start = time.perf_counter()
        summary.stopped, _ = run_jobs(engine, todo, options, finish, interrupted)
        summary.interrupted = interrupted() if interrupted else ""
        summary.seconds = time.perf_counter() - start
    return summary


def dry_run(jobs: list[Job], note: Callable[[], str], summary: BatchSummary,
            on_file: Callable[[dict], None] | None) -> BatchSummary:
    """What a run would do, one record per input, touching nothing."""
    if not jobs:
        summary.note = note()
    for job in jobs:
        record = {"path": str(job.source), "output": str(job.output) if job.output else None,
                  "status": "skipped" if job.reason else "would redo" if job.redo else "would denoise",
                  "error": job.reason or (f"settings changed: {job.redo}" if job.redo else None)}
        summary.skipped += 1 if job.reason else 0
        if on_file:
            on_file(record)
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
