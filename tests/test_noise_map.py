"""Noise maps and --sigma auto in the runtime, with the bundled denoiser and noise estimator in real ONNX
Runtime sessions: tiling stays exact with a map and with the estimator, a map and the equal number agree,
--strength scales what the model sees, the estimator finds a known white-noise level, and bad levels get
one line."""

import json

import numpy as np
import pytest

from conftest import SAMPLES, need_shared, run_cli
from denoise import Denoiser
from denoise.errors import DenoiseError
from denoise.metrics import psnr_uint8, to_float
from denoise.image_files import read_image
from denoise.runtime import real_noise
from denoise.runtime.levels import calibrate_levels, clipped_noise_factor
from denoise.runtime.tiling import TileBatcher, estimate_map, run_tiled

DENOISER = Denoiser(backend="cpu", precision="fp32")  # FP32 on both sides: these tests are about tiling the estimator


def whole_map(image):
    """The estimator's own map of the whole image in one call (before its calibration)."""
    return DENOISER.estimator.infer(np.ascontiguousarray(image.transpose(2, 0, 1))[None])[0, 0]


def whole_auto(image):
    """--sigma auto on the whole image in single calls: the estimator's map through its calibration, then the
    denoiser with it."""
    chw = np.ascontiguousarray(image.transpose(2, 0, 1))[None]
    level = calibrate_levels(whole_map(image), DENOISER.estimator_calibration)
    return DENOISER.backend.infer(chw, level[None, None])[0].transpose(1, 2, 0), level


def test_bundled_model_takes_a_map_and_has_an_estimator():
    assert DENOISER.takes_map and DENOISER.estimator is not None
    assert DENOISER.estimator_overlap >= DENOISER.estimator.card["receptive_radius"]


@pytest.mark.parametrize("h, w, tile", [(150, 97, 32), (64, 64, 16), (33, 200, 48), (9, 7, 8)])
def test_auto_tiled_equals_whole(h, w, tile):
    image = np.random.default_rng(h * w).random((h, w, 3), dtype=np.float32) * 0.6 + 0.2
    tiled = Denoiser(backend="cpu", tile=tile, max_batch=3, precision="fp32")
    result, seen = tiled.denoise_with_level(image, "auto")
    want, level = whole_auto(image)
    assert np.abs(result - want).max() <= 1e-5
    assert seen["mean"] == pytest.approx(float(level.mean()), rel=1e-4)
    assert seen["min"] == pytest.approx(float(level.min()), rel=1e-4)


def test_estimator_tiles_need_its_receptive_radius_as_overlap():
    """Not vacuous: the tiled map equals the whole-image map with the estimator's overlap, and not with less."""
    image = np.random.default_rng(7).random((128, 128, 3), dtype=np.float32)
    want = whole_map(image)
    exact = estimate_map(DENOISER.estimator.infer, image, (16, 16), DENOISER.estimator_overlap, DENOISER.align)
    short = estimate_map(DENOISER.estimator.infer, image, (16, 16), 2, DENOISER.align)
    assert np.abs(exact - want).max() <= 1e-6 and np.abs(short - want).max() > 1e-4


def test_a_map_and_the_equal_number_give_the_same_result():
    image = np.random.default_rng(8).random((70, 90, 3), dtype=np.float32)
    number = DENOISER.denoise(image, 0.08)
    mapped = DENOISER.denoise(image, np.full((70, 90), 0.08, np.float32))
    assert np.array_equal(number, mapped)
    ramp = np.tile(np.linspace(0.01, 0.3, 90, dtype=np.float32), (70, 1))
    assert np.abs(DENOISER.denoise(image, ramp) - number).max() > 1e-3  # a varying map is really used


class RecordingInfer:
    """The real backend's infer, keeping the sigma maps it is given (an observer, not a stand-in)."""

    def __init__(self):
        self.levels = []

    def __call__(self, batch, sigma):
        self.levels.append(sigma.copy())
        return DENOISER.backend.infer(batch, sigma)


