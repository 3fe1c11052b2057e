"""Training and export with real torch, real files and real ONNX Runtime sessions."""

import json
import pickle

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

from conftest import SAMPLES, need_shared, run_cli, write_png
from denoise.errors import DenoiseError
from denoise.export.onnx_export import build_card, export_onnx
from denoise.model import build_model
from denoise.datasets import load_images
from denoise.train.data import CropSampler, MixedSampler, to_training_tensor
from denoise.checkpoint import load_checkpoint, model_from_checkpoint
from denoise.train.loop import TrainSettings, batch_loss, save_checkpoint, sigma_top, train
from denoise.train.noise import add_noise


def fixed_batch():
    images = load_images(SAMPLES / "clean", "train")
    clean = to_training_tensor(CropSampler(images, 32, seed=99).batch(16), "cpu")
    gen = torch.Generator().manual_seed(5)
    sigma = torch.full((16,), 0.2)
    return add_noise(clean, sigma, "clip", gen), sigma, clean


def test_short_training_lowers_the_loss(tmp_path):
    noisy, sigma, clean = fixed_batch()
    torch.manual_seed(0)  # train() seeds the same way, so this is the model it starts from
    before = F.mse_loss(build_model("fast").train()(noisy, sigma), clean).item()
    settings = TrainSettings(data=str(SAMPLES / "clean"), out=str(tmp_path / "run"), steps=60, batch_size=8,
                             lr=1e-3, val_every=30, val_images=2, seed=0)
    best = train(settings, log=lambda line: None)
    model, state = model_from_checkpoint(best)
    after = F.mse_loss(model.train()(noisy, sigma), clean).item()
    assert after < 0.8 * before
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == [30, 60]
    assert state["config"]["sigma_map"] is True and state["settings"]["steps"] == 60


def test_resume_brings_back_weights_and_optimizer_state(tmp_path):
    """After --resume one more step: Adam's per-parameter step count goes on from 5 (a fresh optimizer would
    say 1), and the weights moved by one small update from the saved ones (fresh weights would be far away)."""
    import torch

    from denoise.model import build_model

    out = tmp_path / "run"
    base = dict(data=str(SAMPLES / "clean"), out=str(out), batch_size=4, val_every=5, val_images=1, seed=0)
    train(TrainSettings(steps=5, **base), log=lambda line: None)
    saved = load_checkpoint(out / "last.pt")
    assert saved["step"] == 5
    lines = []
    train(TrainSettings(steps=6, **base), resume=True, log=lines.append)
    assert any("resumed" in line and "step 5" in line for line in lines)
    resumed = load_checkpoint(out / "last.pt")
    assert resumed["step"] == 6
    assert {float(s["step"]) for s in resumed["optimizer"]["state"].values()} == {6.0}
    torch.manual_seed(0)
    fresh = build_model("fast").state_dict()
    for name, weights in resumed["model"].items():
        moved = (weights - saved["model"][name]).abs().max()
        assert moved < 0.5 * (saved["model"][name] - fresh[name]).abs().max() + 1e-6, name


def test_resume_refuses_another_run_and_keeps_the_runs_settings(tmp_path):
    out = tmp_path / "run"
    first = run_cli("train", "--data", SAMPLES / "clean", "--out", out, "--steps", "3", "--batch-size", "4",
                    "--val-every", "3", "--val-images", "1", "--loss", "log-mse", timeout=600)
    assert first.returncode == 0, first.stderr
    other = run_cli("train", "--out", out, "--resume", "--steps", "4", "--loss", "mse", timeout=600)
    assert other.returncode == 1 and other.stderr.count("\n") == 1 and "--loss 'mse'" in other.stderr, other.stderr
    model = run_cli("train", "--out", out, "--resume", "--steps", "4", "--model", "seed", timeout=600)
    assert model.returncode == 1 and "--model 'seed'" in model.stderr and "Traceback" not in model.stderr
    more = run_cli("train", "--out", out, "--resume", "--steps", "4", timeout=600)  # no --data: the run's own
    assert more.returncode == 0, more.stderr
    state = load_checkpoint(out / "last.pt")
    assert state["step"] == 4 and state["settings"]["loss"] == "log-mse" and state["settings"]["batch_size"] == 4


