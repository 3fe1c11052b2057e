"""The camera protocol's noise has the statistics it claims: it grows with the signal, neighbouring pixels
and colour channels correlate after demosaicing, the level map measures it, and JPEG is applied; Malvar-He-
Cutler demosaicing is the better reconstruction it is published as; chroma noise reduction removes colour
noise and keeps luma noise (and luma noise reduction the other way round); sharpening amplifies white noise
by its kernel's gain."""

from dataclasses import replace

import numpy as np
import pytest

from PIL import Image

from conftest import SAMPLES
from denoise.camera_noise import (_RGB_TO_YCBCR, _bayer_masks, camera_noise, demosaic_bilinear, demosaic_mhc, draw_params,
                                  gaussian_blur, in_camera_processing, local_noise_level)
from denoise.noise import noisy_pair


def flat_noise(grey: float, seed: int = 0, jpeg: bool = False):
    """Noise (noisy - target) of one camera on a flat grey patch, no JPEG unless asked."""
    rng = np.random.default_rng(seed)
    params = replace(draw_params(np.random.default_rng(99), sigma=0.05), jpeg_quality=80 if jpeg else None,
                     bayer_phase=(0, 0), demosaic="bilinear", chroma_nr=0.0, luma_nr=0.0, sharpen=0.0)
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


def photo() -> np.ndarray:
    with Image.open(SAMPLES / "clean" / "cbsd68-101087.png") as im:
        rgb = np.asarray(im.convert("RGB"), np.float64) / 255
    return rgb[: rgb.shape[0] // 2 * 2, : rgb.shape[1] // 2 * 2]


@pytest.mark.parametrize("phase", [(0, 0), (0, 1), (1, 0), (1, 1)])
def test_malvar_he_cutler_reconstructs_a_photo_better_than_bilinear(phase):
    """Their paper reports about 5.5 dB over bilinear on the Kodak set; on a sample photo, every Bayer phase."""
    rgb = photo()
    masks = _bayer_masks(*rgb.shape[:2], phase)
    mosaic = (rgb * masks).sum(axis=-1)
    def psnr(out):
        return -10 * np.log10(((out - rgb)[4:-4, 4:-4] ** 2).mean())
    assert np.allclose(demosaic_mhc(mosaic, masks) * masks, mosaic[..., None] * masks)  # samples kept as they are
    assert psnr(demosaic_mhc(mosaic, masks)) > psnr(demosaic_bilinear(mosaic, masks)) + 3.0


def white(shape=(128, 128, 3), sd=0.02, seed=0):
    return 0.5 + sd * np.random.default_rng(seed).standard_normal(shape)


def ycbcr(rgb):
    return rgb @ _RGB_TO_YCBCR.T


def test_chroma_noise_reduction_removes_colour_noise_and_keeps_luma():
    noisy = white()
    params = replace(draw_params(np.random.default_rng(0)), chroma_nr=2.0, luma_nr=0.0, sharpen=0.0)
    before, after = ycbcr(noisy - 0.5)[8:-8, 8:-8], ycbcr(in_camera_processing(noisy, params) - 0.5)[8:-8, 8:-8]
    ratio = after.var(axis=(0, 1)) / before.var(axis=(0, 1))
    assert ratio[0] == pytest.approx(1.0, abs=0.02)  # luma untouched
    assert ratio[1] < 0.05 and ratio[2] < 0.05  # a sigma-2 blur keeps about 1 / (4 pi 2^2) = 2% of white noise


def test_luma_noise_reduction_smooths_luma_only():
    noisy = white()
    params = replace(draw_params(np.random.default_rng(0)), chroma_nr=0.0, luma_nr=0.5, sharpen=0.0)
    before, after = ycbcr(noisy - 0.5)[8:-8, 8:-8], ycbcr(in_camera_processing(noisy, params) - 0.5)[8:-8, 8:-8]
    ratio = after.var(axis=(0, 1)) / before.var(axis=(0, 1))
    assert ratio[0] < 0.6 and ratio[1:] == pytest.approx([1.0, 1.0], abs=0.02)


def test_sharpening_amplifies_white_noise_by_its_kernels_gain():
    """Unsharp mask x + a (x - blur x) is the kernel (1 + a) delta - a g; white noise's variance grows by the
    sum of that kernel's squared taps."""
    amount = 0.8
    impulse = np.zeros((31, 31))
    impulse[15, 15] = 1.0
    kernel = (1 + amount) * impulse - amount * gaussian_blur(impulse, 1.0)
    noisy = white(sd=0.01)
    params = replace(draw_params(np.random.default_rng(0)), chroma_nr=0.0, luma_nr=0.0, sharpen=amount)
    gain = (in_camera_processing(noisy, params) - 0.5)[8:-8, 8:-8].var() / (noisy - 0.5)[8:-8, 8:-8].var()
    assert gain == pytest.approx((kernel ** 2).sum(), rel=0.05)
    assert gain > 1.5


def test_the_target_goes_through_the_same_in_camera_processing():
    """A camera smooths and sharpens its noise-free pictures too: without noise, noisy and target agree
    (up to 8-bit rounding), whatever the draw."""
    rgb = photo()[:64, :64]
    for seed in range(6):
        params = replace(draw_params(np.random.default_rng(seed)), shot=0.0, read=0.0, jpeg_quality=None)
        noisy, target, _ = camera_noise(rgb, np.random.default_rng(seed), params=params)
        assert np.abs(noisy - target).max() <= 0.5 / 255 + 1e-6
