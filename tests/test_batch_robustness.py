"""The folder job under stress: kills, concurrent runs, links, dry runs and filters -- real processes,
real files."""

import json
from pathlib import Path
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import run_cli, wait_for, write_png
from denoise.job.lock import output_lock


def make_folder(path, count, size=(160, 200)):
    rng = np.random.default_rng(0)
    for i in range(count):
        write_png(path / f"img{i:03d}.png", rng.integers(0, 256, (*size, 3), dtype=np.uint8))
    return path


def manifest(out):
    """The records so far; a line still being written by a running batch (no newline yet) is left for later."""
    path = out / "denoise-manifest.jsonl"
    text = path.read_text() if path.exists() else ""
    return [json.loads(line) for line in text[:text.rfind("\n") + 1].splitlines()]


# FP32 said, not auto: auto runs INT8 (faster) on AVX2 and VNNI CPUs alike; the re-runs say it too, as a re-run
# with another precision would redo the files rather than skip them
FP32 = ("--backend", "cpu", "--precision", "fp32")


def test_sigkill_then_rerun_loses_nothing_and_does_nothing_twice(tmp_path):
    src, out = make_folder(tmp_path / "in", 30), tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "denoise", "batch", src, out, "--sigma", "0.1", "-q", *FP32],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: len(manifest(out)) >= 5, "5 records in the manifest", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first_records = manifest(out)
    done_first = {r["path"] for r in first_records if r["status"] == "ok"}
    assert 5 <= len(done_first) < 30, "the kill should land mid-run"
    for png in out.glob("*.png"):  # whatever is there under a final name is complete
        with Image.open(png) as im:
            im.load()
    on_disk = {png.name for png in out.glob("*.png")}  # the ok records, and any written just before the kill
    assert {Path(r["output"]).name for r in first_records if r["status"] == "ok"} <= on_disk
    rerun = run_cli("batch", src, out, "--sigma", "0.1", "--json", "-q", *FP32)
    assert rerun.returncode == 0, rerun.stderr
    records = manifest(out)
    ok_counts = {}
    for r in records:
        if r["status"] == "ok":
            ok_counts[r["path"]] = ok_counts.get(r["path"], 0) + 1
    assert max(ok_counts.values()) == 1  # none done twice
    for r in records[len(first_records):]:  # the re-run skips what the killed run finished, and does the rest
        assert r["status"] == ("skipped" if Path(r["path"]).name in on_disk else "ok"), r
    assert {r["path"] for r in records if r["status"] in ("ok", "skipped")} == {str(p) for p in src.glob("*.png")}
    assert sorted(p.name for p in out.glob("*.png")) == sorted(p.name for p in src.glob("*.png"))
    for png in out.glob("*.png"):
        with Image.open(png) as im:
            im.load()
            assert im.size == (200, 160)
    assert not list(out.rglob("*.part"))  # the killed run's temporary file was cleaned up


def test_second_run_on_same_output_is_refused(tmp_path):
    src = make_folder(tmp_path / "in", 1)
    with output_lock(tmp_path / "out"):
        result = run_cli("batch", src, tmp_path / "out", "--sigma", "0.1")
    assert result.returncode == 1 and "another denoise batch is writing" in result.stderr
    assert not (tmp_path / "out" / "img000.png").exists()
    assert run_cli("batch", src, tmp_path / "out", "--sigma", "0.1").returncode == 0  # lock released
    assert not (tmp_path / "out" / ".denoise.lock").exists()  # and its file removed: it does not travel with OUT


def test_lock_taken_on_a_file_removed_meanwhile_is_taken_again(tmp_path, monkeypatch):
    """The unlink race: a finishing run removes OUT/.denoise.lock just after this run opened it, so this run's
    flock lands on a file nobody else can find. It must notice and lock the file the path names, so that a
    third run is still refused."""
    import os

    from denoise.job import lock

    out = tmp_path / "out"
    out.mkdir()
    (out / ".denoise.lock").write_text("pid 1 (a finishing run)")
    real_open, removed = open, []

    def open_then_removed(path, *args, **kwargs):
        handle = real_open(path, *args, **kwargs)
        if Path(path).name == ".denoise.lock" and not removed:
            removed.append(path)
            os.unlink(path)  # what the finishing run does as it ends
        return handle

    monkeypatch.setattr(lock, "open", open_then_removed, raising=False)
    with output_lock(out):
        assert removed and (out / ".denoise.lock").read_text() == f"pid {os.getpid()}"
        third = subprocess.run([sys.executable, "-c", "from pathlib import Path; from denoise.job.lock import "
                                f"output_lock\nwith output_lock(Path({str(out)!r})): pass"], capture_output=True, text=True)
        assert third.returncode != 0 and "another denoise batch is writing" in third.stderr
    assert not (out / ".denoise.lock").exists()


def test_links_are_not_followed_out_of_input_nor_written_through(tmp_path):
    src = make_folder(tmp_path / "in", 1, (20, 20))
    outside = make_folder(tmp_path / "elsewhere", 1, (20, 20))
    os.symlink(outside / "img000.png", src / "linked.png")
    os.symlink(outside, src / "linked-dir")
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    escape = tmp_path / "escape"
    escape.mkdir()
    os.symlink(escape, out / "linked-dir")  # an output folder that is a link leading outside OUT
    result = run_cli("batch", src, out, "--sigma", "0.1", "--json", "-q")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["ok"] == 1 and not (out / "linked.png").exists()
    followed = run_cli("batch", src, out, "--sigma", "0.1", "--follow-symlinks")
    assert (out / "linked.png").is_file()
    assert list(escape.iterdir()) == [], "nothing may be written through a link out of OUT"
    assert "leading outside the output folder" in followed.stderr


