"""Tests that need an NVIDIA GPU (marker `gpu`): skipped elsewhere, each with its reason.

Run on a GPU machine with: python -m pytest -m gpu. Each test is gated on what it needs itself (torch with
CUDA, or TensorRT with a GPU that cuda-python sees), so a runtime-only TensorRT install still runs the
TensorRT test.
"""

import importlib.util

import numpy as np
import pytest

pytestmark = pytest.mark.gpu


def need_torch_cuda():
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed")
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU visible to torch")
    return torch


def test_training_runs_on_cuda_with_bf16(tmp_path):
    """Training on CUDA runs under BF16 autocast (the loop's choice on GPUs that support it) and writes
    checkpoints that load anywhere."""
    torch = need_torch_cuda()
    from conftest import SAMPLES
    from denoise.checkpoint import load_checkpoint
    from denoise.train.loop import TrainSettings, train

    seen = []
    real_autocast = torch.autocast

    def recording_autocast(*args, **kwargs):
        seen.append(kwargs.get("dtype"))
        return real_autocast(*args, **kwargs)

    torch.autocast = recording_autocast
    try:
        settings = TrainSettings(data=str(SAMPLES / "clean"), out=str(tmp_path), steps=20, batch_size=16,
                                 val_every=10, val_images=2, device="cuda")
        train(settings, log=lambda line: None)
    finally:
        torch.autocast = real_autocast
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["step"] == 20 and "cuda" in state["meta"]["device"]
    assert all(t.device.type == "cpu" for t in state["model"].values())  # checkpoints load anywhere
    if torch.cuda.is_bf16_supported():
        assert torch.bfloat16 in seen, f"autocast dtypes seen: {seen}"


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_torch_backend_matches_onnxruntime(precision):
    need_torch_cuda()
    from denoise import Denoiser
    from denoise.runtime.torch_backend import TorchBackend
    from denoise.weights import DEFAULT_CHECKPOINT

    rng = np.random.default_rng(0)
    image = rng.random((300, 400, 3), dtype=np.float32)
    with Denoiser(backend="cpu", precision="fp32") as reference:
        want = reference.denoise(image, 0.2)
        batch = rng.random((4, 3, 148, 148), dtype=np.float32)
        sigma = np.full((4, 1, 148, 148), 0.1, np.float32)
        want_batch = reference.backend.infer(batch, sigma)
    with Denoiser(backend="torch") as denoiser:
        got = denoiser.denoise(image, 0.2)
        assert denoiser.backend.name == "torch-cuda-fp16" and np.abs(got - want).max() < 0.02
    backend = TorchBackend(DEFAULT_CHECKPOINT, precision=precision)
    tolerance = {"fp32": 1e-3, "fp16": 0.02, "bf16": 0.05}[precision]
    for _ in range(3):  # the first call captures a CUDA graph, the others replay it
        assert np.abs(backend.infer(batch, sigma) - want_batch).max() < tolerance
    assert batch.shape in backend.graphs
    backend.close()


def test_tensorrt_matches_onnxruntime():
    pytest.importorskip("tensorrt", reason="TensorRT is not installed")
    from denoise import DenoiseError, Denoiser
    from denoise.runtime.tensorrt_build import gpu_info

    try:
        gpu_info()
    except DenoiseError as exc:
        pytest.skip(str(exc))
    image = np.random.default_rng(0).random((300, 400, 3), dtype=np.float32)
    with Denoiser(backend="cpu", precision="fp32") as reference, Denoiser(backend="tensorrt") as engine:
        want, got = reference.denoise(image, 0.2), engine.denoise(image, 0.2)
    assert np.isfinite(got).all() and np.abs(got - want).max() < 0.02
