"""Camera RAW files in, through the real LibRaw (rawpy) and the real CLI in a subprocess.

No RAW files of real cameras can be fetched here, so the tests make them: a crop of a clean photo (samples/clean)
is unprocessed by the camera protocol (denoise.camera_noise: its colour matrix, white balance and brightness taken
out) to a Bayer mosaic, given the protocol's Poisson-Gaussian noise or none, and written as a DNG with the
protocol's matrix, as-shot neutral, black and white levels and an EXIF (camera, exposure, ISO, date, GPS); LibRaw
reads it like a camera's. The reference for a noisy file is the same mosaic without noise, developed the same way.

rawpy is in the dev extra, so CI runs these; elsewhere they skip without it, unless DENOISE_REQUIRE_DATA=1 (as CI
sets it), which makes the skip a failure.
"""

import json
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image, TiffTags

from conftest import REPO, SAMPLES, run_cli
from denoise.camera_noise import _bayer_masks, _unprocess, draw_params
from denoise.linear_dng import LIBRAW_XYZ_RGB
from denoise.tiff_writer import EXIF_IFD, GPS_IFD, SHORT, tiff_bytes

if os.environ.get("DENOISE_REQUIRE_DATA") == "1":
    import rawpy  # noqa: F401  CI installs the dev extra, which has rawpy: its absence is a failure there
else:
    rawpy = pytest.importorskip("rawpy", reason="rawpy (the `raw` extra) is not installed: pip install 'denoise[raw]'")

BLACK, WHITE = 512, 16383  # a 14-bit sensor's levels
SIZE = (128, 192)
CAMERA = ("Denoise", "Test Camera 1")
EXPOSURE = {0x8827: 3200, 0x829A: 1 / 125, 0x829D: 2.8, 0x9003: "2024:05:06 07:08:09"}  # ISO, time, f-number, date
GPS = {1: "N", 2: (48.0, 51.0, 30.0), 3: "E", 4: (2.0, 17.0, 40.0)}


def clean_photo(top: int = 60, left: int = 100) -> np.ndarray:
    with Image.open(SAMPLES / "clean" / "cbsd68-21077.png") as im:
        pixels = np.asarray(im.convert("RGB"), np.float64) / 255.0
    return pixels[top:top + SIZE[0], left:left + SIZE[1]]


def cfa_pattern(phase: tuple[int, int]) -> bytes:
    """The DNG CFAPattern (0 red, 1 green, 2 blue) of the protocol's mosaic at ``phase``, row by row."""
    return bytes(int(c) for c in _bayer_masks(2, 2, phase).argmax(axis=-1).ravel())


def write_bayer_dng(path, photo: np.ndarray, params, noise_seed: int | None, exif: dict = EXPOSURE):
    """``photo`` unprocessed by the camera ``params`` to a mosaic (noisy when ``noise_seed`` is given), as a DNG."""
    linear = _unprocess(photo, params)
    mosaic = (linear * _bayer_masks(*photo.shape[:2], params.bayer_phase)).sum(axis=-1)
    if noise_seed is not None:
        noise = np.random.default_rng(noise_seed).standard_normal(mosaic.shape)
        mosaic = mosaic + np.sqrt(params.shot * mosaic + params.read) * noise
    return write_dng(path, mosaic, params, exif)


def write_dng(path, mosaic: np.ndarray, params, exif: dict = EXPOSURE):
    """A Bayer DNG of ``mosaic`` ([0,1] of the sensor's range) with the camera ``params``' pattern, matrix and
    white balance."""
    values = np.clip(np.round(BLACK + mosaic * (WHITE - BLACK)), 0, WHITE).astype(np.uint16)
    camera_rgb = np.linalg.inv(params.rgb_to_cam)  # the protocol's rgb_to_cam takes camera RGB to linear sRGB
    tags = {254: (TiffTags.LONG, 0), 262: (SHORT, 32803), 274: (SHORT, 1), 33421: (SHORT, (2, 2)),
            33422: (TiffTags.BYTE, cfa_pattern(params.bayer_phase)), 50706: (TiffTags.BYTE, bytes((1, 4, 0, 0))),
            50708: (TiffTags.ASCII, " ".join(CAMERA)), 50714: (TiffTags.LONG, BLACK), 50717: (TiffTags.LONG, WHITE),
            50721: (TiffTags.SIGNED_RATIONAL, tuple((camera_rgb @ np.linalg.inv(LIBRAW_XYZ_RGB)).ravel())),
            50778: (SHORT, 21), 50728: (TiffTags.RATIONAL, (1 / params.red_gain, 1.0, 1 / params.blue_gain))}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tiff_bytes(values, tags, exif_block(exif)))
    return path