@pytest.mark.parametrize("level", [0.05, "auto"])
def test_strength_scales_what_the_model_sees(level):
    image = np.random.default_rng(9).random((60, 60, 3), dtype=np.float32)
    seen = {}
    for strength in (1.0, 1.7):
        infer = RecordingInfer()
        batcher = TileBatcher(lambda level: infer, (32, 32), DENOISER.overlap, DENOISER.align)
        run_tiled(batcher, image, DENOISER.resolve_sigma(level, image), strength)
        seen[strength] = np.concatenate([lv.ravel() for lv in infer.levels])
    assert np.allclose(seen[1.7], 1.7 * seen[1.0], rtol=1e-6)
    stronger = DENOISER.denoise(image, level, strength=1.7)
    assert np.abs(stronger - DENOISER.denoise(image, level)).max() > 1e-3


@pytest.mark.parametrize("sigma", [10 / 255, 25 / 255, 50 / 255])
def test_estimator_finds_a_known_white_noise_level(sigma):
    """On the two sample photos with white Gaussian noise, the map's mean is within 20% of the true sigma."""
    for name in ("cbsd68-101087.png", "cbsd68-21077.png"):
        clean = to_float(read_image(SAMPLES / "clean" / name).pixels)
        noisy = clean + sigma * np.random.default_rng(0).standard_normal(clean.shape).astype(np.float32)
        _, seen = DENOISER.denoise_with_level(noisy, "auto")
        assert seen["mean"] == pytest.approx(sigma, rel=0.2), (name, seen["mean"] * 255, sigma * 255)


@pytest.mark.parametrize("strength, words", [(0, "above 0"), (-2, "above 0"), ("lots", "not a number"),
                                             (float("nan"), "above 0")])
def test_bad_strength_is_one_line(strength, words):
    with pytest.raises(DenoiseError, match=words) as info:
        DENOISER.denoise(np.zeros((8, 8, 3), np.float32), 0.1, strength=strength)
    assert "\n" not in str(info.value)


def test_a_map_of_the_wrong_shape_is_one_line():
    with pytest.raises(DenoiseError, match=r"sigma map has shape \(8, 9\), but the image is 8x8") as info:
        DENOISER.denoise(np.zeros((8, 8, 3), np.float32), np.zeros((8, 9), np.float32))
    assert "\n" not in str(info.value)
    with pytest.raises(DenoiseError, match=">= 0"):
        DENOISER.denoise(np.zeros((8, 8, 3), np.float32), np.full((8, 8), -0.1, np.float32))


def test_batch_without_sigma_estimates_and_records_the_level(tmp_path):
    result = run_cli("batch", SAMPLES / "noisy", tmp_path / "out", "--strength", "0.9")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in (tmp_path / "out" / "denoise-manifest.jsonl").read_text().splitlines()]
    assert len(records) == 8 and all(r["status"] == "ok" for r in records)
    for r in records:
        assert r["sigma_estimated"] is True and r["strength"] == 0.9
        assert 0 < r["sigma_min"] <= r["sigma"] <= r["sigma_max"] < 1
    fixed = run_cli("batch", SAMPLES / "noisy", tmp_path / "fixed", "--sigma", "0.1")
    record = json.loads((tmp_path / "fixed" / "denoise-manifest.jsonl").read_text().splitlines()[0])
    assert fixed.returncode == 0 and record["sigma_estimated"] is False
    assert record["sigma"] == record["sigma_min"] == record["sigma_max"] == pytest.approx(0.1)


def smooth_photo(h=64, w=80):
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx * 3, yy * 3, (xx + yy) * 1.5 + 40], axis=2).astype(np.uint8)


