"""The noise estimator's calibration: fitted from its mean reads of white noise at known levels
(scripts/calibrate_estimator.py, runtime.levels.calibration_from_reads), stored in its card, and applied by the
runtime to every map it makes."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, SAMPLES
from denoise import Denoiser
from denoise.errors import DenoiseError
from denoise.image_files import read_image
from denoise.metrics import to_float
from denoise.runtime.levels import (CLIPPED_SHARES, SURVIVING_LEVEL, calibrate_levels, calibration_from_reads,
                                    check_calibration, clipped_noise_factor)
from denoise.weights import DEFAULT_ESTIMATOR

SIGMAS = np.array([5, 10, 15, 20, 25, 30, 40, 50]) / 255


def test_levels_read_low_stay_and_levels_read_high_map_back_to_the_truth():
    reads = SIGMAS * np.array([1.3, 0.9, 0.87, 0.94, 1.05, 1.11, 1.12, 1.15])
    table = check_calibration(calibration_from_reads(SIGMAS, reads), "test")
    below = np.array([2, 6, 12, 18.7]) / 255  # up to 20/255's read (18.8): under-reads depend on the photo
    assert np.allclose(calibrate_levels(below, table), below, atol=1e-6)
    assert np.allclose(calibrate_levels(reads[4:], table), SIGMAS[4:], atol=1e-6)
    assert calibrate_levels(np.array([1.0]), table)[0] > SIGMAS[-1]  # the last slope goes on to a read of 1
    grid = np.linspace(0, 1, 1001)
    assert np.all(np.diff(calibrate_levels(grid, table)) >= 0)


@pytest.mark.parametrize("read, level", [([0, 0.07, 0.1, 1], [0, 0.07, 0.09, 0.6]), ([0.01, 0.5, 1], [0.02, 0.4, 0.9]),
                                         ([0, 0.2, 1], [0, 0.1, 0.5])])
def test_a_map_through_any_table_is_the_tables_interpolation(read, level):
    """The pixels left alone (those on the table's first points on read = level) are exactly np.interp's."""
    table = check_calibration({"read": read, "level": level}, "test")
    grid = np.linspace(0, 1, 1001, dtype=np.float32)
    assert np.allclose(calibrate_levels(grid, table), np.interp(grid, *table), atol=1e-7)


def test_an_estimator_that_never_over_reads_is_left_as_it_is():
    table = check_calibration(calibration_from_reads(SIGMAS, SIGMAS * 0.95), "test")
    grid = np.linspace(0, 1, 11)
    assert np.allclose(calibrate_levels(grid, table), grid)


def test_reads_that_do_not_grow_with_the_level_give_no_calibration():
    reads = SIGMAS * 1.5
    reads[-2] = reads[-1]  # 40/255 and 50/255 both read as 75/255
    with pytest.raises(ValueError, match="do not grow"):
        calibration_from_reads(SIGMAS, reads)


def noisy_sample(sigma: float, name: str = "cbsd68-101087.png") -> np.ndarray:
    clean = to_float(read_image(SAMPLES / "clean" / name).pixels)
    return clean + sigma * np.random.default_rng(0).standard_normal(clean.shape).astype(np.float32)


def test_the_bundled_calibration_brings_high_reads_of_white_noise_back_to_the_truth():
    """The bundled estimator reads white noise of 50/255 about 15% high; its card's calibration takes the map's
    mean within 8% of the truth, and nearer it than the estimator's own read (a photo it was not fitted on)."""
    with Denoiser(backend="cpu", precision="fp32") as denoiser:
        assert denoiser.estimator_card.get("calibration"), "the bundled estimator's card has no calibration"
        noisy = noisy_sample(50 / 255)
        raw = float(denoiser.estimate_map(noisy, raw=True).mean())
        calibrated = float(denoiser.estimate_map(noisy).mean())
    assert abs(calibrated - 50 / 255) < abs(raw - 50 / 255)
    assert calibrated == pytest.approx(50 / 255, rel=0.08), (raw * 255, calibrated * 255)


def estimator_copy(tmp_path, calibration=None):
    shutil.copy(DEFAULT_ESTIMATOR, tmp_path / "estimator.onnx")
    card = json.loads(DEFAULT_ESTIMATOR.with_suffix(".json").read_text())
    card.pop("calibration", None)
    if calibration is not None:
        card["calibration"] = calibration
    (tmp_path / "estimator.json").write_text(json.dumps(card))
    return tmp_path / "estimator.onnx"


@pytest.mark.parametrize("calibration", [{"read": [0, 0.5, 0.4], "level": [0, 0.5, 0.6]}, {"read": [0, 1]},
                                         {"read": [0, 1], "level": [0, "x"]}, [1, 2]])
def test_a_broken_calibration_in_a_card_is_one_line(tmp_path, calibration):
    with pytest.raises(DenoiseError) as caught:
        Denoiser(backend="cpu", precision="fp32", estimator=estimator_copy(tmp_path, calibration))
    assert "calibrate_estimator.py" in str(caught.value) and "\n" not in str(caught.value)


def test_the_script_fits_a_calibration_that_the_runtime_then_applies(tmp_path):
    """scripts/calibrate_estimator.py on a sample photo writes a calibration into an uncalibrated
    estimator's card; a Denoiser with that estimator then reads 50/255 nearer the truth than before."""
    estimator = estimator_copy(tmp_path)
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(SAMPLES / "clean" / "cbsd68-101087.png", photos)  # fitted on one photo, measured on the other
    with Denoiser(backend="cpu", precision="fp32", estimator=estimator) as denoiser:
        assert denoiser.estimator_calibration is None
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "calibrate_estimator.py"), "--photos",
                           str(photos), "--levels", "10,20,30,50,75",
                           "--estimator", str(estimator)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    card = json.loads((tmp_path / "estimator.json").read_text())
    assert set(card["calibration"]["mean_reads"]) == {"10/255", "20/255", "30/255", "50/255", "75/255"}
    with Denoiser(backend="cpu", precision="fp32", estimator=estimator) as denoiser:
        after = float(denoiser.estimate_map(noisy_sample(50 / 255, "cbsd68-21077.png")).mean())
        before_other = float(denoiser.estimate_map(noisy_sample(50 / 255, "cbsd68-21077.png"), raw=True).mean())
    assert before_other > 50 / 255  # the estimator over-reads 50/255
    assert abs(after - 50 / 255) < abs(before_other - 50 / 255)


