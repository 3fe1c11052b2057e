"""Atomic file writes: a temporary file in the destination folder, fsync, then rename.

Readers (and a re-run after a crash) see either the old file or the complete new one, never a
truncated one; a failed write leaves nothing behind. The file gets the mode a new file gets under the
user's umask (0644 under umask 022), as ``cp`` and editors give: ``mkstemp`` creates its file owner-only
(0600), and a rename keeps that mode, which left every output unreadable to other users, web servers and
shares.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from pathlib import Path
from typing import BinaryIO, Callable


_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's umask, read without changing it where Linux shows it (/proc/self/status); elsewhere by
    setting and restoring it under a lock (os.umask has no read-only form)."""
    try:
        match = re.search(r"^Umask:\s*([0-7]+)", Path("/proc/self/status").read_text(), re.MULTILINE)
        if match:
            return int(match.group(1), 8)
    except OSError:
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write(file)`` on a temporary file next to ``path``, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_save_onnx(proto, path: Path) -> None:
    """An ONNX model (onnx.ModelProto) saved atomically: its serialized bytes, as onnx.save writes a model
    without external data (ours are a few MB; the 2 GB protobuf limit is far off)."""
    atomic_write_bytes(path, proto.SerializeToString())