def test_fine_tune_from_init_with_log_mse(tmp_path):
    """--init starts from a checkpoint's weights (step 0, a new schedule); the card says what it came from."""
    base = dict(data=str(SAMPLES / "clean"), batch_size=4, val_every=4, val_images=1, seed=0)
    first = train(TrainSettings(steps=4, out=str(tmp_path / "a"), **base), log=lambda line: None)
    lines = []
    tuned = train(TrainSettings(steps=4, out=str(tmp_path / "b"), loss="log-mse", init=str(first), folder_sigma_max=0.3, **base),
                  log=lines.append)
    state = load_checkpoint(tuned)
    assert state["step"] == 4 and any("starting from the weights of" in line for line in lines)
    assert state["meta"]["init"]["steps"] == 4 and state["settings"]["loss"] == "log-mse"
    card = build_card(state, tuned)
    assert card["training"]["loss"] == "log-mse" and card["training"]["fine_tuned_from"]["steps"] == 4
    again = train(TrainSettings(steps=3, out=str(tmp_path / "d"), protocol="mixed", init=str(tuned), **base), log=lambda line: None)
    chain = build_card(load_checkpoint(again), again)["training"]["fine_tuned_from"]  # every stage, nested
    assert (chain["steps"], chain["loss"], chain["fine_tuned_from"]["steps"], chain["fine_tuned_from"]["loss"]) == (4, "log-mse", 4, "mse")
    assert (chain["folder_sigma_max"], chain["fine_tuned_from"]["folder_sigma_max"]) == (0.3, None)
    assert "fine_tuned_from" not in chain["fine_tuned_from"]
    with pytest.raises(DenoiseError, match="different model configuration"):
        train(TrainSettings(steps=1, out=str(tmp_path / "c"), model="residual", init=str(first), **base), log=lambda line: None)


def test_a_fine_tune_averaged_with_its_start_is_between_them_and_says_so(tmp_path):
    """average_checkpoints (WiSE-FT): every weight at (1 - w) start + w tune; the checkpoint keeps the tune's
    settings, drops its validation scores (they were the tune's), and the card -- its own and that of a run
    fine-tuned from it -- says how it was made. Other models cannot be averaged."""
    from denoise.checkpoint import average_checkpoints

    base = dict(data=str(SAMPLES / "clean"), batch_size=4, val_every=4, val_images=1, seed=0)
    start = train(TrainSettings(steps=2, out=str(tmp_path / "a"), **base), log=lambda line: None)
    tuned = train(TrainSettings(steps=3, out=str(tmp_path / "b"), init=str(start), lr=1e-2, **base), log=lambda line: None)
    average_checkpoints(start, tuned, 0.25, tmp_path / "avg.pt")
    a, t, avg = (load_checkpoint(p) for p in (start, tuned, tmp_path / "avg.pt"))
    moved = 0
    for name, value in avg["model"].items():
        if value.is_floating_point():
            assert torch.allclose(value, 0.75 * a["model"][name] + 0.25 * t["model"][name], atol=1e-6)
            moved += not torch.equal(a["model"][name], t["model"][name])
    assert moved > 0 and "optimizer" not in avg and "val_psnr" not in avg["meta"]
    assert avg["settings"] == t["settings"] and avg["meta"]["init"]["steps"] == 2
    card = build_card(avg, tmp_path / "avg.pt")
    assert card["weight_average"]["tuned_weight"] == 0.25 and card["training"]["fine_tuned_from"]["steps"] == 2
    again = train(TrainSettings(steps=1, out=str(tmp_path / "c"), init=str(tmp_path / "avg.pt"), **base), log=lambda line: None)
    assert build_card(load_checkpoint(again), again)["training"]["fine_tuned_from"]["weight_average"]["tuned_weight"] == 0.25
    other, model = tmp_path / "other.pt", build_model("residual")
    save_checkpoint(other, model, torch.optim.Adam(model.parameters()), 0, 0.0, TrainSettings(data="x"), {"data": "x"})
    with pytest.raises(DenoiseError, match="not the same model"):
        average_checkpoints(start, other, 0.5, tmp_path / "bad.pt")
    with pytest.raises(DenoiseError, match="not on"):
        average_checkpoints(start, tuned, 1.5, tmp_path / "bad.pt")