def exif_block(exposure: dict) -> bytes:
    exif = Image.Exif()
    exif[271], exif[272] = CAMERA
    exif.get_ifd(EXIF_IFD).update(exposure)
    exif.get_ifd(GPS_IFD).update(GPS)
    return exif.tobytes()


def camera(phase, sigma, seed=7, **fields):
    return replace(draw_params(np.random.default_rng(seed), sigma), bayer_phase=phase, **fields)


def develop(path) -> np.ndarray:
    from denoise.raw_files import read_raw

    return read_raw(path).pixels


def even_photo(path) -> np.ndarray:
    """A clean photo as float64 [0,1], cut to even sides (whole 2x2 Bayer cells)."""
    from denoise.image_files import read_image

    pixels = read_image(path).pixels.astype(np.float64) / 255.0
    return pixels[:pixels.shape[0] // 2 * 2, :pixels.shape[1] // 2 * 2]


def dng_twins(noisy, clean, pixels: np.ndarray, params, noise_seed: int) -> np.ndarray:
    """``pixels`` as a noisy DNG at ``noisy`` and a noise-free one at ``clean`` (the same camera); the noise-free
    one's development, the reference a gain is measured against (also benchmarks/raw_gain.py, raw_levels.py and
    scripts/raw_pairs.py)."""
    write_bayer_dng(noisy, pixels, params, noise_seed=noise_seed)
    return develop(write_bayer_dng(clean, pixels, params, None))


def gain_test_raws(src, clean) -> dict[str, np.ndarray]:
    """The four noisy DNGs of the gain test (two Bayer phases, sigma 0.05 and 0.1) written into ``src``, each with
    its noise-free twin in ``clean``; {name: the twin's development}, what the gain is measured against (also
    benchmarks/raw_gain.py)."""
    photo, references = clean_photo(), {}
    for phase in ((0, 0), (1, 0)):
        for sigma in (0.05, 0.1):
            name = f"IMG_{phase[0]}{phase[1]}_{round(sigma * 100):02d}"
            references[name] = dng_twins(src / f"{name}.dng", clean / f"{name}.dng", photo, camera(phase, sigma), 1)
    return references


def psnr16(reference: np.ndarray, test: np.ndarray) -> float:
    error = np.mean((reference.astype(np.float64) - test.astype(np.float64)) ** 2) / 65535.0 ** 2
    return float(10 * np.log10(1.0 / error))


def raw_model_backend() -> str:
    """What the bundled RAW model runs as with defaults on the CPU: its INT8 sibling wherever this CPU runs INT8 (VNNI,
    or AVX2, whose 16-bit sums the sibling's card proves it cannot saturate: runtime.precision), else FP32."""
    from denoise.runtime.precision import int8_instructions

    return "onnxruntime-cpu-int8 RAW model" if int8_instructions() else "onnxruntime-cpu RAW model"


def manifest(out) -> dict:
    return {json.loads(line)["path"].split("/")[-1]: json.loads(line)
            for line in (out / "denoise-manifest.jsonl").read_text().splitlines()}


def tiff_metadata(path) -> tuple[dict, dict, dict, bytes]:
    """(IFD0's tags, the Exif IFD, the GPS IFD, the ICC profile) of a TIFF or DNG, read by tifffile."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        tags = {tag.code: tag.value for tag in tif.pages[0].tags}
    return tags, tags.get(EXIF_IFD, {}), tags.get(GPS_IFD, {}), tags.get(34675, b"")


def test_batch_develops_and_denoises_raws_into_16_bit_tiffs_with_their_exif(tmp_path):
    """Four DNGs (two Bayer phases, two noise levels) through `denoise batch` with its defaults: 16-bit TIFFs,
    each closer to the same mosaic developed without noise than the noisy development is, with the RAW's EXIF, an
    sRGB ICC profile, and the camera and ISO in the manifest beside the level found."""
    src, out = tmp_path / "raws", tmp_path / "out"
    references = gain_test_raws(src, tmp_path / "clean")
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    result = run_cli("batch", src, out, "--backend", "cpu")
    assert result.returncode == 0, result.stderr
    assert f"; RAWs: {raw_model_backend()})" in result.stderr.splitlines()[-1]  # the summary names both models' runs
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before
    records = manifest(out)
    import tifffile
    from PIL import ImageCms

    gains = {}
    for name, reference in references.items():
        noisy = develop(src / f"{name}.dng")
        denoised = tifffile.imread(out / f"{name}.tif")
        assert denoised.dtype == np.uint16 and denoised.shape == (*SIZE, 3)
        gains[name] = psnr16(reference, denoised) - psnr16(reference, noisy)
        ifd0, exif, gps, icc = tiff_metadata(out / f"{name}.tif")
        assert (ifd0[271], ifd0[272]) == CAMERA
        assert exif["ISOSpeedRatings"] == 3200 and exif["ExposureTime"] == pytest.approx(1 / 125) and exif["FNumber"] == 2.8
        assert exif["DateTimeOriginal"] == EXPOSURE[0x9003] and gps["GPSLatitudeRef"] == "N"
        assert "sRGB" in ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(__import__("io").BytesIO(icc)))
        record = records[f"{name}.dng"]
        assert record["status"] == "ok" and record["output"].endswith(f"{name}.tif")
        assert record["camera"] == " ".join(CAMERA) and record["iso"] == 3200 and record["sigma_estimated"]
        assert 0 < record["sigma"] < 0.2
        # The level came from the mosaic: its noise fit, within 25% of the sensor's shot noise (raw_noise).
        sensor = camera((int(name[4]), int(name[5])), int(name[-2:]) / 100)
        assert abs(record["raw_noise"]["shot"] / sensor.shot - 1) < 0.25, (record["raw_noise"], sensor.shot)
        assert record["backend"] == raw_model_backend()  # the bundled RAW model
    # The 3 dB: with the level read from the mosaic the RAW model gives +3.35 to +3.45 dB at sigma 0.05
    # and +6.0 at 0.1 on these smooth crops, less on whole photos (README, Camera RAW; benchmarks/raw_gain.py [--photos])
    assert min(gains.values()) > 3.0, gains


def test_a_raw_runs_on_the_raw_model_from_python_as_in_batch_and_on_a_given_model_without_it(tmp_path):
    """Denoiser.denoise_raw gives what `denoise batch` writes, bit for bit; `--precision fp32` runs the RAW model's
    FP32 file, which the INT8 sibling stays close to; with --model given, a RAW runs on that model (at NEEDED_LEVEL
    of the same map), not on the bundled RAW model, and still gains."""
    import tifffile

    from denoise import Denoiser
    from denoise.raw_files import read_raw
    from denoise.weights import DEFAULT_MODEL

    src, out, general = tmp_path / "raws", tmp_path / "out", tmp_path / "general"
    references = gain_test_raws(src, tmp_path / "clean")
    name = "IMG_00_10"
    assert run_cli("batch", src, out, "--backend", "cpu").returncode == 0
    image = read_raw(src / f"{name}.dng")
    with Denoiser(backend="cpu") as denoiser:
        assert np.array_equal(denoiser.denoise_raw(image.pixels, image.raw), tifffile.imread(out / f"{name}.tif"))
    fp32 = tmp_path / "fp32"
    result = run_cli("batch", src, fp32, "--backend", "cpu", "--precision", "fp32")
    assert result.returncode == 0, result.stderr
    assert manifest(fp32)[f"{name}.dng"]["backend"] == "onnxruntime-cpu RAW model"
    for each in references:  # INT8 within 0.1 dB of FP32 (BENCHMARKS: RAW, its INT8 sibling)
        on_fp32, on_default = (tifffile.imread(folder / f"{each}.tif") for folder in (fp32, out))
        assert abs(psnr16(references[each], on_default) - psnr16(references[each], on_fp32)) < 0.1, each
    result = run_cli("batch", src, general, "--backend", "cpu", "--model", DEFAULT_MODEL, "--precision", "fp32")
    assert result.returncode == 0, result.stderr
    record = manifest(general)[f"{name}.dng"]
    assert record["backend"] == "onnxruntime-cpu" and "raw_noise" in record
    on_general = tifffile.imread(general / f"{name}.tif")
    assert not np.array_equal(on_general, tifffile.imread(out / f"{name}.tif"))
    assert psnr16(references[name], on_general) > psnr16(references[name], image.pixels) + 3.0


def test_a_model_that_cannot_tile_as_the_denoiser_is_refused_as_raw_model_in_one_line(tmp_path):
    from denoise import Denoiser, DenoiseError
    from denoise.raw_files import read_raw
    from denoise.weights import DEFAULT_ESTIMATOR

    gain_test_raws(tmp_path / "raws", tmp_path / "clean")
    image = read_raw(tmp_path / "raws" / "IMG_00_05.dng")
    with Denoiser(backend="cpu", raw_model=DEFAULT_ESTIMATOR) as denoiser:
        with pytest.raises(DenoiseError, match="cannot be the RAW model"):
            denoiser.denoise_raw(image.pixels, image.raw)
    with pytest.raises(DenoiseError, match="does not exist"):
        Denoiser(backend="cpu", raw_model=tmp_path / "none.onnx")


@pytest.mark.parametrize("level", [0.2, 0.8])
def test_the_development_is_srgb_and_never_brightened_by_the_data(tmp_path, level):
    """A flat grey mosaic at ``level`` of the sensor's range (a camera whose matrix and white balance change
    nothing) develops to exactly the sRGB encoding of ``level``: the stated colour space, and no brightness that
    depends on the data. LibRaw's defaults would brighten the 0.8 one to white (adjust_maximum_thr 0.75 takes the
    brightest pixels found for white), so a clean mosaic would develop brighter than the same one with noise."""
    neutral = camera((0, 0), 0.05, rgb_to_cam=np.eye(3), red_gain=1.0, blue_gain=1.0)
    developed = develop(write_dng(tmp_path / "grey.dng", np.full(SIZE, level), neutral)) / 65535
    srgb = 1.055 * level ** (1 / 2.4) - 0.055
    assert np.abs(developed[4:-4, 4:-4] - srgb).max() < 0.001, (developed.mean(axis=(0, 1)), srgb)


def test_linear_dng_develops_back_to_the_denoised_image(tmp_path):
    """`--format dng`: LibRaw develops the linear DNG, with the settings the RAW was developed with, back to the
    denoised TIFF of the same file within 1/1000 of full scale -- where the DNG holds no clipped value (the
    development clips at white after white balance and at black, as it did the first time: those pixels are
    counted, and few); the DNG has the source's white balance, colour matrix, camera and EXIF. The camera is
    exposed darker than the protocol's draw, as a photographer keeping highlights would."""
    src = tmp_path / "raws"
    params = camera((0, 1), 0.05, brightness=1.6)
    write_bayer_dng(src / "IMG_0001.dng", clean_photo(), params, noise_seed=2)
    tiff_run = run_cli("batch", src, tmp_path / "tif", "--backend", "cpu", "-q")
    dng_run = run_cli("batch", src, tmp_path / "dng", "--backend", "cpu", "-q", "--format", "dng")
    assert tiff_run.returncode == 0 and dng_run.returncode == 0, tiff_run.stderr + dng_run.stderr
    import tifffile
    from denoise.raw_files import develop_options

    denoised = tifffile.imread(tmp_path / "tif" / "IMG_0001.tif").astype(np.float64)
    with rawpy.imread(str(src / "IMG_0001.dng")) as source:
        balance, matrix = source.camera_whitebalance, source.color_matrix
    with rawpy.imread(str(tmp_path / "dng" / "IMG_0001.dng")) as dng:
        assert dng.raw_type == rawpy.RawType.Stack and dng.num_colors == 3  # linear: three values per pixel
        assert np.allclose(dng.camera_whitebalance, balance, rtol=1e-5)
        assert np.allclose(dng.color_matrix, matrix, atol=1e-4)
        multipliers = np.array(dng.camera_whitebalance[:3]) / min(dng.camera_whitebalance[:3])
        stored = dng.raw_image.astype(np.float64)[..., :3]
        clipped = ((stored == 0) | (stored * multipliers >= 65535)).any(axis=-1)
        back = dng.postprocess(**develop_options(rawpy)).astype(np.float64)
    error = np.abs(back - denoised).max(axis=-1) / 65535
    assert clipped.mean() < 0.001 and error[~clipped].max() < 0.001, (clipped.mean(), error[~clipped].max())
    from denoise.raw_files import read_raw

    assert read_raw(tmp_path / "dng" / "IMG_0001.dng").raw.noise is None  # no mosaic: the estimator reads its level
    ifd0, exif, _, _ = tiff_metadata(tmp_path / "dng" / "IMG_0001.dng")
    assert (ifd0[271], ifd0[272]) == CAMERA and exif["ISOSpeedRatings"] == 3200
    assert manifest(tmp_path / "dng")["IMG_0001.dng"]["output"].endswith("IMG_0001.dng")