def test_eval_of_real_pairs_matches_by_name_and_computes_psnr(tmp_path):
    from conftest import write_png
    from denoise.metrics import psnr_uint8

    clean = smooth_photo()
    noisy = np.clip(clean + np.random.default_rng(3).normal(0, 8, clean.shape), 0, 255).astype(np.uint8)
    write_png(tmp_path / "mean" / "shot.png", clean)
    write_png(tmp_path / "real" / "shot.png", noisy)
    write_png(tmp_path / "real" / "unmatched.png", noisy)  # no clean version: left out
    result = run_cli("eval", tmp_path / "mean", "--noisy", tmp_path / "real", "--sigma", "auto", "--sigma", "8/255",
                     "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert {(r["sigma"], r["method"]) for r in rows} == {("auto", "noisy"), ("auto", "model"),
                                                         (8 / 255, "noisy"), (8 / 255, "model")}
    assert all(r["images"] == 1 and r["protocol"] == "real" for r in rows)
    noisy_row = next(r for r in rows if r["method"] == "noisy")
    assert noisy_row["psnr"] == pytest.approx(psnr_uint8(clean, noisy), abs=1e-3)
    assert all(r["psnr"] > noisy_row["psnr"] + 1 for r in rows if r["method"] == "model")
    bad = run_cli("eval", tmp_path / "mean", "--noisy", tmp_path / "nothing")
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1


def test_eval_camera_protocol_runs_auto_and_measures_against_the_camera_target(tmp_path):
    from conftest import write_png

    write_png(tmp_path / "c" / "x.png", smooth_photo())
    result = run_cli("eval", tmp_path / "c", "--sigma", "0.05", "--protocol", "camera", "--bm3d", "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = {r["method"]: r for r in json.loads(result.stdout)}
    assert set(rows) == {"noisy", "model"}  # no CBM3D: it needs a number, camera noise is a map
    assert rows["model"]["psnr"] > rows["noisy"]["psnr"]


def photo_crop(size=256):
    clean = read_image(SAMPLES / "clean" / "cbsd68-21077.png").rgb
    return clean[:size, :size] if min(clean.shape[:2]) >= size else clean


def test_the_residual_statistic_is_one_for_white_noise_and_two_for_noise_in_2x2_blocks(rng):
    white = rng.normal(0, 0.1, (256, 256, 3))
    assert real_noise.block_ratio(white) == pytest.approx(1.0, abs=0.03)
    blocks = np.repeat(np.repeat(rng.normal(0, 0.1, (128, 128, 3)), 2, axis=0), 2, axis=1)
    assert real_noise.block_ratio(blocks) == pytest.approx(2.0, abs=1e-6)


@pytest.mark.parametrize("h, w, count, side", [(110, 110, 1, 110), (111, 111, 1, 111), (128, 128, 3, 64), (100, 300, 3, 64),
                                               (321, 481, 3, 64), (512, 512, 3, 64), (1024, 768, 6, 64),
                                               (2000, 1500, 6, 128), (3000, 4000, 4, 256)])
def test_the_statistic_is_read_on_a_thirty_second_of_a_photo_but_never_on_too_few_pixels(h, w, count, side):
    """Distinct square crops inside the image: at least MIN_PIXELS (all of an image that small, or where too few
    crops fit: 111 x 111), about a thirty-second of a photo (less than one crop more), and on a large one CROPS
    crops of MAX_CROP."""
    boxes = real_noise.crop_boxes(h, w)
    pixels = sum((y1 - y0) * (x1 - x0) for y0, y1, x0, x1 in boxes)
    assert len(boxes) == count == len(set(boxes))
    assert all(y1 - y0 == x1 - x0 == side for y0, y1, x0, x1 in boxes)
    assert all(0 <= y0 < y1 <= h and 0 <= x0 < x1 <= w for y0, y1, x0, x1 in boxes)
    assert pixels >= min(h * w, real_noise.MIN_PIXELS)
    if h * w >= 32 * real_noise.MIN_PIXELS:
        assert pixels < min(h * w / 32, real_noise.CROPS * real_noise.MAX_CROP ** 2) + side * side


def test_the_real_noise_pass_crops_in_one_batch_give_what_each_gives_alone(rng):
    """Denoiser.denoise_many (the real-noise pass's crops, batched together) gives each image what denoise_pixels
    gives it alone: the same tiles, the same numbers; of whatever sizes and levels, in the order given."""
    images = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in [(64, 64, 3), (64, 64, 3), (40, 72, 3)]]
    levels = [np.full(im.shape[:2], level, np.float32) for im, level in zip(images, [0.03, 0.12, 0.06])]
    levels[1][:, :32] = 0.2  # a map that varies
    together = DENOISER.denoise_many(images, levels)
    assert len(together) == 3
    for image, level, result in zip(images, levels, together):
        alone = DENOISER.denoise_pixels(image, level)
        assert result.dtype == np.uint8 and np.abs(result.astype(int) - alone.astype(int)).max() <= 1


