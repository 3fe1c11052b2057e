"""Real noisy/clean pairs as a training source, and the estimator trained through a frozen denoiser: real
files on disk, the real training loop, the bundled denoiser's checkpoint."""

import json
import math

import numpy as np
import pytest
import torch

from conftest import REPO, SAMPLES, need_shared, run_cli, write_png
from denoise.checkpoint import load_checkpoint, model_from_checkpoint
from denoise.errors import DenoiseError
from denoise.model import build_model
from denoise.train.loop import TrainSettings, through_loss, train
from denoise.train.pairs import PairSampler, held_out_pair_names, load_pairs, pair_names, scene_of

BUNDLED = REPO / "denoise" / "weights" / "default.pt"


def make_pairs(folder, names, size=(48, 40), seed=0):
    rng = np.random.default_rng(seed)
    for name in names:
        clean = rng.integers(40, 200, size=(size[1], size[0], 3), dtype=np.uint8)
        noisy = np.clip(clean + rng.normal(0, 10, clean.shape), 0, 255).astype(np.uint8)
        write_png(folder / "clean" / name, clean)
        write_png(folder / "noisy" / name, noisy)
    return folder


def test_names_that_do_not_match_are_named(tmp_path):
    folder = make_pairs(tmp_path / "set", ["a.png", "b.png"])
    write_png(folder / "noisy" / "c.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(DenoiseError, match=r"noisy/c\.png has no match in .*clean/"):
        pair_names(folder)
    (folder / "noisy" / "c.png").unlink()
    (folder / "clean" / "a.png").unlink()
    with pytest.raises(DenoiseError, match=r"noisy/a\.png has no match"):
        pair_names(folder)


def test_sizes_that_differ_and_corrupt_files_are_named(tmp_path):
    folder = make_pairs(tmp_path / "set", ["a.png"])
    write_png(folder / "noisy" / "b.png", np.zeros((16, 16, 3), np.uint8))
    write_png(folder / "clean" / "b.png", np.zeros((16, 20, 3), np.uint8))
    with pytest.raises(DenoiseError, match=r"noisy/b\.png is 16x16 but its clean version is 20x16"):
        load_pairs(folder, "all")
    write_png(folder / "clean" / "b.png", np.zeros((16, 16, 3), np.uint8))
    (folder / "clean" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(DenoiseError, match=r"clean/b\.png: cannot read it as an image"):
        load_pairs(folder, "all")


def test_a_bad_pair_folder_is_one_line_from_the_cli(tmp_path):
    folder = make_pairs(tmp_path / "set", ["a.png"])
    write_png(folder / "noisy" / "extra.png", np.zeros((8, 8, 3), np.uint8))
    result = run_cli("train", "--data", SAMPLES / "clean", "--pairs", folder, "--steps", "1", "--out", tmp_path / "run")
    assert result.returncode == 1
    assert "extra.png has no match" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 or "starting" not in result.stderr


def test_held_out_scenes_never_straddle_the_split(tmp_path):
    names = [f"{scene:04d}_{i}.png" for scene in range(12) for i in range(3)] + ["lone-a.png", "lone-b.png"]
    folder = make_pairs(tmp_path / "set", names, size=(16, 16))
    held = held_out_pair_names(folder)
    held_scenes = {scene_of(n) for n in held}
    assert held_scenes == {"0000", "0005", "0010"}  # sorted scenes 0, 5, 10, ... (the lone files are 12 and 13)
    assert {n for n in names if scene_of(n) in held_scenes} == set(held)
    train_names = {p.name for p in load_pairs(folder, "train")}
    assert train_names.isdisjoint(held) and len(train_names) + len(held) == len(names)


def test_crops_keep_noisy_clean_and_level_aligned(tmp_path):
    """noisy = 255 - clean, so noisy + clean is one constant per channel (1 plus the brightness shift of
    align_brightness) in every pixel of every crop, whatever the flip or rotation."""
    folder = tmp_path / "set"
    rng = np.random.default_rng(3)
    clean = rng.integers(10, 246, size=(40, 56, 3), dtype=np.uint8)  # away from 0 and 255: the shift never clips
    write_png(folder / "clean" / "x.png", clean)
    write_png(folder / "noisy" / "x.png", 255 - clean)
    sampler = PairSampler(load_pairs(folder, "all"), crop=24, seed=0)
    noisy, target, level = sampler.batch(32)
    assert noisy.shape == target.shape == (32, 3, 24, 24) and level.shape == (32, 1, 24, 24)
    total = noisy + target
    assert np.all(total.std(axis=(0, 2, 3)) < 1e-5)
    assert np.allclose(total.mean(axis=(0, 2, 3)), 1 + (255 - 2 * clean.mean(axis=(0, 1))) / 255, atol=1e-5)
    firsts = {tuple(np.round(t[:, 0, 0], 4)) for t in target}  # the crops come from many places
    assert len(firsts) > 20


def test_the_clean_reference_takes_the_noisy_shots_brightness(tmp_path):
    """SIDD's references are a few grey levels brighter than its shots; the noise itself has no mean."""
    folder = tmp_path / "set"
    rng = np.random.default_rng(4)
    clean = rng.integers(60, 190, size=(32, 32, 3)).astype(np.uint8)
    noise = rng.normal(0, 8, clean.shape)
    noisy = np.clip(clean.astype(float) - [3, 2, 5] + noise, 0, 255).round().astype(np.uint8)
    write_png(folder / "clean" / "x.png", clean)
    write_png(folder / "noisy" / "x.png", noisy)
    (pair,) = load_pairs(folder, "all")
    assert np.allclose(pair.clean.mean(axis=(0, 1)) * 255, noisy.mean(axis=(0, 1)), atol=1e-3)
    assert np.allclose(pair.clean * 255 - clean, (noisy.mean(axis=(0, 1)) - clean.mean(axis=(0, 1))), atol=1e-3)
    assert pair.level.mean() == pytest.approx(8 / 255, rel=0.15)  # the noise's level, not the offset's


def test_training_with_pairs_validates_on_the_held_out_ones(tmp_path):
    names = [f"{i:04d}_x.png" for i in range(10)]
    folder = make_pairs(tmp_path / "set", names)
    lines = []
    train(TrainSettings(data=str(SAMPLES / "clean"), pairs=[str(folder)], pairs_share=0.5, out=str(tmp_path / "run"),
                        steps=4, batch_size=4, crop=32, val_every=4, val_images=1, init=str(BUNDLED), protocol="mixed"),
          log=lines.append)
    assert any("8 to train on, 2 held out" in line for line in lines)
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    assert "real" in state["meta"]["val_psnr"] and state["settings"]["pairs"] == [str(folder)]


def frozen_bundled():
    denoiser, _ = model_from_checkpoint(BUNDLED)
    for parameter in denoiser.parameters():
        parameter.requires_grad_(False)
    return denoiser.train()


def photo_crop():
    from PIL import Image

    with Image.open(SAMPLES / "clean" / "cbsd68-101087.png") as im:
        rgb = np.asarray(im.convert("RGB"), np.float32)[100:164, 200:264] / 255
    return torch.from_numpy(rgb.transpose(2, 0, 1).copy())[None]


def test_through_loss_moves_a_level_to_the_one_that_minimizes_the_denoisers_error():
    """One constant level, started far too low, trained by gradient descent on through_loss through the frozen
    bundled denoiser, ends near the level a scan finds best for the denoiser's output error."""
    denoiser = frozen_bundled()
    clean = photo_crop()
    true = 0.1
    noisy = clean + true * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        levels = np.exp(np.linspace(np.log(0.03), np.log(0.3), 25))
        errors = [float((denoiser(noisy, torch.full((1, 1, 64, 64), float(s))) - clean).pow(2).mean()) for s in levels]
    best = levels[int(np.argmin(errors))]
    log_level = torch.tensor(math.log(0.01), requires_grad=True)
    optimizer = torch.optim.Adam([log_level], lr=0.05)
    for _ in range(150):
        estimate = log_level.exp().expand(1, 1, 64, 64)
        loss = through_loss(estimate, torch.tensor([true]), denoiser(noisy, estimate), clean)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    found = float(log_level.detach().exp())
    assert abs(math.log(found / best)) < math.log(1.25), (found, best)


def test_the_estimator_trained_through_the_denoiser_moves_towards_the_level_it_needs(tmp_path):
    """A fresh estimator starts near 0.025; 40 steps through the frozen bundled denoiser on white noise of 0.15
    bring its estimate much closer to 0.15."""
    noisy = photo_crop() + 0.15 * torch.randn((1, 3, 64, 64), generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    with torch.no_grad():
        before = float(build_model("estimator")(noisy).mean())
    best = train(TrainSettings(data=str(SAMPLES / "clean"), model="estimator", through=str(BUNDLED), out=str(tmp_path / "run"),
                               steps=40, batch_size=4, crop=32, lr=3e-3, sigma_min=0.15, sigma_max=0.15, protocol="clip",
                               val_every=40, val_images=1), log=lambda line: None)
    estimator, _ = model_from_checkpoint(best)
    with torch.no_grad():
        after = float(estimator.eval()(noisy).mean())
    assert abs(math.log(after / 0.15)) < 0.5 * abs(math.log(before / 0.15)), (before, after)


def test_through_refuses_a_denoiser_as_the_model_trained(tmp_path):
    with pytest.raises(DenoiseError, match="--through is for --model estimator"):
        train(TrainSettings(data=str(SAMPLES / "clean"), model="fast", through=str(BUNDLED), out=str(tmp_path / "run"),
                            steps=1, batch_size=2), log=lambda line: None)


def test_the_shared_real_pairs_hold_out_the_named_scenes():
    sidd, renoir = need_shared("sidd"), need_shared("renoir-t3i")
    assert held_out_pair_names(renoir) == [f"t3i-{i:02d}.png" for i in (1, 6, 11, 16, 22, 27, 32, 37)]
    held = held_out_pair_names(sidd)
    assert len(held) == 9 and "sidd-sample-01.png" in held
    assert not any(name.startswith("0182_") for name in held)  # the eleven crops of scene 0182 all train


def test_anchor_white_is_recorded_and_a_resume_keeps_it(tmp_path):
    """--anchor white (the camera protocol's batches left to the denoiser's error) is part of what the run is:
    its config says so, and --resume with another anchor is refused in one line."""
    args = ["train", "--model", "estimator", "--through", BUNDLED, "--data", SAMPLES / "clean", "--protocol", "mixed",
            "--steps", "2", "--batch-size", "2", "--crop", "32", "--val-every", "2", "--val-images", "1",
            "--out", tmp_path / "run"]
    result = run_cli(*args, "--anchor", "white")
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "run" / "config.json").read_text())["settings"]["anchor"] == "white"
    again = run_cli(*args, "--anchor", "synthesized", "--resume", "--steps", "3")
    assert again.returncode == 1 and "--anchor 'synthesized' (the run has 'white')" in again.stderr


def test_keep_white_leaves_white_noise_to_the_init_model_and_trains_on_the_real_pairs(tmp_path):
    """--keep-white: on white-noise batches the target is the --init model's own output, so a run of white batches
    alone leaves every weight where it was (the student starts equal to its teacher: zero loss, zero gradient),
    where the same run with clean targets moves them; with real pairs in the mix the weights move."""
    common = dict(data=str(SAMPLES / "clean"), steps=3, batch_size=4, crop=32, val_every=3, val_images=1,
                  init=str(BUNDLED), protocol="gaussian", lr=1e-3, seed=1)
    start = load_checkpoint(BUNDLED)["model"]

    def moved(run, **settings) -> float:
        train(TrainSettings(out=str(tmp_path / run), **{**common, **settings}), log=lambda line: None)
        after = load_checkpoint(tmp_path / run / "last.pt")["model"]
        return max(float((after[k] - start[k]).abs().max()) for k in start)

    assert moved("white-kept", keep_white=True) == 0.0
    assert moved("white-clean") > 1e-5
    pairs = make_pairs(tmp_path / "set", [f"{i:04d}_x.png" for i in range(10)])
    assert moved("real-kept", keep_white=True, pairs=[str(pairs)], pairs_share=1.0) > 1e-5


def test_keep_white_needs_a_model_to_keep(tmp_path):
    result = run_cli("train", "--data", SAMPLES / "clean", "--keep-white", "--steps", "1", "--out", tmp_path / "run")
    assert result.returncode == 1 and "--keep-white is for a denoiser fine-tune" in result.stderr
    assert "Traceback" not in result.stderr
