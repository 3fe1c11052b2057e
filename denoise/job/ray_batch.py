"""``denoise batch --ray``: the folder job as a Ray Data pipeline, for clusters of GPU (or CPU) nodes.

Stages: the driver lists the files and plans the jobs exactly as the local path does (skipping what is
already done, so a restarted run resumes), Ray Data spreads them over an actor pool of Denoisers (one
per GPU with ``num_gpus=1``, or CPU slots), each actor reads its files, denoises them and writes each
output atomically, and the driver appends every returned record to the manifest as results stream in.
Workers read inputs and write outputs through the filesystem, so on several nodes IN and OUT must be
on storage every node mounts (NFS, Lustre, a FUSE bucket).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np

from denoise.errors import DenoiseError, missing_extra
from denoise.job.batch import planned_run
from denoise.job.lock import LOCK_NAME
from denoise.job.manifest import MANIFEST_NAME, BatchSummary, failed_record
from denoise.job.options import EngineOptions, JobOptions
from denoise.job.pipeline import run_jobs
from denoise.job.plan import Job, check_folders, nothing_found_note, plan_jobs
from denoise.job.rerun import EarlierOutputs, output_settings

FILES_PER_CALL = 8  # per actor call: enough to fill the pipeline and a batch, small enough to spread the work


class DenoiseActor:
    """One Denoiser per Ray actor (one model load per worker, reused for every call). Each call gets
    several files and runs them through the local path's pipeline: decoding and encoding overlap
    inference, and tiles of several images share a batch."""

    def __init__(self, engine: EngineOptions, options: JobOptions):
        from denoise.runtime.denoiser import Denoiser

        self.denoiser = Denoiser(**asdict(engine))
        self.options = options

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        records = []
        jobs = [Job(Path(source), Path(output)) for source, output in zip(batch["source"], batch["output"])]
        stopped, left = run_jobs(self.denoiser, jobs, self.options, records.append)
        records += [failed_record(job, stopped) for job in left]  # this actor's backend keeps failing: a re-run retries them
        import ray

        node = ray.get_runtime_context().get_node_id()  # which machine did it: the manifest says
        for record in records:
            record["backend"] = f"ray/{record.get('backend', self.denoiser.backend_name)}"
            record["node"] = node
        return {"record": [json.dumps(record) for record in records]}


def files_per_call(todo: int, workers: int) -> int:
    """Files each actor call gets: up to FILES_PER_CALL, fewer when that would leave workers idle."""
    return max(1, min(FILES_PER_CALL, -(-todo // workers)))


def run_ray_batch(input_dir: Path, output_dir: Path, options: JobOptions, engine: EngineOptions,
                  address: str | None = None, workers: int = 2, gpus_per_worker: float = 0.0,
                  on_file: Callable[[dict], None] | None = None) -> BatchSummary:
    """Run the folder job on Ray (``address``: a cluster, e.g. "auto" or "ray://head:10001"; None: a local Ray
    with ``workers`` CPUs). Each actor makes its Denoiser from ``engine``, as the local path does."""
    try:
        import ray
    except ImportError:
        raise missing_extra("ray", "ray") from None
    src, dst = check_folders(Path(input_dir), Path(output_dir))
    engine.check_files()
    summary = BatchSummary()
    settings = output_settings(engine, options)
    plan = lambda: plan_jobs(src, dst, options.pattern, options.follow_symlinks, options.overwrite,  # noqa: E731
                             options.fmt, earlier=None if options.overwrite else EarlierOutputs.read(dst / MANIFEST_NAME, settings))
    note = lambda: nothing_found_note(src, options.pattern, options.follow_symlinks)  # noqa: E731
    with planned_run(dst, LOCK_NAME, dst / MANIFEST_NAME, plan, note, summary, "ray", on_file,
                     settings) as (todo, finish):
        started = time.perf_counter()
        logging.getLogger("ray").setLevel(logging.WARNING)
        ray.data.DataContext.get_current().enable_progress_bars = False
        if address:
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False, logging_level=logging.WARNING)
        else:
            ray.init(num_cpus=workers, num_gpus=0 if not gpus_per_worker else None, ignore_reinit_error=True,
                     include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
        try:
            if todo:
                items = [{"source": str(j.source), "output": str(j.output)} for j in todo]
                dataset = ray.data.from_items(items, override_num_blocks=max(1, min(len(items), 4 * workers)))
                results = dataset.map_batches(
                    DenoiseActor, batch_size=files_per_call(len(items), workers), concurrency=workers,
                    num_cpus=0 if gpus_per_worker else 1, num_gpus=gpus_per_worker or None,
                    fn_constructor_kwargs={"engine": engine, "options": options})
                for row in results.iter_rows():
                    finish(json.loads(row["record"]))
        finally:
            ray.shutdown()
        summary.seconds = time.perf_counter() - started
    if summary.ok + summary.failed != len(todo):
        raise DenoiseError(f"Ray returned {summary.ok + summary.failed} records for {len(todo)} files to denoise")
    return summary
