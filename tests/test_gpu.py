"""Tests that need an NVIDIA GPU (marker `gpu`): skipped elsewhere with the reason.

Run on a GPU machine with: python -m pytest -m gpu
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible to torch")]


def test_training_runs_on_cuda_with_bf16(tmp_path):
    from conftest import SAMPLES
    from denoise.checkpoint import load_checkpoint
    from denoise.train.loop import TrainSettings, train

    settings = TrainSettings(data=str(SAMPLES / "clean"), out=str(tmp_path), steps=20, batch_size=16,
                             val_every=10, val_images=2, device="cuda")
    train(settings, log=lambda line: None)
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["step"] == 20 and "cuda" in state["meta"]["device"]
    assert all(t.device.type == "cpu" for t in state["model"].values())  # checkpoints load anywhere


def test_tensorrt_matches_onnxruntime():
    pytest.importorskip("tensorrt", reason="TensorRT is not installed")
    from denoise import Denoiser

    image = np.random.default_rng(0).random((300, 400, 3), dtype=np.float32)
    want = Denoiser(backend="cpu").denoise(image, 0.2)
    got = Denoiser(backend="tensorrt").denoise(image, 0.2)
    assert np.isfinite(got).all() and np.abs(got - want).max() < 0.02
