"""A RAW's noise read from its mosaic (denoise/raw_noise.py): the Poisson-Gaussian fit on mosaics with known
noise, and the fit carried through a development. Pure numpy: no LibRaw needed (tests/test_raw.py runs the fit
on DNGs that LibRaw reads, through the CLI)."""

import numpy as np
import pytest

from denoise.camera_noise import draw_params
from denoise.linear_dng import srgb_to_linear
from denoise.raw_noise import NEEDED_LEVEL, developed_noise_map, fit_mosaic_noise, needed_level, srgb_slope

BLACK, WHITE = 512, 16383


def textured_scene(height: int, width: int) -> np.ndarray:
    """A [0,1] scene with every brightness from dark to near white (a ramp) and texture on it (two sinusoids of
    a few pixels' period), so the fit has to find the quiet parts."""
    y, x = np.mgrid[0:height, 0:width]
    ramp = 0.03 + 0.8 * x / width
    texture = 0.04 * np.sin(x / 2.3) * np.sin(y / 3.1) * (y > height // 2)
    return np.clip(ramp + texture, 0, 1)


def mosaic_with_noise(scene: np.ndarray, shot: float, read: float, seed: int = 0, black=BLACK) -> np.ndarray:
    """``scene`` as a 14-bit sensor's values with Poisson-Gaussian noise of variance shot * x + read; ``black``: one
    black level, or a 2x2 one per site of the pattern."""
    noisy = scene + np.sqrt(shot * scene + read) * np.random.default_rng(seed).standard_normal(scene.shape)
    black = np.tile(np.broadcast_to(black, (2, 2)), (scene.shape[0] // 2, scene.shape[1] // 2))
    return np.clip(np.round(black + noisy * (WHITE - black)), 0, WHITE).astype(np.uint16)


@pytest.mark.parametrize("sigma", [0.05, 0.1, 0.14])
def test_the_fit_finds_the_sensor_noise_under_texture(sigma):
    """The camera protocol's sensor at ``sigma`` (shot sigma**2, read on Brooks' line): the fitted shot noise within
    15%, and the noise at mid-grey within 10% -- though half the scene is texture as strong as the noise."""
    params = draw_params(np.random.default_rng(1), sigma)
    mosaic = mosaic_with_noise(textured_scene(400, 600), params.shot, params.read)
    shot, read = fit_mosaic_noise(mosaic, np.full((2, 2), BLACK), WHITE)
    assert abs(shot / params.shot - 1) < 0.15, (shot, params.shot)
    assert abs(np.sqrt((shot * 0.5 + read) / (params.shot * 0.5 + params.read)) - 1) < 0.1, (shot, read, params)


def test_pure_read_noise_is_fitted_as_read_noise():
    """A flat mosaic with noise that does not depend on the signal (a dark frame's kind): all of it is read noise."""
    mosaic = mosaic_with_noise(np.full((300, 300), 0.2), 0.0, 1e-4)
    shot, read = fit_mosaic_noise(mosaic, np.full((2, 2), BLACK), WHITE)
    assert shot * 0.2 < 1e-5 and abs(read / 1e-4 - 1) < 0.1, (shot, read)


def test_each_sites_black_level_is_taken_off_its_own_values():
    """A sensor whose four sites have different black levels: the same fit as with one black level."""
    params = draw_params(np.random.default_rng(2), 0.1)
    scene = textured_scene(300, 400)
    same = fit_mosaic_noise(mosaic_with_noise(scene, params.shot, params.read), np.full((2, 2), BLACK), WHITE)
    black = BLACK + np.array([[0, 40], [-30, 10]])
    fitted = fit_mosaic_noise(mosaic_with_noise(scene, params.shot, params.read, black=black), black, WHITE)
    assert np.allclose(fitted, same, rtol=0.03), (fitted, same)


def test_too_small_a_mosaic_is_not_fitted():
    assert fit_mosaic_noise(mosaic_with_noise(np.full((40, 40), 0.3), 0.01, 1e-4), np.full((2, 2), BLACK), WHITE) is None


def test_the_developed_noise_is_the_raw_noise_through_the_tone_curve():
    """A camera whose colour matrix and white balance change nothing, a flat grey development: each pixel's noise
    is the tone curve's slope times the raw noise at the raw value under it."""
    shot, read = 0.004, 2e-5
    for grey in (0.01, 0.2, 0.7):
        linear = float(srgb_to_linear(np.array(grey)))
        pixels = np.full((12, 16, 3), round(grey * 65535), np.uint16)
        expected = srgb_slope(np.array(linear)) * np.sqrt(shot * linear + read)
        noise = developed_noise_map(pixels, (shot, read), (1.0, 1.0, 1.0), np.eye(3))
        assert noise.shape == (12, 16) and np.allclose(noise, expected, rtol=1e-3), (grey, noise.mean(), expected)


def test_white_balance_and_colour_matrix_raise_the_developed_noise():
    """The same grey through a white balance that multiplies red by 2: red's raw value was half as large, its noise
    doubled by the gain; more noise in the development than without the white balance."""
    pixels = np.full((8, 8, 3), 30000, np.uint16)
    plain = developed_noise_map(pixels, (0.004, 2e-5), (1.0, 1.0, 1.0), np.eye(3))
    balanced = developed_noise_map(pixels, (0.004, 2e-5), (2.0, 1.0, 1.0), np.eye(3))
    assert balanced.mean() > plain.mean() * 1.05


def test_the_needed_level_grows_with_the_noise_and_goes_on_in_proportion():
    reads, levels = NEEDED_LEVEL
    assert np.all(np.diff(reads) > 0) and np.all(np.diff(levels) > 0)
    noise = np.linspace(0, 0.3, 301, dtype=np.float32)
    mapped = needed_level(noise)
    assert np.all(np.diff(mapped) >= 0) and mapped[0] == 0
    assert np.isclose(mapped[-1], 0.3 * levels[-1] / reads[-1], rtol=1e-5)
