"""Files people keep beyond PNG/JPEG: HEIC and AVIF round trips, and what cannot come back faithfully
(pages, frames, CMYK) refused with a message -- never `ok` with part of it dropped. Real files on disk,
the real CLI in a subprocess."""

import io
import json

import numpy as np
import pytest
from PIL import Image

from conftest import run_cli


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
        from denoise.runtime.images import heif_ready

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


def test_multi_page_and_animated_files_are_refused_not_cut(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    pages = [Image.fromarray(photo(i)) for i in range(3)]
    pages[0].save(src / "scan.tif", save_all=True, append_images=pages[1:])
    pages[0].save(src / "anim.gif", save_all=True, append_images=pages[1:], duration=[100, 200, 300], loop=0)
    pages[0].save(src / "anim.webp", save_all=True, append_images=pages[1:], duration=120, loop=0)
    pages[0].save(src / "anim.png", save_all=True, append_images=pages[1:], duration=150)
    Image.fromarray(photo(5)).save(src / "single.gif")  # one frame: denoised as usual
    result, records = run(src, tmp_path / "out")
    assert result.returncode == 3, result.stderr
    by_name = {r["path"].rsplit("/", 1)[1]: r for r in records}
    for name, kind in (("scan.tif", "3 pages"), ("anim.gif", "3 frames"), ("anim.webp", "3 frames"), ("anim.png", "3 frames")):
        assert by_name[name]["status"] == "failed" and kind in by_name[name]["error"], by_name[name]
        assert not (tmp_path / "out" / name).exists()
    assert by_name["single.gif"]["status"] == "ok" and (tmp_path / "out" / "single.gif").is_file()


def test_cmyk_is_refused_not_turned_into_rgb(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(photo()).convert("CMYK").save(src / "print.jpg", quality=95)
    Image.fromarray(photo()).convert("CMYK").save(src / "print.tif")
    result, records = run(src, tmp_path / "out")
    assert result.returncode == 3
    assert all(r["status"] == "failed" and "CMYK" in r["error"] for r in records) and len(records) == 2
    assert not list((tmp_path / "out").glob("print.*"))