def test_auto_keeps_the_estimators_level_on_white_noise_and_raises_it_on_correlated_noise(rng):
    """White noise: the map is the estimator's, raised only where the noise was clipped (levels.clipped_noise_factor).
    Noise correlated as a camera's pipeline leaves it (white noise smoothed over 2x2 pixels, as demosaicing and
    in-camera noise reduction do): the map is raised."""
    clean = photo_crop()
    white = np.clip(clean + rng.normal(0, 25 / 255, clean.shape), 0, 1).astype(np.float32)
    radius = DENOISER.estimator_card["receptive_radius"]
    assert np.array_equal(DENOISER.resolve_sigma("auto", white),
                          DENOISER.estimate_map(white) * clipped_noise_factor(white, radius))
    grain = rng.normal(0, 1, (clean.shape[0] + 1, clean.shape[1] + 1, 3))
    smooth = (grain[1:, 1:] + grain[:-1, 1:] + grain[1:, :-1] + grain[:-1, :-1]) / 2  # unit variance, correlated
    camera = np.clip(clean + smooth * 12 / 255, 0, 1).astype(np.float32)
    assert float(DENOISER.resolve_sigma("auto", camera).mean()) > 1.3 * float(DENOISER.estimate_map(camera).mean())


@pytest.mark.parametrize("folder, name", [("sidd", "0010_001_S6_00800_00350_3200_N_59.png"),
                                          ("renoir-t3i", "t3i-06.png")])
def test_auto_on_a_held_out_real_pair_beats_the_estimators_level(folder, name):
    """Real camera noise (a pair training holds out): the raised map gives a better result than the estimator's."""
    pairs = need_shared(folder)
    noisy, clean = (read_image(pairs / part / name).pixels for part in ("noisy", "clean"))
    estimated = DENOISER.estimate_map(noisy)
    raised = DENOISER.resolve_sigma("auto", noisy)
    gain = psnr_uint8(clean, DENOISER.denoise(noisy, raised)) - psnr_uint8(clean, DENOISER.denoise(noisy, estimated))
    assert gain > 1.0, gain


@pytest.mark.parametrize("shape", [(1, 20000, 3), (20000, 1, 3), (100, 100, 3)])
def test_no_factor_where_the_image_has_no_2x2_block_or_too_few_pixels(shape):
    def never(*_):
        raise AssertionError("the statistic was read on an image it cannot be read on")

    assert real_noise.real_noise_factor(np.zeros(shape, np.float32), np.zeros(shape[:2], np.float32), never) == 1.0


def test_the_crops_start_on_the_2x2_grid_of_a_mosaic_and_of_chroma_subsampling():
    for h, w in [(321, 481), (1023, 769), (3000, 4000)]:
        assert all(y0 % 2 == 0 and x0 % 2 == 0 for y0, _, x0, _ in real_noise.crop_boxes(h, w))
