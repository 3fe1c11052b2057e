"""The camera protocol's noise has the statistics it claims: it grows with the signal, neighbouring pixels
and colour channels correlate after demosaicing, the level map measures it, and JPEG is applied."""

from dataclasses import replace

import numpy as np
import pytest

from denoise.camera_noise import camera_noise, draw_params, local_noise_level
from denoise.noise import noisy_pair


def flat_noise(grey: float, seed: int = 0, jpeg: bool = False):
    """Noise (noisy - target) of one camera on a flat grey patch, no JPEG unless asked."""
    rng = np.random.default_rng(seed)
    params = replace(draw_params(np.random.default_rng(99), sigma=0.05), jpeg_quality=80 if jpeg else None,
                     bayer_phase=(0, 0))
    noisy, target, level = camera_noise(np.full((96, 96, 3), grey), rng, params=params)
    return (noisy - target)[8:-8, 8:-8], level[8:-8, 8:-8]


def test_noise_grows_with_the_signal():
    """Shot noise: variance = shot * x + read in linear light, so a brighter patch is noisier (up to the
    mid-tones, where the tone curve starts to compress it)."""
    dark, _ = flat_noise(0.08)
    mid, _ = flat_noise(0.45)
    assert mid.std() > 1.4 * dark.std()


def test_neighbours_and_channels_correlate_after_demosaicing():
    noise, _ = flat_noise(0.4)
    green = noise[..., 1]
    horizontal = np.corrcoef(green[:, :-1].ravel(), green[:, 1:].ravel())[0, 1]
    red_green = np.corrcoef(noise[..., 0].ravel(), noise[..., 1].ravel())[0, 1]
    assert horizontal > 0.2 and red_green > 0.2
    white = np.random.default_rng(0).standard_normal(green.shape)  # the same estimate on white noise is ~0
    assert abs(np.corrcoef(white[:, :-1].ravel(), white[:, 1:].ravel())[0, 1]) < 0.05


def test_level_map_is_the_local_rms_of_the_noise():
    noise, level = flat_noise(0.4)
    assert level.mean() == pytest.approx(np.sqrt((noise ** 2).mean()), rel=0.08)
    known = np.random.default_rng(1).standard_normal((64, 64, 3)) * 0.05
    assert local_noise_level(known, np.zeros_like(known)).mean() == pytest.approx(0.05, rel=0.05)


def test_jpeg_is_applied_and_output_is_8_bit():
    rng = np.random.default_rng(2)
    clean = rng.random((64, 64, 3))
    params = replace(draw_params(rng, sigma=0.02), jpeg_quality=75)
    noisy, _, _ = camera_noise(clean, np.random.default_rng(3), params=params)
    plain, _, _ = camera_noise(clean, np.random.default_rng(3), params=replace(params, jpeg_quality=None))
    assert np.allclose(noisy * 255, np.round(noisy * 255), atol=1e-4)  # 8-bit values
    assert np.abs(noisy - plain).mean() > 1 / 255  # JPEG changed it


def test_sigma_sets_the_strength_and_eval_pairs_use_the_camera_target():
    yy, xx = np.mgrid[0:48, 0:48] / 48
    clean = np.stack([xx, yy, 0.5 * (xx + yy)], axis=2).astype(np.float32)  # smooth: JPEG barely changes it
    light = noisy_pair(clean, 0.01, "camera", np.random.default_rng(5))
    heavy = noisy_pair(clean, 0.08, "camera", np.random.default_rng(5))
    assert np.abs(heavy[0] - heavy[1]).mean() > 2 * np.abs(light[0] - light[1]).mean()
    white_noisy, white_ref = noisy_pair(clean, 0.1, "gaussian", np.random.default_rng(5))
    assert white_ref is not None and np.array_equal(white_ref, clean)
