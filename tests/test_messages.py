"""One-line messages for mistakes a user can make (issue 24, item 6): real subprocesses of the CLI."""

import json

import numpy as np
import pytest

from conftest import run_cli, write_png
from denoise import Denoiser
from denoise.errors import DenoiseError


def test_a_strength_that_takes_the_level_out_of_range_is_refused_in_one_line(tmp_path):
    write_png(tmp_path / "in" / "a.png", np.full((16, 16, 3), 100, np.uint8))
    result = run_cli("batch", tmp_path / "in", tmp_path / "out", "--sigma", "0.5", "--strength", "10")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "takes sigma 0.5 to 5" in lines[0] and "lower --strength or --sigma" in lines[0]
    assert not (tmp_path / "out" / "a.png").exists()
    ok = run_cli("batch", tmp_path / "in", tmp_path / "out", "--sigma", "0.5", "--strength", "1.5")
    assert ok.returncode == 0, ok.stderr


def test_the_python_api_refuses_the_same():
    with Denoiser(backend="cpu", precision="fp32") as denoiser:
        with pytest.raises(DenoiseError, match="outside this model's range"):
            denoiser.denoise(np.zeros((8, 8, 3), np.uint8), sigma=0.5, strength=10)


def test_forgetting_the_output_names_the_output(tmp_path):
    write_png(tmp_path / "in" / "a.png", np.full((16, 16, 3), 100, np.uint8))
    result = run_cli("batch", tmp_path / "in")
    assert result.returncode == 2
    assert "missing the output" in result.stderr and "INPUTS" not in result.stderr


def test_bare_denoise_prints_its_help_not_an_error():
    result = run_cli()
    assert result.returncode == 2
    assert result.stderr.startswith("Usage: ") and "Commands:" in result.stderr and "error:" not in result.stderr


def test_a_closed_pipe_ends_quietly():
    import subprocess
    import sys

    result = subprocess.run(f"{sys.executable} -m denoise info | head -1", shell=True, capture_output=True, text=True,
                            timeout=120, executable="/bin/bash")
    assert result.stdout.startswith("denoise ") and "Broken pipe" not in result.stderr and "Errno" not in result.stderr


def test_a_corrupt_file_is_named_once(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "bad.png").write_bytes(b"junk")
    result = run_cli("batch", tmp_path / "in", tmp_path / "out", "--sigma", "0.1")
    assert result.returncode == 3
    (line,) = [ln for ln in result.stderr.splitlines() if ln.startswith("failed")]
    assert line.count("bad.png") == 1 and "not a readable image" in line


def test_an_output_folder_that_cannot_be_written_is_one_plain_line(tmp_path, monkeypatch):
    """Stand-in: our machines run the tests as root, for whom every folder is writable, so a permission refusal
    cannot happen here; the lock file's open is made to raise what the kernel raises for a read-only folder
    (a folder a normal user cannot write to was not tried: no other user can run this venv here)."""
    import builtins

    from denoise.job import lock

    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(builtins, "open", refuse)
    with pytest.raises(DenoiseError) as info:
        with lock.output_lock(tmp_path):
            pass
    message = str(info.value)
    assert "permission denied" in message and "Errno" not in message and ".denoise.lock" not in message


def test_an_int8_file_given_as_the_model_is_one_line(tmp_path):
    from conftest import REPO

    write_png(tmp_path / "in" / "a.png", np.full((16, 16, 3), 100, np.uint8))
    result = run_cli("batch", tmp_path / "in", tmp_path / "out", "--sigma", "0.1",
                     "--model", REPO / "denoise" / "weights" / "default.int8.onnx")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "is an INT8 model file" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_manifest_timings_name_the_estimate_apart_from_the_noise_level(tmp_path):
    import json

    write_png(tmp_path / "in" / "a.png", np.full((24, 24, 3), 100, np.uint8))
    result = run_cli("batch", tmp_path / "in", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    (record,) = [json.loads(line) for line in (tmp_path / "out" / "denoise-manifest.jsonl").read_text().splitlines()]
    assert set(record["timings"]) == {"read", "estimate", "denoise", "write"} and isinstance(record["sigma"], float)


def test_an_estimated_level_times_a_large_strength_is_clamped_to_the_models_range(tmp_path):
    """A given sigma times --strength outside the range is refused (above); an estimated map cannot be checked
    before the run, so the level the model gets is clamped to its range and the manifest says so."""
    noisy = np.clip(np.random.default_rng(3).normal(0.5, 0.2, (48, 48, 3)), 0, 1)
    write_png(tmp_path / "in" / "a.png", (noisy * 255).astype(np.uint8))
    result = run_cli("batch", tmp_path / "in", tmp_path / "out", "--strength", "40")
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "out" / "denoise-manifest.jsonl").read_text().splitlines()[0])
    assert record["sigma_clamped"] is True and record["sigma_max"] <= 1.0 and record["strength"] == 40
    result = run_cli("batch", tmp_path / "in", tmp_path / "out2")
    assert "sigma_clamped" not in json.loads((tmp_path / "out2" / "denoise-manifest.jsonl").read_text().splitlines()[0])
