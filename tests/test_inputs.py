"""What `denoise batch` takes besides one folder: a single file (to a folder or to a named file), and
several files and folders at once -- real files, real subprocesses, the same never-write-over-an-input rules."""

import json

import numpy as np
from PIL import Image

from conftest import SAMPLES, run_cli, write_png


def records(out):
    return [json.loads(line) for line in (out / "denoise-manifest.jsonl").read_text().splitlines()]


def test_one_file_into_a_folder_and_into_a_named_file(tmp_path):
    photo = SAMPLES / "noisy" / "cbsd68-21077.png"
    into_folder = run_cli("batch", photo, tmp_path / "out", "--sigma", "0.1", "-q")
    assert into_folder.returncode == 0, into_folder.stderr
    assert (tmp_path / "out" / photo.name).is_file() and records(tmp_path / "out")[0]["status"] == "ok"
    named = run_cli("batch", photo, tmp_path / "named" / "clean.jpg", "--sigma", "0.1", "-q")
    assert named.returncode == 0, named.stderr
    with Image.open(tmp_path / "named" / "clean.jpg") as im:
        assert im.format == "JPEG" and im.size == Image.open(photo).size
    # like cp: nothing beside the named output (no manifest, no lock), unless --manifest asks for one
    assert sorted(p.name for p in (tmp_path / "named").iterdir()) == ["clean.jpg"]
    again = run_cli("batch", photo, tmp_path / "named" / "clean.jpg", "--sigma", "0.1")
    assert again.returncode == 0 and "1 skipped" in again.stderr and "manifest" not in again.stderr
    asked = run_cli("batch", photo, tmp_path / "named" / "clean.jpg", "--sigma", "0.1", "--overwrite",
                    "--manifest", tmp_path / "log.jsonl")
    assert asked.returncode == 0, asked.stderr
    assert [json.loads(line)["status"] for line in (tmp_path / "log.jsonl").read_text().splitlines()] == ["ok"]
    assert sorted(p.name for p in (tmp_path / "named").iterdir()) == ["clean.jpg"]
    # the same result either way (the JPEG aside): the file is denoised as it would be in its folder
    folder_run = run_cli("batch", SAMPLES / "noisy", tmp_path / "whole", "--sigma", "0.1", "-q", "--glob", photo.name)
    assert folder_run.returncode == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / photo.name)),
                          np.asarray(Image.open(tmp_path / "whole" / photo.name)))


def test_several_files_and_folders_at_once(tmp_path):
    rng = np.random.default_rng(0)
    a = write_png(tmp_path / "a.png", rng.integers(0, 256, (30, 40, 3), dtype=np.uint8))
    b = write_png(tmp_path / "elsewhere" / "a.png", rng.integers(0, 256, (30, 40, 3), dtype=np.uint8))  # same name
    folder = tmp_path / "shots"
    for i in range(3):
        write_png(folder / "day1" / f"s{i}.png", rng.integers(0, 256, (20, 20, 3), dtype=np.uint8))
    result = run_cli("batch", a, b, folder, tmp_path / "out", "--sigma", "0.1", "--json", "-q")
    assert result.returncode == 0, result.stderr
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png")) == \
        ["a.png", "shots/day1/s0.png", "shots/day1/s1.png", "shots/day1/s2.png"]
    statuses = {r["path"]: (r["status"], r["error"]) for r in records(tmp_path / "out")}
    assert statuses[str(b)][0] == "skipped" and "same output name" in statuses[str(b)][1]
    again = run_cli("batch", a, b, folder, tmp_path / "out", "--sigma", "0.1", "-q")
    assert again.returncode == 0 and all(r["status"] == "skipped" for r in records(tmp_path / "out")[5:])


def test_no_input_is_ever_written_over(tmp_path):
    photo = write_png(tmp_path / "in" / "p.png", np.full((16, 16, 3), 100, np.uint8))
    before = photo.read_bytes()
    for output in (photo, tmp_path / "in"):  # the file itself; its own folder (the output would be the input)
        result = run_cli("batch", photo, output, "--sigma", "0.1")
        assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    inside = run_cli("batch", photo, tmp_path / "in", tmp_path / "in" / "out", "--sigma", "0.1")
    assert inside.returncode == 1 and "inside" in inside.stderr
    assert photo.read_bytes() == before and not (tmp_path / "in" / "out").exists()
    missing = run_cli("batch", tmp_path / "nope.png", tmp_path / "x.png", "--sigma", "0.1")
    assert missing.returncode == 1 and "does not exist" in missing.stderr