@pytest.mark.parametrize("case", ["no folder", "no photos", "no card"])
def test_the_scripts_mistakes_are_one_line_that_says_what_to_give(tmp_path, case):
    """A missing photo folder, a folder with no photos and an estimator without its card: one line, exit 1,
    and no card written."""
    estimator = estimator_copy(tmp_path)
    photos = tmp_path / "photos"
    if case != "no folder":
        photos.mkdir()
    if case == "no card":
        shutil.copy(SAMPLES / "clean" / "cbsd68-101087.png", photos)
        (tmp_path / "estimator.json").unlink()
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "calibrate_estimator.py"), "--photos", str(photos),
                           "--levels", "10,50", "--estimator", str(estimator)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    message = done.stderr.strip()
    assert message.startswith("error: ") and "\n" not in message and "Traceback" not in done.stderr
    assert ("--photos" in message) if case != "no card" else ("no card" in message)
    if case != "no card":
        assert "calibration" not in json.loads((tmp_path / "estimator.json").read_text())


@pytest.mark.parametrize("share", [0.02, 0.1, 0.3, 0.5])
def test_the_level_left_after_clipping_is_a_censored_normals(share):
    """What survives of a unit level where a share of the values is clipped, against a million draws."""
    draws = np.random.default_rng(0).standard_normal(1_000_000)
    clipped = np.minimum(draws, np.quantile(draws, 1 - share))
    assert float(np.interp(share, CLIPPED_SHARES, SURVIVING_LEVEL)) == pytest.approx(clipped.std(), rel=0.01)


def test_no_clipped_value_no_change_and_a_saturated_corner_raises_only_its_surroundings():
    rng = np.random.default_rng(1)
    floats = rng.normal(0.5, 0.3, (120, 160, 3)).astype(np.float32)  # beyond [0, 1]: noise that was not clipped
    assert np.array_equal(clipped_noise_factor(floats, 21), np.ones((120, 160), np.float32))
    image = np.clip(rng.normal(128, 20, (120, 160, 3)), 1, 254).astype(np.uint8)
    image[:40, :40] = 255  # a blown highlight
    factor = clipped_noise_factor(image, 21)
    assert factor.shape == (120, 160)
    assert factor[:30, :30].max() == pytest.approx(1 / SURVIVING_LEVEL[-1], rel=1e-5)  # capped at a half clipped
    assert factor[20, 45] > 1.05 and np.all(factor[:, 110:] == 1) and np.all(factor[100:] == 1)


def test_where_a_file_clipped_the_noise_the_map_comes_back_to_the_level_before_clipping():
    """A photo brightened until a third of it is blown out, with white noise of 40/255 saved as uint8 (clipped):
    the estimator reads the clipped noise low there, and the map `auto` gives brings those pixels nearer 40/255."""
    clean = np.clip(to_float(read_image(SAMPLES / "clean" / "cbsd68-101087.png").pixels) * 1.6, 0, 1)
    noisy = clean + 40 / 255 * np.random.default_rng(0).standard_normal(clean.shape).astype(np.float32)
    noisy = np.round(np.clip(noisy, 0, 1) * 255).astype(np.uint8)
    blown = clean.min(axis=2) >= 1
    assert 0.15 < blown.mean() < 0.6
    with Denoiser(backend="cpu", precision="fp32") as denoiser:
        raw, level = denoiser.estimate_map(noisy, raw=True), denoiser.resolve_sigma("auto", noisy)
    assert float(raw[blown].mean()) < 0.8 * 40 / 255  # the noise left after clipping reads low
    assert abs(float(level[blown].mean()) - 40 / 255) < 0.5 * abs(float(raw[blown].mean()) - 40 / 255)