def test_while_libraw_reads_only_its_own_lines_about_the_file_are_held_back(tmp_path):
    """libraw_lines_held, in a real process: a line LibRaw would print about the file (written to file descriptor 2
    as C code does) is dropped; another line written meanwhile, and Python's own stderr, come through."""
    code = ("import os, sys; from denoise.raw_files import libraw_lines_held\n"
            "print('before', file=sys.stderr)\n"
            "with libraw_lines_held('/x/cut.dng'):\n"
            "    os.write(2, b'/x/cut.dng: Unexpected end of file\\n'); os.write(2, b'another thread\\n')\n"
            "print('after', file=sys.stderr)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0 and result.stderr == "before\nanother thread\nafter\n", result.stderr


def test_bad_raws_fail_with_one_line_each_and_the_run_goes_on(tmp_path):
    """A truncated DNG and a JPEG renamed .NEF fail with one line each (exit 3), the good RAW is written (here as a
    JPEG, with its EXIF), a `--format dng` of a JPEG input fails with a line, and nothing is lost."""
    src, out = tmp_path / "raws", tmp_path / "out"
    good = write_bayer_dng(src / "good.dng", clean_photo(), camera((0, 0), 0.05), noise_seed=3)
    (src / "cut.dng").write_bytes(good.read_bytes()[:20000])
    Image.fromarray((clean_photo() * 255).astype(np.uint8)).save(src / "IMG_2.NEF", format="JPEG")
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    result = run_cli("batch", src, out, "--backend", "cpu", "--format", "jpg")
    assert result.returncode == 3, result.stderr
    failed = [line for line in result.stderr.splitlines() if line.startswith("failed")]
    assert len(failed) == 2 and "Traceback" not in result.stderr, result.stderr
    assert "Unexpected end of file" not in result.stderr, result.stderr  # LibRaw's own line is not passed on
    assert any("cut.dng" in line and "cut short" in line for line in failed)
    assert any("IMG_2.NEF" in line and "not RAW" in line for line in failed)
    records = manifest(out)
    assert records["cut.dng"]["status"] == records["IMG_2.NEF"]["status"] == "failed"
    assert records["good.dng"]["status"] == "ok"
    with Image.open(out / "good.jpg") as im:
        assert im.format == "JPEG" and im.getexif().get(272) == CAMERA[1]
        assert im.getexif().get_ifd(EXIF_IFD).get(0x8827) == 3200
    assert sorted(p.name for p in out.iterdir()) == ["denoise-manifest.jsonl", "good.jpg"]  # no partial files
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before

    # One RAW to a named 16-bit PNG: its EXIF and ICC profile go along there too (eXIf and iCCP chunks).
    assert run_cli("batch", good, tmp_path / "good.png", "--backend", "cpu", "-q").returncode == 0
    with Image.open(tmp_path / "good.png") as im:
        assert im.info.get("icc_profile") and im.getexif().get(272) == CAMERA[1]
    import png

    assert png.Reader(filename=str(tmp_path / "good.png")).read()[3]["bitdepth"] == 16

    photos = tmp_path / "photos"
    Image.fromarray((clean_photo() * 255).astype(np.uint8)).save(photos.mkdir() or photos / "a.png")
    result = run_cli("batch", photos, tmp_path / "dng", "--backend", "cpu", "--format", "dng", "--sigma", "0.05")
    assert result.returncode == 3 and "camera RAW inputs only" in result.stderr
    assert not (tmp_path / "dng" / "a.dng").exists()


def test_a_raw_and_a_tiff_of_the_same_name_make_one_output(tmp_path):
    """IMG_1.dng develops to IMG_1.tif, which the TIFF beside it would also write: the first is done and the
    other is skipped with the reason, rather than one output replacing the other."""
    src = tmp_path / "raws"
    write_bayer_dng(src / "IMG_1.dng", clean_photo(), camera((0, 0), 0.05), noise_seed=5)
    Image.fromarray((clean_photo() * 255).astype(np.uint8)).save(src / "IMG_1.tif")
    result = run_cli("batch", src, tmp_path / "out", "--backend", "cpu", "--dry-run")
    assert result.returncode == 0, result.stderr
    lines = sorted(result.stdout.splitlines())
    assert lines[0].startswith("skipped") and "IMG_1.tif" in lines[0] and "same output name" in lines[0], lines
    assert lines[1].startswith("would denoise") and "IMG_1.dng -> " in lines[1] and lines[1].endswith("IMG_1.tif")


def without_rawpy(*args) -> subprocess.CompletedProcess:
    """The real CLI in a subprocess where ``import rawpy`` fails, as it does without the `raw` extra: rawpy is
    installed here, so a None in sys.modules stands in for its absence (Python's own way to block an import)."""
    code = ("import sys; sys.modules['rawpy'] = None; from denoise.cli import run; "
            f"sys.argv = ['denoise', *{[str(a) for a in args]!r}]; run()")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)


