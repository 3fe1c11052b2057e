"""The backend seam (runtime.backends): the PyTorch backend against ONNX Runtime, what `auto` and an explicit
backend say on a machine without a GPU, and a backend whose every call faults stopping a batch early.

The PyTorch backend's CUDA path (FP16/BF16, CUDA graphs, pinned buffers) needs an NVIDIA GPU: tests/test_gpu.py
and scripts/gpu_session.sh run it there. Here it runs with device="cpu" (FP32), the same model code and the
same checkpoint reading, against a real ONNX Runtime session.
"""

import json

import numpy as np
import pytest

from conftest import SAMPLES, run_cli
from denoise import Denoiser, denoise_folder
from denoise.errors import BackendFault, DenoiseError
from denoise.model_files import read_card
from denoise.runtime.contract import BackendBase
from denoise.weights import (DEFAULT_CHECKPOINT, DEFAULT_ESTIMATOR_CHECKPOINT, DEFAULT_MODEL, DEFAULT_RAW_CHECKPOINT,
                             DEFAULT_RAW_MODEL)

torch = pytest.importorskip("torch", reason="the torch backend's tests need torch (the train extra)")


def gpu_software_here() -> str:
    """Why this machine could start a GPU backend (then the no-GPU tests below do not apply), or ""."""
    import importlib.util

    import onnxruntime

    from denoise.runtime.backends import nvidia_device_present

    if importlib.util.find_spec("tensorrt") is not None:
        return "TensorRT is installed here"
    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        return "onnxruntime-gpu is installed here"
    if nvidia_device_present():
        return "an NVIDIA GPU is present here"
    return ""


no_gpu_software = pytest.mark.skipif(bool(gpu_software_here()), reason=gpu_software_here() or "-")


def test_torch_backend_matches_onnxruntime():
    from denoise.runtime.torch_backend import TorchBackend

    reference = Denoiser(backend="cpu", precision="fp32")  # the FP32 model: what the checkpoint is
    denoiser = TorchBackend(DEFAULT_CHECKPOINT, device="cpu")
    estimator = TorchBackend(DEFAULT_ESTIMATOR_CHECKPOINT, device="cpu")
    rng = np.random.default_rng(0)
    noisy = rng.random((3, 3, 70, 90), dtype=np.float32)
    ramp = np.linspace(0.02, 0.3, 90, dtype=np.float32)[None, None, None, :] * np.ones((3, 1, 70, 1), np.float32)
    assert denoiser.sigma_input == "map" and estimator.sigma_input == "none"
    assert np.abs(denoiser.infer(noisy, ramp) - reference.backend.infer(noisy, ramp)).max() < 1e-4
    assert np.abs(estimator.infer(noisy) - reference.estimator.infer(noisy)).max() < 1e-4
    reference.close()


def test_torch_backend_refuses_a_checkpoint_the_model_was_not_exported_from(tmp_path):
    from denoise.model_files import checkpoint_for

    assert checkpoint_for(DEFAULT_MODEL, read_card()) == DEFAULT_CHECKPOINT
    assert checkpoint_for(DEFAULT_RAW_MODEL, read_card(DEFAULT_RAW_MODEL)) == DEFAULT_RAW_CHECKPOINT
    other = tmp_path / "default.pt"
    other.write_bytes(DEFAULT_ESTIMATOR_CHECKPOINT.read_bytes())
    with pytest.raises(DenoiseError, match="not the one"):
        checkpoint_for(DEFAULT_MODEL, read_card(), other)
    with pytest.raises(DenoiseError, match="does not exist"):
        checkpoint_for(tmp_path / "model.onnx", {})


@no_gpu_software
def test_backend_torch_without_a_gpu_is_one_line_and_exit_1(tmp_path):
    result = run_cli("batch", SAMPLES / "noisy", tmp_path / "out", "--sigma", "0.1", "--backend", "torch")
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 1 and "needs an NVIDIA GPU" in result.stderr, result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").glob("*.png"))


@no_gpu_software
def test_auto_says_why_each_faster_backend_was_skipped(tmp_path):
    result = run_cli("-v", "batch", SAMPLES / "noisy", tmp_path / "out", "--sigma", "0.1", "--backend", "auto", "-q")
    assert result.returncode == 0, result.stderr
    for name in ("tensorrt skipped", "cuda skipped", "torch skipped", "using onnxruntime-cpu"):
        assert name in result.stderr, result.stderr


class FaultingBackend(BackendBase):
    """A stand-in for a backend whose every call fails as a sticky CUDA error would (no GPU here to fail)."""

    name, on_gpu, precision, sigma_input = "faulty", False, "fp32", "map"

    def __init__(self):
        self.calls = 0

    def infer(self, noisy, sigma=None):
        self.calls += 1
        raise BackendFault("CUDA call failed: cudaErrorIllegalAddress")

    def close(self):
        pass


def test_a_backend_that_always_faults_stops_the_batch_after_a_few_files(tmp_path):
    from conftest import write_png

    rng = np.random.default_rng(0)
    for i in range(20):
        write_png(tmp_path / "in" / f"{i:02d}.png", rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
    with Denoiser(backend="cpu", max_batch=1) as denoiser:
        denoiser.backend = FaultingBackend()
        summary = denoise_folder(denoiser, tmp_path / "in", tmp_path / "out", 0.1)
    assert summary.exit_code == 1 and "3 backend faults in a row" in summary.stopped
    records = [json.loads(line) for line in (tmp_path / "out" / "denoise-manifest.jsonl").read_text().splitlines()]
    assert 3 <= len(records) < 20 and all(r["status"] == "failed" for r in records)
    assert all(r["error"].startswith("backend fault: CUDA call failed") for r in records)
    assert not list((tmp_path / "out").glob("*.png"))


def test_user_errors_do_not_count_as_backend_faults(tmp_path):
    """Unreadable files are the user's: a folder of them fails file by file (exit 3), it is not stopped."""
    for i in range(6):
        (tmp_path / "in").mkdir(exist_ok=True)
        (tmp_path / "in" / f"{i}.png").write_bytes(b"not a png")
    with Denoiser(backend="cpu") as denoiser:
        summary = denoise_folder(denoiser, tmp_path / "in", tmp_path / "out", 0.1)
    assert summary.failed == 6 and not summary.stopped and summary.exit_code == 3
