"""The per-user TensorRT engine cache: keys, atomic writes and a lock, so that two processes never build
or read half an engine. No TensorRT import here: this module is tested on machines without a GPU.

An engine is executable code for one GPU model and one TensorRT version, so it is stored under a key
made of everything that makes it valid: the ONNX file's sha256, the TensorRT version, the GPU name and
compute capability, the precision, the optimisation profile and the build options. Only engines from
this cache, or a path the user names explicitly, are ever loaded.

Layout (``DENOISE_CACHE_DIR``, default ``~/.cache/denoise``)::

    engines/<key>.engine        the serialized engine
    engines/<key>.json          what the key was made of, and when the engine was built
    engines/<key>.lock          held (flock) while the engine is being built
    timing-<gpu>-trt<ver>.cache TensorRT's timing cache, reused across builds on the same GPU
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from denoise.atomic import atomic_write_bytes


def cache_dir() -> Path:
    """Where engines live: ``$DENOISE_CACHE_DIR``, else ``$XDG_CACHE_HOME/denoise``, else ``~/.cache/denoise``."""
    if os.environ.get("DENOISE_CACHE_DIR"):
        return Path(os.environ["DENOISE_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "denoise"


@dataclass(frozen=True)
class EngineSpec:
    """Everything an engine's validity depends on; its hash is the cache key."""

    onnx_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str  # "9.0"
    precision: str  # "fp16" or "fp32": the precision of the ONNX graph it was built from
    profile: tuple  # ((name, min, opt, max), ...) with shapes as tuples
    version_compatible: bool = False
    hardware_compatible: bool = False

    def key(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def matches_machine(self, tensorrt_version: str, gpu_name: str, compute_capability: str) -> bool:
        """Whether an engine built to this spec can run here (compatibility flags relax the check)."""
        same_trt = self.tensorrt_version == tensorrt_version or (
            self.version_compatible and self.tensorrt_version.split(".")[0] == tensorrt_version.split(".")[0])
        same_gpu = (self.gpu_name == gpu_name and self.compute_capability == compute_capability) or (
            self.hardware_compatible and float(compute_capability) >= 8.0)
        return same_trt and same_gpu


@contextmanager
def file_lock(path: Path):
    """An exclusive advisory lock (flock) held for the duration of the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def engine_path(spec: EngineSpec, root: Path | None = None) -> Path:
    return (root or cache_dir()) / "engines" / f"{spec.key()}.engine"


def get_or_build(spec: EngineSpec, build: Callable[[], bytes], root: Path | None = None) -> tuple[Path, bool]:
    """The cached engine for ``spec``, building it with ``build()`` under the lock if it is missing.

    Returns (path, built_now). A second process asking for the same key waits for the first one's build
    and then reads the finished file; it never sees a partial engine.
    """
    path = engine_path(spec, root)
    if path.is_file():
        return path, False
    with file_lock(path.with_suffix(".lock")):
        if path.is_file():  # another process built it while we waited for the lock
            return path, False
        started = time.time()
        data = build()
        record = {"spec": asdict(spec), "built": time.strftime("%Y-%m-%dT%H:%M:%S"),
                  "build_seconds": round(time.time() - started, 1), "bytes": len(data)}
        atomic_write_bytes(path.with_suffix(".json"), json.dumps(record, indent=2).encode())
        atomic_write_bytes(path, data)  # last: the engine's presence means its record is there too
    return path, True


def list_engines(root: Path | None = None) -> list[dict]:
    """The cached engines' records (spec, build time, size), newest first."""
    folder = (root or cache_dir()) / "engines"
    records = []
    for meta in folder.glob("*.json"):
        if meta.with_suffix(".engine").is_file():
            record = json.loads(meta.read_text())
            record["path"] = str(meta.with_suffix(".engine"))
            records.append(record)
    return sorted(records, key=lambda r: r.get("built", ""), reverse=True)


def spec_from_record(record: dict) -> EngineSpec:
    spec = dict(record["spec"])
    spec["profile"] = tuple(tuple(tuple(x) if isinstance(x, list) else x for x in entry) for entry in spec["profile"])
    return EngineSpec(**spec)