def test_without_the_raw_extra_a_raw_says_which_extra_to_install(tmp_path):
    src, out = tmp_path / "raws", tmp_path / "out"
    write_bayer_dng(src / "IMG_1.dng", clean_photo(), camera((0, 0), 0.05), noise_seed=4)
    write_png = Image.fromarray((clean_photo() * 255).astype(np.uint8)).save
    write_png(src / "photo.png")
    result = without_rawpy("batch", src, out, "--backend", "cpu", "--sigma", "0.05")
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 1 and "pip install 'denoise[raw]'" in result.stderr, result.stderr
    assert not out.exists() or not [p for p in out.iterdir()]  # nothing half done: the run did not start
    info = without_rawpy("info")
    assert info.returncode == 0 and "camera RAW" in info.stdout and "not installed" in info.stdout


def test_info_names_libraw_and_its_version():
    result = run_cli("info", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    raw = report["raw"]
    assert raw["libraw"] == ".".join(map(str, rawpy.libraw_version)) and ".nef" in raw["suffixes"]
    runs = "INT8" if "int8" in raw_model_backend() else "FP32"  # the bundled RAW model, in this CPU's precision
    assert report["bundled_raw_model"]["cpu_int8"]["auto_runs"] == runs.lower()
    text = run_cli("info").stdout
    assert "RAW model (camera RAWs whose mosaic is fitted, --sigma auto)" in text and f"{runs} on this CPU" in text


def tiff_block(tags: dict) -> bytes:
    """A TIFF block whose IFD0 holds ``tags`` (what a CR3's CMT boxes hold)."""
    exif = Image.Exif()
    exif.update(tags)
    return exif.tobytes()[6:]


def box(name: bytes, payload: bytes) -> bytes:
    return (len(payload) + 8).to_bytes(4, "big") + name + payload


@pytest.mark.parametrize("container", ["ORF", "RW2", "CR3", "RAF"])
def test_exif_is_found_in_the_containers_of_other_cameras(tmp_path, container):
    """Where the camera, exposure and GPS lie in RAW containers that are not plain TIFF, built to their published
    layouts (no camera files can be had here): ORF and RW2 are TIFF with magic numbers of their own; a CR3 keeps
    TIFF blocks in its CMT1 (IFD0), CMT2 (Exif) and CMT4 (GPS) boxes; a RAF points at a preview JPEG at byte 84."""
    from denoise.raw_files import file_exif

    if container in ("ORF", "RW2"):
        tiff = write_bayer_dng(tmp_path / "raw.dng", clean_photo(), camera((0, 0), 0.05), None).read_bytes()
        data = (b"IIRO" if container == "ORF" else b"IIU\0") + tiff[4:]
    elif container == "CR3":
        boxes = box(b"CMT1", tiff_block(dict(zip((271, 272), CAMERA)))) + box(b"CMT2", tiff_block(EXPOSURE))
        data = box(b"ftyp", b"crx " + bytes(12)) + box(b"moov", boxes + box(b"CMT4", tiff_block(GPS)))
    else:
        preview = __import__("io").BytesIO()
        Image.new("RGB", (8, 8)).save(preview, format="JPEG", exif=exif_block(EXPOSURE))
        head = b"FUJIFILMCCD-RAW 0201FF383501".ljust(84, b"\0")
        data = head + (100).to_bytes(4, "big") + len(preview.getvalue()).to_bytes(4, "big")
        data = data.ljust(100, b"\0") + preview.getvalue()
    ifd0, exif, gps = file_exif(data)
    assert (ifd0[271], ifd0[272]) == CAMERA
    assert exif[0x8827] == 3200 and exif[0x9003] == EXPOSURE[0x9003] and gps[1] == "N"
