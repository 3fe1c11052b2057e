"""Files people keep beyond PNG/JPEG: HEIC and AVIF round trips, and what cannot come back faithfully
(pages, frames, CMYK) refused with a message -- never `ok` with part of it dropped. Real files on disk,
the real CLI in a subprocess."""

import json

import numpy as np
import pytest
from PIL import Image

from conftest import run_cli
from denoise.metrics import psnr_uint8


def photo(seed=0, size=(48, 64)):
    rng = np.random.default_rng(seed)
    base = np.linspace(40, 200, size[1], dtype=np.float32)[None, :, None] * np.ones((size[0], 1, 3), np.float32)
    return np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)


def exif_and_icc():
    exif = Image.Exif()
    exif[0x010F] = "denoise-test-camera"  # Make
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return exif.tobytes(), icc


def run(src, out):
    result = run_cli("batch", src, out, "--sigma", "0.1", "-q", "--backend", "cpu")
    records = [json.loads(line) for line in (out / "denoise-manifest.jsonl").read_text().splitlines()]
    return result, records


@pytest.mark.parametrize("suffix, fmt", [(".heic", "HEIF"), (".avif", "AVIF")])
def test_heic_and_avif_round_trip(suffix, fmt, tmp_path):
    if fmt == "HEIF":
        pytest.importorskip("pillow_heif", reason="pillow-heif (the cpu extra) is not installed")
        from denoise.image_files import heif_ready

        heif_ready()
    exif, icc = exif_and_icc()
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(photo()).save(src / f"shot{suffix}", format=fmt, quality=90, exif=exif, icc_profile=icc)
    result, records = run(src, tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert [r["status"] for r in records] == ["ok"]
    with Image.open(tmp_path / "out" / f"shot{suffix}") as im:
        assert im.format == fmt and im.mode == "RGB" and im.size == (64, 48)
        assert im.getexif().get(0x010F) == "denoise-test-camera" and im.info.get("icc_profile") == icc
        if fmt == "HEIF":
            assert int(im.info.get("bit_depth", 8)) == 8
        out = np.asarray(im.convert("RGB"), dtype=np.float32)
    noisy = photo().astype(np.float32)
    assert out.std(axis=0).mean() < noisy.std(axis=0).mean()  # the column noise went down


def test_every_page_and_frame_comes_back_denoised_with_its_timing(tmp_path):
    """A 3-page TIFF, and animated GIF / WebP / PNG: all frames denoised (each as a whole-image run would),
    in order, with their durations and loop count; into JPEG such a file fails with a message."""
    src = tmp_path / "in"
    src.mkdir()
    pages = [Image.fromarray(photo(i)) for i in range(3)]
    durations = [100, 200, 300]
    pages[0].save(src / "scan.tif", save_all=True, append_images=pages[1:])
    for name in ("anim.gif", "anim.webp", "anim.png"):
        pages[0].save(src / name, save_all=True, append_images=pages[1:], duration=durations, loop=0,
                      **({"lossless": True} if name.endswith("webp") else {}))
    result, records = run(src, tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert all(r["status"] == "ok" and r["frames"] == 3 for r in records), records
    from denoise import Denoiser

    with Denoiser(backend="cpu") as denoiser:
        for name in ("scan.tif", "anim.gif", "anim.webp", "anim.png"):
            with Image.open(src / name) as noisy, Image.open(tmp_path / "out" / name) as clean:
                assert clean.n_frames == 3 and clean.format == noisy.format, name
                for index in range(3):
                    noisy.seek(index)
                    clean.seek(index)
                    clean.load()
                    if name != "scan.tif":
                        assert clean.info.get("duration") == durations[index], (name, index, clean.info)
                    want = denoiser.denoise(np.asarray(noisy.convert("RGB")), 0.1)
                    got = np.asarray(clean.convert("RGB"))
                    if name.endswith((".tif", ".png")):  # lossless: the whole-image result, to rounding
                        assert np.abs(got.astype(int) - want.astype(int)).max() <= 1, (name, index)
                    else:  # WebP at quality 95, GIF re-quantized to 256 colours: close to it
                        floor = {"anim.webp": 35, "anim.gif": 25}[name]
                        assert psnr_uint8(want, got) > floor, (name, index, psnr_uint8(want, got))
                if name != "scan.tif":
                    assert clean.info.get("loop") == 0
    as_jpeg = run_cli("batch", src / "anim.webp", tmp_path / "one.jpg", "--sigma", "0.1")
    assert as_jpeg.returncode == 3 and not (tmp_path / "one.jpg").exists()
    assert "3 frames" in as_jpeg.stderr and "JPEG holds one image" in as_jpeg.stderr  # one file to a named file: no manifest
    assert not (tmp_path / "denoise-manifest.jsonl").exists()


def test_multi_page_16_bit_tiff_is_refused(tmp_path):
    import tifffile

    src = tmp_path / "in"
    src.mkdir()
    tifffile.imwrite(src / "deep.tif", np.zeros((3, 16, 16, 3), np.uint16), photometric="rgb")
    result, records = run(src, tmp_path / "out")
    assert result.returncode == 3 and "3 pages" in records[0]["error"] and not (tmp_path / "out" / "deep.tif").exists()


def test_cmyk_stays_cmyk_with_its_profile(tmp_path):
    """CMYK JPEG and TIFF come back CMYK with their ICC profile: the C, M, Y planes (inverted) denoised as one
    colour image -- exactly the RGB result when there is no black ink -- and K as a grey one."""
    from denoise import Denoiser

    _, icc = exif_and_icc()  # any profile: what is checked is that the file's own comes back
    src = tmp_path / "in"
    src.mkdir()
    rgb = photo()
    rng = np.random.default_rng(3)
    ink = np.concatenate([255 - rgb, np.clip(60 + rng.normal(0, 20, rgb.shape[:2] + (1,)), 0, 255).astype(np.uint8)], axis=2)
    Image.fromarray(ink, "CMYK").save(src / "print.tif", icc_profile=icc)
    Image.fromarray(ink, "CMYK").save(src / "print.jpg", quality=95, icc_profile=icc)
    result, records = run(src, tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert [r["status"] for r in records] == ["ok", "ok"] and "frames" not in records[0]
    with Denoiser(backend="cpu") as denoiser:
        with Image.open(tmp_path / "out" / "print.tif") as im:
            assert im.mode == "CMYK" and im.info.get("icc_profile") == icc and im.size == (64, 48)
            got = np.asarray(im)
        want_cmy = 255 - denoiser.denoise(rgb, 0.1)
        want_k = 255 - denoiser.denoise(255 - ink[..., 3], 0.1)
    assert np.abs(got[..., :3].astype(int) - want_cmy).max() <= 1
    assert np.abs(got[..., 3].astype(int) - want_k).max() <= 1
    assert got[..., 3].std() < ink[..., 3].std()  # the black plane's noise went down too
    with Image.open(tmp_path / "out" / "print.jpg") as im:
        assert im.mode == "CMYK" and im.info.get("icc_profile") == icc
    as_png = run_cli("batch", src / "print.tif", tmp_path / "print.png", "--sigma", "0.1")
    assert as_png.returncode == 3 and not (tmp_path / "print.png").exists()


def test_deep_heic_and_avif_are_refused_not_cut_to_8_bits(tmp_path):
    """10-bit HEIC (from pillow-heif) and an AVIF whose 'pixi' box says 10 bits (Pillow cannot write one: the
    8-bit file's box is patched, which is what the check reads): refused, not silently made 8-bit."""
    pillow_heif = pytest.importorskip("pillow_heif", reason="pillow-heif (the cpu extra) is not installed")
    src = tmp_path / "in"
    src.mkdir()
    deep = np.random.default_rng(0).integers(0, 65535, (32, 40, 3)).astype(np.uint16)
    pillow_heif.from_bytes(mode="RGB;16", size=(40, 32), data=deep.tobytes()).save(src / "deep.heic", quality=90)
    Image.fromarray(photo()).save(src / "deep.avif", quality=90)
    data = bytearray((src / "deep.avif").read_bytes())
    at = data.find(b"pixi")
    assert data[at + 8] == 3 and data[at + 9:at + 12] == b"\x08\x08\x08"
    data[at + 9:at + 12] = b"\x0a\x0a\x0a"
    (src / "deep.avif").write_bytes(bytes(data))
    result, records = run(src, tmp_path / "out")
    assert result.returncode == 3 and len(records) == 2
    assert all(r["status"] == "failed" and "10-bit" in r["error"] for r in records), records
    assert not list((tmp_path / "out").glob("deep.*"))
