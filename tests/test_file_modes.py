"""Files the tool writes get the mode a new file gets under the user's umask, as cp's do (issue 24): real
subprocesses of the CLI under umask 022 and 077, and the atomic writer itself."""

import os
import stat
import subprocess
import sys

import numpy as np
import pytest

from conftest import write_png
from denoise.atomic import atomic_write_bytes, current_umask


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("umask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_batch_outputs_and_manifest_take_the_umasks_mode(tmp_path, umask, expected):
    write_png(tmp_path / "in" / "a.png", np.full((24, 24, 3), 120, np.uint8))
    write_png(tmp_path / "in" / "IMG_0001.PNG", np.full((24, 24, 3), 90, np.uint8))
    result = subprocess.run([sys.executable, "-m", "denoise", "batch", tmp_path / "in", tmp_path / "out", "--sigma", "0.05"],
                            capture_output=True, text=True, preexec_fn=lambda: os.umask(umask), timeout=300)
    assert result.returncode == 0, result.stderr
    written = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert {p.name for p in written} >= {"a.png", "IMG_0001.PNG", "denoise-manifest.jsonl"}
    assert {p.name: oct(mode(p)) for p in written} == {p.name: oct(expected) for p in written}


def test_atomic_write_follows_the_umask_of_the_moment(tmp_path):
    old = os.umask(0o027)
    try:
        assert current_umask() == 0o027
        atomic_write_bytes(tmp_path / "x.bin", b"data")
        assert mode(tmp_path / "x.bin") == 0o640 and (tmp_path / "x.bin").read_bytes() == b"data"
    finally:
        os.umask(old)


def test_glob_matches_suffixes_in_any_case(tmp_path):
    for name in ("IMG_0001.JPG", "b.jpg", "c.png"):
        write_png(tmp_path / "in" / name, np.full((16, 16, 3), 100, np.uint8))
    result = subprocess.run([sys.executable, "-m", "denoise", "batch", tmp_path / "in", tmp_path / "out", "--sigma", "0.05",
                             "--glob", "*.jpg"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "out").glob("*.*") if p.suffix != ".jsonl") == ["IMG_0001.JPG", "b.jpg"]


def test_export_replaces_its_files_atomically_with_the_umasks_mode(tmp_path):
    """`denoise export` writes the model and its card through a temporary file and a rename: a second export
    replaces each file (a new inode) instead of rewriting it in place, where a reader -- or a crash -- would
    see half a model; nothing temporary is left, and the files take the umask's mode."""
    from denoise.weights import DEFAULT_CHECKPOINT

    def export():
        result = subprocess.run([sys.executable, "-m", "denoise", "export", DEFAULT_CHECKPOINT, "--out", tmp_path / "m"],
                                capture_output=True, text=True, preexec_fn=lambda: os.umask(0o077), timeout=600)
        assert result.returncode == 0, result.stderr
        return {p.name: p.stat().st_ino for p in (tmp_path / "m").iterdir()}

    first = export()
    assert set(first) == {"model.onnx", "model.json"}
    second = export()
    assert set(second) == set(first) and all(second[name] != first[name] for name in first)
    assert all(mode(tmp_path / "m" / name) == 0o600 for name in second)
