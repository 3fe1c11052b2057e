"""The x8 self-ensemble (`--ensemble`): the mean of the model on the 8 flips/rotations, with real ONNX
Runtime sessions of the bundled model, and through `denoise batch` as a subprocess on real files."""

import json

import numpy as np
from PIL import Image

from conftest import SAMPLES, run_cli
from denoise import Denoiser
from denoise.metrics import psnr_uint8

PLAIN = Denoiser(backend="cpu", precision="fp32")  # said, not auto (INT8 on AVX2 and VNNI CPUs): the same on any CPU
ENSEMBLE = Denoiser(backend="cpu", precision="fp32", ensemble=True)


def orientations_mean(image, sigma):
    """By hand: denoise each flip/rotation of the whole image, turn the result back, average."""
    results = []
    for turns in range(4):
        for flip in (False, True):
            view = np.rot90(image, turns)
            view = view[:, ::-1] if flip else view
            out = PLAIN.denoise(np.ascontiguousarray(view), sigma)
            out = out[:, ::-1] if flip else out
            results.append(np.rot90(out, -turns))
    return np.mean(results, axis=0)


def test_ensemble_is_the_mean_of_the_eight_orientations():
    image = np.random.default_rng(0).random((40, 58, 3), dtype=np.float32)
    result = ENSEMBLE.denoise(image, 0.2)
    assert result.shape == image.shape and result.dtype == np.float32
    assert np.abs(result - orientations_mean(image, 0.2)).max() <= 1e-5
    assert np.abs(result - PLAIN.denoise(image, 0.2)).max() > 1e-3  # it is not the plain result


def test_ensemble_with_small_tiles_equals_the_whole_image():
    image = np.random.default_rng(1).random((70, 90, 3), dtype=np.float32)
    tiled = Denoiser(backend="cpu", precision="fp32", ensemble=True, tile=32).denoise(image, 0.1)
    assert np.abs(tiled - ENSEMBLE.denoise(image, 0.1)).max() <= 1e-5


def test_batch_ensemble_beats_plain_on_the_samples(tmp_path):
    def mean_psnr(folder):
        return np.mean([psnr_uint8(np.asarray(Image.open(SAMPLES / "clean" / p.name).convert("RGB")),
                                   np.asarray(Image.open(p).convert("RGB"))) for p in sorted(folder.glob("*.png"))])

    plain = run_cli("batch", SAMPLES / "noisy", tmp_path / "plain", "--sigma", "0.1", "--backend", "cpu",
                    "--precision", "fp32")
    ensemble = run_cli("batch", SAMPLES / "noisy", tmp_path / "ens", "--sigma", "0.1", "--backend", "cpu",
                       "--precision", "fp32", "--ensemble", "--json")
    assert plain.returncode == 0 and ensemble.returncode == 0, ensemble.stderr
    assert json.loads(ensemble.stdout)["ok"] == 8
    records = [json.loads(line) for line in (tmp_path / "ens" / "denoise-manifest.jsonl").read_text().splitlines()]
    assert {r["backend"] for r in records} == {ENSEMBLE.backend_name} == {"onnxruntime-cpu x8 ensemble"}
    assert mean_psnr(tmp_path / "ens") > mean_psnr(tmp_path / "plain") + 0.05
