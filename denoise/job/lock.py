"""One run at a time per output folder: an flock on ``OUT/.denoise.lock`` (one per shard), released by the kernel
even when a run is killed; and the temporary files a killed run left, removed by the next one."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path

from denoise.errors import DenoiseError
from denoise.job.plan import Job

LOCK_NAME = ".denoise.lock"


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