def test_log_mse_weighs_images_equally():
    """log-mse is the mean of per-image log(MSE): scaling one image's error by 10 moves it by log(100)/N,
    whatever the other images' errors; MSE is dominated by the largest error."""
    clean = torch.zeros(2, 3, 4, 4)
    out = torch.stack([torch.full((3, 4, 4), 0.01), torch.full((3, 4, 4), 0.5)])
    worse = out.clone()
    worse[0] *= 10
    delta = batch_loss(worse, clean, "log-mse") - batch_loss(out, clean, "log-mse")
    assert delta.item() == pytest.approx(np.log(100) / 2, rel=1e-4)
    assert batch_loss(out, clean, "mse").item() == pytest.approx((0.01 ** 2 + 0.5 ** 2) / 2, rel=1e-5)


def test_cifar_archive_split():
    archive = need_shared("cifar10/cifar10-jpeg.tar.gz")
    test = load_images(archive, "test")
    assert len(test) == 10_000 and test[0].shape == (32, 32, 3) and test[0].dtype == np.uint8


def test_cifar_python_batches(tmp_path):
    """The format users download: pickled dicts with b'data' rows of 3072 bytes (R, G, B planes)."""
    rows = np.arange(20 * 3072, dtype=np.int64).reshape(20, 3072) % 256
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(tmp_path / name, "wb") as f:
            pickle.dump({b"data": rows.astype(np.uint8), b"labels": [0] * 20}, f)
    train_images = load_images(tmp_path, "train")
    assert len(train_images) == 90 and len(load_images(tmp_path, "val")) == 10  # every 10th of 100
    first = load_images(tmp_path, "test")[0]
    assert first.shape == (32, 32, 3)
    assert first[0, 0].tolist() == [rows[0, 0], rows[0, 1024], rows[0, 2048]]
    (tmp_path / "data_batch_3").unlink()  # an incomplete download: one line that says what is missing
    with pytest.raises(DenoiseError, match="lacks data_batch_3"):
        load_images(tmp_path, "train")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A checkpoint of a randomly initialised model: export must be exact whatever the weights."""
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    torch.manual_seed(3)
    model = build_model("fast")
    settings = TrainSettings(data="synthetic", model="fast")
    save_checkpoint(path, model, torch.optim.Adam(model.parameters()), 0, 0.0, settings, {"data": "synthetic"})
    return path


def test_export_matches_pytorch(checkpoint, tmp_path):
    out = tmp_path / "model.onnx"
    card, reports = export_onnx(checkpoint, out)
    assert all(r.ok for r in reports)
    model, _ = model_from_checkpoint(checkpoint)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for n, h, w in [(1, 40, 40), (4, 40, 40), (1, 23, 57), (4, 23, 57)]:  # two shapes x two batch sizes
        noisy = rng.random((n, 3, h, w), dtype=np.float32)
        sigma = (rng.uniform(0, 1, (n, 1, h, w)) * np.linspace(0.2, 1, w)).astype(np.float32)  # maps that vary
        got = session.run(["denoised"], {"noisy": noisy, "sigma": sigma})[0]
        with torch.no_grad():
            want = model(torch.from_numpy(noisy), torch.from_numpy(sigma)).numpy()
        assert got.shape == (n, 3, h, w)
        assert np.abs(got - want).max() < 1e-4
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(props["denoise_card"])["config"]["shuffle"] == 2
    assert props["checkpoint_sha256"] == card["checkpoint_sha256"]
    assert json.loads(out.with_suffix(".json").read_text())["onnx_sha256"] == card["onnx_sha256"]


def test_export_cli(checkpoint, tmp_path):
    out = tmp_path / "cli"
    result = run_cli("export", checkpoint, "--out", out)
    assert result.returncode == 0, result.stderr
    assert "FP32 check" in result.stdout and (out / "model.onnx").is_file() and (out / "model.json").is_file()
    assert not (out / "model.fp16.onnx").exists()  # only with --fp16
    bad = run_cli("export", tmp_path / "missing.pt")
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "does not exist" in bad.stderr


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(1)
    model = build_model("fast").eval()
    path = tmp_path / "c.pt"
    save_checkpoint(path, model, torch.optim.Adam(model.parameters()), 7, 1.5, TrainSettings(data="x"), {"data": "x"})
    loaded, state = model_from_checkpoint(path)
    x, s = torch.rand(2, 3, 20, 22), torch.tensor([0.1, 0.6])
    with torch.no_grad():
        assert torch.equal(loaded(x, s), model(x, s))
    assert state["step"] == 7 and state["config"] == model.config.to_dict()
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DenoiseError):
        load_checkpoint(tmp_path / "bad.pt")


def test_ctrl_c_writes_a_checkpoint(tmp_path):
    import re
    import signal
    import subprocess
    import sys

    from conftest import wait_for

    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "denoise", "train", "--data", SAMPLES / "clean", "--out", out,
                             "--steps", "100000", "--batch-size", "4", "--val-every", "5", "--val-images", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # the event: the first validation's checkpoint (written whole, by rename) -- the loop is stepping, its Ctrl-C
    # handler in place -- not a fixed time after it
    wait_for(lambda: (out / "last.pt").exists(), "the first validation's last.pt", proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted: saved" in stderr, stderr
    saved_at = int(re.search(r"interrupted: saved .* at step (\d+)", stderr).group(1))
    assert load_checkpoint(out / "last.pt")["step"] == saved_at >= 5  # the checkpoint is the one Ctrl-C wrote


def test_mixed_protocol_draws_each_protocol_per_image():
    clean = torch.zeros(300, 3, 8, 8)  # at 0 the protocols differ: gaussian goes below 0, uint8 is on the 1/255 grid
    noisy = add_noise(clean, torch.full((300,), 0.3), "mixed", torch.Generator().manual_seed(0))
    unclipped = (noisy < 0).flatten(1).any(1)
    on_grid = ((noisy * 255 - torch.round(noisy * 255)).abs() < 1e-4).flatten(1).all(1) & ~unclipped
    clipped_only = ~unclipped & ~on_grid
    for kind in (unclipped, on_grid, clipped_only):
        assert 70 < int(kind.sum()) < 130  # about a third each
    with pytest.raises(ValueError):
        add_noise(clean, torch.full((300,), 0.3), "salt")


def test_crops_are_windows_of_the_images_in_all_eight_orientations():
    image = np.arange(5 * 5 * 3, dtype=np.uint8).reshape(5, 5, 3)  # every pixel distinct

    def orientations(patch):
        return [np.rot90(p, k) for p in (patch, patch[:, ::-1]) for k in range(4)]

    whole = CropSampler([image], 5, seed=1).batch(400)
    assert whole.shape == (400, 5, 5, 4) and not whole[..., 3].any()  # RGBX: the pad byte is 0
    whole = whole[..., :3]
    seen = {next(i for i, o in enumerate(orientations(image)) if np.array_equal(o, crop)) for crop in whole}
    assert seen == set(range(8))  # every flip/rotation occurs, and nothing else
    windows = [o for y in range(4) for x in range(4) for o in orientations(image[y:y + 2, x:x + 2])]
    crops = CropSampler([image, image[:3, :4]], 2, seed=2).batch(200)[..., :3]
    assert all(any(np.array_equal(crop, w) for w in windows) for crop in crops)
    assert len({crop.tobytes() for crop in crops}) > 40  # many different windows and orientations


def test_folder_sigma_max_applies_to_image_folders_only(tmp_path):
    """Photo batches can be kept at the low sigma photos are denoised at; CIFAR batches keep the full range."""
    rows = np.zeros((20, 3072), dtype=np.uint8)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(tmp_path / name, "wb") as f:
            pickle.dump({b"data": rows, b"labels": [0] * 20}, f)
    photos = tmp_path / "photos"
    for i in range(3):
        write_png(photos / f"{i}.png", np.full((64, 80, 3), 40 * i, dtype=np.uint8))
    settings = TrainSettings(data=[str(tmp_path), str(photos)], sigma_max=1.0, folder_sigma_max=0.3)
    assert [sigma_top(settings, tmp_path), sigma_top(settings, photos)] == [1.0, 0.3]
    default = TrainSettings(data=[str(tmp_path), str(photos)], sigma_max=0.8)
    assert [sigma_top(default, tmp_path), sigma_top(default, photos)] == [0.8, 0.8]
    sampler = MixedSampler([load_images(tmp_path, "train"), load_images(photos, "train")], 48, seed=0)
    drawn = [sampler.batch(2) for _ in range(4)]
    assert [source for source, _ in drawn] == [0, 1, 0, 1]  # in turn, and each batch says where it came from
    assert [batch.shape[1] for _, batch in drawn] == [32, 48, 32, 48]


def test_folder_sigma_max_below_sigma_min_is_a_one_line_error(tmp_path):
    result = run_cli("train", "--data", str(SAMPLES / "clean"), "--sigma-min", "0.2", "--folder-sigma-max", "0.1",
                     "--out", str(tmp_path / "run"))
    assert result.returncode == 1 and "--folder-sigma-max" in result.stderr and "Traceback" not in result.stderr
