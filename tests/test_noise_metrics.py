import numpy as np
import pytest

from denoise.errors import DenoiseError
from denoise.metrics import psnr_uint8, to_uint8
from denoise.noise import add_noise, estimate_sigma, parse_sigma


def test_parse_sigma_forms():
    assert parse_sigma("0.3") == pytest.approx(0.3)
    assert parse_sigma("25/255") == pytest.approx(25 / 255)
    for bad in ("abc", "1/0", "-0.1", "nan"):
        with pytest.raises(DenoiseError):
            parse_sigma(bad)


@pytest.mark.parametrize("sigma", [0.05, 0.2])
def test_protocol_statistics(sigma, rng):
    clean = np.full((256, 256, 3), 0.5, dtype=np.float32)  # far from 0 and 1: clipping is negligible
    for protocol in ("gaussian", "clip", "uint8"):
        noise = add_noise(clean, sigma, protocol, rng) - clean
        assert abs(noise.mean()) < 0.01
        assert noise.std() == pytest.approx(sigma, rel=0.03)
    uint8 = add_noise(clean, sigma, "uint8", rng)
    assert np.allclose(uint8 * 255, np.round(uint8 * 255), atol=1e-4)


def test_clip_and_gaussian_differ_at_the_edges(rng):
    clean = np.zeros((64, 64, 3), dtype=np.float32)
    assert add_noise(clean, 0.3, "gaussian", rng).min() < 0
    clipped = add_noise(clean, 0.3, "clip", rng)
    assert clipped.min() == 0 and clipped.max() <= 1


def test_estimate_sigma_on_flat_image(rng):
    clean = np.full((200, 200, 3), 0.5, dtype=np.float32)
    for sigma in (0.05, 0.1):
        assert estimate_sigma(add_noise(clean, sigma, "gaussian", rng)) == pytest.approx(sigma, rel=0.1)


def test_psnr_by_hand():
    a = np.zeros((4, 4, 3), dtype=np.uint8)
    b = a.copy()
    b[0, 0, 0] = 16  # mse = 256 / 48
    assert psnr_uint8(a, b) == pytest.approx(20 * np.log10(255 / np.sqrt(256 / 48)))
    assert psnr_uint8(a, a) == float("inf")
    assert to_uint8(np.array([-0.1, 0.5, 1.2])).tolist() == [0, 128, 255]


def test_ssim_by_hand():
    from denoise.metrics import ssim_uint8

    a = np.full((16, 16, 3), 100, np.uint8)
    b = np.full((16, 16, 3), 120, np.uint8)
    c1 = (0.01 * 255) ** 2
    # Flat images: no variance, so SSIM is the luminance term alone.
    assert ssim_uint8(a, b) == pytest.approx((2 * 100 * 120 + c1) / (100**2 + 120**2 + c1))
    texture = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert ssim_uint8(texture, texture) == pytest.approx(1.0)
    assert ssim_uint8(texture, 255 - texture) < 0  # anti-correlated structure