def test_dry_run_writes_nothing_and_glob_and_format_filter(tmp_path):
    src = make_folder(tmp_path / "in", 3, (20, 20))
    write_png(src / "keep" / "a.png", np.zeros((8, 8, 3), np.uint8))
    dry = run_cli("batch", src, tmp_path / "out", "--sigma", "0.1", "--dry-run")
    assert dry.returncode == 0 and dry.stdout.count("would denoise") == 4
    assert not (tmp_path / "out").exists()
    result = run_cli("batch", src, tmp_path / "out", "--sigma", "0.1", "--glob", "keep/*", "--format", "jpg")
    assert result.returncode == 0, result.stderr
    assert [p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.jpg")] == ["keep/a.jpg"]
    with Image.open(tmp_path / "out" / "keep" / "a.jpg") as im:
        assert im.format == "JPEG"


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, b"GIF89a junk", b"plain text"])
def test_corrupt_files_fail_alone(tmp_path, content):
    src = make_folder(tmp_path / "in", 1, (20, 20))
    (src / "bad.png").write_bytes(content)
    truncated = (src / "img000.png").read_bytes()
    (src / "truncated.png").write_bytes(truncated[: len(truncated) // 2])
    result = run_cli("batch", src, tmp_path / "out", "--sigma", "0.1")
    assert result.returncode == 3
    assert "bad.png" in result.stderr and "truncated.png" in result.stderr
    assert (tmp_path / "out" / "img000.png").is_file()
    assert not (tmp_path / "out" / "bad.png").exists() and not (tmp_path / "out" / "truncated.png").exists()


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    src = tmp_path / "in"
    write_png(src / "bomb.png", np.zeros((5000, 5000), np.uint8), "L")  # 25 MP of zeros: a tiny file
    monkeypatch.setenv("DENOISE_MAX_MEGAPIXELS", "10")
    result = run_cli("batch", src, tmp_path / "out", "--sigma", "0.1")
    assert result.returncode == 3 and "bomb.png" in result.stderr and "megapixels" in result.stderr


def test_unwritable_manifest_is_one_line_and_exit_1(tmp_path):
    """A full disk where the manifest goes (/dev/full answers every write with ENOSPC)."""
    src = make_folder(tmp_path / "in", 1, (20, 20))
    result = run_cli("batch", src, tmp_path / "out", "--sigma", "0.1", "--manifest", "/dev/full", "-q")
    assert result.returncode == 1 and "No space left on device" in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_finishes_what_is_being_written_and_rerun_continues(signum, code, tmp_path):
    """What a scheduler does (SIGTERM, then SIGKILL later), and Ctrl-C: the run stops taking files, finishes
    the writes under way, appends their records, prints its summary and exits 143 / 130, leaving no temporary
    file; every output on disk is complete and has its ok record; a re-run does exactly the rest."""
    src, out = make_folder(tmp_path / "in", 30), tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "denoise", "batch", src, out, "--sigma", "0.1", *FP32],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: len(manifest(out)) >= 3, "3 records in the manifest", proc)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr
    assert "done:" in stderr and f"stopped by {signal.Signals(signum).name}" in stderr
    records = manifest(out)
    written = sorted(p.name for p in out.glob("*.png"))
    assert 3 <= len(written) < 30, "the signal should land mid-run"
    assert sorted(Path(r["output"]).name for r in records if r["status"] == "ok") == written
    assert not list(out.rglob("*.part")) and not (out / ".denoise.lock").exists()
    for png in out.glob("*.png"):
        with Image.open(png) as im:
            im.load()
    rerun = run_cli("batch", src, out, "--sigma", "0.1", "-q", *FP32)
    assert rerun.returncode == 0, rerun.stderr
    again = manifest(out)[len(records):]
    assert sorted(r["status"] for r in again) == ["ok"] * (30 - len(written)) + ["skipped"] * len(written)


def test_the_library_leaves_pillows_bomb_guard_alone(tmp_path):
    """`import denoise` and a whole batch run through the Python API leave PIL.Image.MAX_IMAGE_PIXELS as the
    program set it (the guard protects every other image the program opens), while our own limit still
    refuses an image over DENOISE_MAX_MEGAPIXELS, per call."""
    src = make_folder(tmp_path / "in", 2, (20, 20))
    write_png(tmp_path / "big" / "big.png", np.zeros((3000, 3000), np.uint8), "L")  # 9 MP
    code = f"""
import os
from PIL import Image
before = Image.MAX_IMAGE_PIXELS
import denoise
from denoise import Denoiser, denoise_folder
from denoise.errors import DenoiseError
from denoise.image_files import read_image
with Denoiser(backend="cpu") as d:
    summary = denoise_folder(d, {str(src)!r}, {str(tmp_path / 'out')!r}, 0.1)
assert summary.ok == 2, summary
assert Image.MAX_IMAGE_PIXELS == before == 89478485, (Image.MAX_IMAGE_PIXELS, before)
os.environ["DENOISE_MAX_MEGAPIXELS"] = "5"
try:
    read_image({str(tmp_path / 'big' / 'big.png')!r})
    raise SystemExit("not refused")
except DenoiseError as exc:
    assert "over the limit of 5" in str(exc), exc
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
