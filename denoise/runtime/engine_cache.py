"""The per-user TensorRT engine cache: keys, atomic writes and a lock, so that two processes never build
or read half an engine. No TensorRT import here: this module is tested on machines without a GPU.

An engine is executable code for one GPU model and one TensorRT version, so it is stored under a key
made of everything that makes it valid: the ONNX file's sha256, the TensorRT version, the GPU name and
compute capability, the precision, the optimisation profile and the build options. Only engines from
this cache, or a path the user names explicitly, are ever loaded, and only after ``read_engine`` checked
them: TensorRT engines are executable artifacts (its docs: never load one from an untrusted source), so the
cache folder is private (0700), each engine's record carries its sha256, and an engine whose bytes do not
match it, or that another user could have written, is refused.

Layout (``DENOISE_CACHE_DIR``, default ``~/.cache/denoise``)::

    engines/<key>.engine        the serialized engine
    engines/<key>.json          what the key was made of, when the engine was built, and its sha256
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
from denoise.errors import DenoiseError


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
        """Whether an engine built to this spec can run here. A version-compatible engine runs on the same
        major TensorRT at its own version or later (engines only run forward: built with older, run with
        newer); a hardware-compatible one on any GPU of compute capability 8.0 (Ampere) or later."""
        built, here = version_tuple(self.tensorrt_version), version_tuple(tensorrt_version)
        same_trt = self.tensorrt_version == tensorrt_version or (
            self.version_compatible and built[0] == here[0] and built <= here)
        same_gpu = (self.gpu_name == gpu_name and self.compute_capability == compute_capability) or (
            self.hardware_compatible and float(compute_capability) >= 8.0)
        return same_trt and same_gpu


def version_tuple(version: str) -> tuple[int, ...]:
    """"10.13.0.35" -> (10, 13, 0, 35); a part that is not a number ends it."""
    parts = []
    for part in version.split("."):
        if not part.isdigit():
            break
        parts.append(int(part))
    return tuple(parts)


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) and make it 0700 if it is ours: engines are code, others must not plant one."""
    path.mkdir(parents=True, exist_ok=True)
    info = path.stat()
    if info.st_uid == os.getuid() and info.st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


@contextmanager
def file_lock(path: Path):
    """An exclusive advisory lock (flock) held for the duration of the block."""
    private_dir(path.parent)
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
    private_dir(path.parent.parent)
    if path.is_file():
        return path, False
    with file_lock(path.with_suffix(".lock")):
        if path.is_file():  # another process built it while we waited for the lock
            return path, False
        started = time.time()
        data = build()
        record = {"spec": asdict(spec), "built": time.strftime("%Y-%m-%dT%H:%M:%S"),
                  "build_seconds": round(time.time() - started, 1), "bytes": len(data),
                  "sha256": hashlib.sha256(data).hexdigest()}
        atomic_write_bytes(path.with_suffix(".json"), json.dumps(record, indent=2).encode())
        atomic_write_bytes(path, data)  # last: the engine's presence means its record is there too
    return path, True


def check_not_writable_by_others(path: Path) -> None:
    """Refuse a file (or its folder) that is a link, belongs to another user, or that group or others may write."""
    for item in (path, path.parent):
        info = item.lstat()
        if os.path.islink(item) or info.st_uid != os.getuid() or info.st_mode & 0o022:
            raise DenoiseError(f"refusing to load the TensorRT engine {path}: {item} is a link, belongs to another "
                               "user or is writable by others (engines are executable code); delete it to rebuild")


def read_engine(path: Path) -> tuple[bytes, dict]:
    """An engine's bytes and its record, after checking that both are ours and the bytes are the ones built."""
    path = Path(path)
    record_path = path.with_suffix(".json")
    if not record_path.is_file():
        raise DenoiseError(f"TensorRT engine {path} has no record {record_path.name} beside it; delete it to rebuild")
    check_not_writable_by_others(path)
    check_not_writable_by_others(record_path)
    record = json.loads(record_path.read_text())
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != record.get("sha256"):
        raise DenoiseError(f"TensorRT engine {path} does not match the sha256 in its record (changed or cut short "
                           "since it was built, or built by an older denoise); delete it to rebuild")
    return data, record


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
