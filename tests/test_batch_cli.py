"""`denoise batch`, `eval` and `info` as real subprocesses on real files, with the bundled model."""

import json

import numpy as np
import pytest
from PIL import Image

from conftest import SAMPLES, run_cli, write_png
from denoise.metrics import psnr_uint8, ssim_uint8


def load(path):
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")), im.size, im.mode


def test_batch_improves_every_sample(tmp_path):
    out = tmp_path / "clean"
    # FP32 said, not auto (INT8 on AVX2 and VNNI CPUs alike; tests/test_int8.py runs that): the same on any CPU
    result = run_cli("batch", SAMPLES / "noisy", out, "--sigma", "0.1", "--precision", "fp32")
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in (SAMPLES / "noisy").glob("*.png"))
    assert sorted(p.name for p in out.glob("*.png")) == names
    for name in names:
        clean, _, _ = load(SAMPLES / "clean" / name)
        noisy, noisy_size, noisy_mode = load(SAMPLES / "noisy" / name)
        denoised, size, mode = load(out / name)
        assert (size, mode) == (noisy_size, noisy_mode)
        assert psnr_uint8(clean, denoised) > psnr_uint8(clean, noisy) + 1.0, name
    records = [json.loads(line) for line in (out / "denoise-manifest.jsonl").read_text().splitlines()]
    assert [r["status"] for r in records] == ["ok"] * len(names)
    # the backend auto chose on this machine (onnxruntime-cpu on any CPU; a GPU machine's may differ), one for all
    assert len({r["backend"] for r in records}) == 1 and all(r["sigma"] == 0.1 for r in records)
    assert records[0]["backend"] in ("onnxruntime-cpu", "onnxruntime-cuda", "tensorrt", "torch-cuda-fp16")


def test_rerun_skips_done_and_json_summary(tmp_path):
    src = tmp_path / "in"
    write_png(src / "a.png", np.full((20, 30, 3), 128, np.uint8))
    write_png(src / "sub" / "b.png", np.full((9, 7, 3), 60, np.uint8))
    first = run_cli("batch", src, tmp_path / "out", "--sigma", "25/255", "--json", "-q")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["ok"] == 2
    assert (tmp_path / "out" / "sub" / "b.png").is_file()  # the tree is mirrored
    second = run_cli("batch", src, tmp_path / "out", "--sigma", "25/255", "--json", "-q")
    summary = json.loads(second.stdout)
    assert second.returncode == 0 and summary["ok"] == 0 and summary["skipped"] == 2


def test_modes_are_kept(tmp_path, rng):
    src = tmp_path / "in"
    gray = rng.integers(0, 256, (24, 24), dtype=np.uint8)
    rgba = rng.integers(0, 256, (16, 18, 4), dtype=np.uint8)
    write_png(src / "gray.png", gray, "L")
    write_png(src / "alpha.png", rgba, "RGBA")
    Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(src / "photo.jpg", quality=90)
    result = run_cli("batch", src, tmp_path / "out", "--sigma", "0.1")
    assert result.returncode == 0, result.stderr
    with Image.open(tmp_path / "out" / "gray.png") as im:
        assert im.mode == "L" and im.size == (24, 24)
    with Image.open(tmp_path / "out" / "alpha.png") as im:
        assert im.mode == "RGBA"
        assert np.array_equal(np.asarray(im)[..., 3], rgba[..., 3])  # alpha passed through untouched
    with Image.open(tmp_path / "out" / "photo.jpg") as im:
        assert im.format == "JPEG" and im.size == (12, 12)


def test_bad_file_is_reported_and_the_batch_goes_on(tmp_path):
    src = tmp_path / "in"
    write_png(src / "good.png", np.full((10, 10, 3), 200, np.uint8))
    (src / "broken.png").write_bytes(b"this is not a png")
    (src / "empty.jpg").write_bytes(b"")
    (src / "notes.txt").write_text("not an image")
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    result = run_cli("batch", src, tmp_path / "out", "--sigma", "0.1")
    assert result.returncode == 3
    assert "broken.png" in result.stderr and "empty.jpg" in result.stderr
    assert (tmp_path / "out" / "good.png").is_file()
    assert not (tmp_path / "out" / "broken.png").exists()
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before  # inputs untouched
    records = {json.loads(line)["path"].split("/")[-1]: json.loads(line)
               for line in (tmp_path / "out" / "denoise-manifest.jsonl").read_text().splitlines()}
    assert records["broken.png"]["status"] == "failed" and records["broken.png"]["error"]
    assert records["notes.txt"]["status"] == "skipped"
    assert records["good.png"]["status"] == "ok"
    assert not list((tmp_path / "out").glob(".*part"))  # no temporary files left behind


@pytest.mark.parametrize("args, code, words", [
    (["{tmp}/missing", "{tmp}/out", "--sigma", "0.1"], 1, "does not exist"),
    (["{samples}", "{samples}", "--sigma", "0.1"], 1, "is the input folder"),
    (["{samples}", "{samples}/inner", "--sigma", "0.1"], 1, "inside the input folder"),
    (["{samples}", "{tmp}/out", "--sigma", "1.5"], 2, "[0,1] scale"),
    (["{samples}", "{tmp}/out", "--sigma", "lots"], 2, "not a number"),
    (["{samples}", "{tmp}/out", "--sigma", "0.1", "--model", "{tmp}/none.onnx"], 1, "does not exist"),
    (["{samples}", "{tmp}/out", "--sigma", "0.1", "--tile", "17"], 1, "use --tile 18"),
    (["{samples}", "{tmp}/out", "--strength", "0"], 2, "must be a number above 0"),
    (["{samples}", "{tmp}/out", "--strength", "-1"], 2, "must be a number above 0"),
    (["{samples}", "{tmp}/out", "--strength", "more"], 2, "is not a number"),
    (["{samples}", "{tmp}/out", "--estimator", "{tmp}/none.onnx"], 1, "does not exist"),
])
def test_bad_invocations_give_one_line(tmp_path, args, code, words):
    args = [a.format(tmp=tmp_path, samples=SAMPLES / "noisy") for a in args]
    before = sorted(p.name for p in (SAMPLES / "noisy").rglob("*"))
    result = run_cli("batch", *args)
    assert result.returncode == code
    assert result.stderr.count("\n") == 1 and words in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in (SAMPLES / "noisy").rglob("*")) == before  # nothing written into the input


def test_eval_reports_psnr_computed_by_hand(tmp_path, rng):
    from denoise.metrics import to_uint8
    from denoise.noise import add_noise

    yy, xx = np.mgrid[0:20, 0:24]
    clean = np.stack([xx * 10, yy * 12, (xx + yy) * 5], axis=2).astype(np.uint8)  # smooth, like a photo
    write_png(tmp_path / "c" / "x.png", clean)
    result = run_cli("eval", tmp_path / "c", "--sigma", "0.2", "--seed", "7", "--format", "json",
                     "--grid", tmp_path / "grid.png")
    assert result.returncode == 0, result.stderr
    rows = {row["method"]: row for row in json.loads(result.stdout)}
    noisy = add_noise(clean / 255.0, 0.2, "clip", np.random.default_rng([7, 0, 200000]))
    assert rows["noisy"]["psnr"] == pytest.approx(psnr_uint8(clean, to_uint8(noisy)), abs=1e-3)
    assert rows["noisy"]["ssim"] == pytest.approx(ssim_uint8(clean, to_uint8(noisy)), abs=1e-4)
    assert rows["noisy"]["set_psnr"] == pytest.approx(rows["noisy"]["psnr"], abs=1e-3)  # one image: the same
    assert rows["model"]["psnr"] > rows["noisy"]["psnr"]
    assert rows["model"]["images"] == 1 and rows["model"]["sigma"] == 0.2
    with Image.open(tmp_path / "grid.png") as grid:
        assert grid.size[1] > grid.size[0] * 2  # clean, noisy, denoised rows of one image


def test_eval_held_out_uses_exactly_the_images_training_never_sees(tmp_path):
    from denoise.datasets import load_images

    for i in range(23):  # each image a distinct flat colour, so images identify themselves by value
        write_png(tmp_path / "photos" / f"{i:03d}.png", np.full((8, 8, 3), i * 10, dtype=np.uint8))
    result = run_cli("eval", tmp_path / "photos", "--held-out", "--sigma", "0.1", "--no-ssim", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert {row["images"] for row in json.loads(result.stdout)} == {3}  # 000, 010, 020
    held_out = {int(im[0, 0, 0]) for im in load_images(tmp_path / "photos", "val")}
    trained_on = {int(im[0, 0, 0]) for im in load_images(tmp_path / "photos", "train")}
    assert held_out == {0, 100, 200} and not held_out & trained_on
    (tmp_path / "cifar-10-batches-py").mkdir()
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(b"")  # refused before it is read
    cifar = run_cli("eval", tmp_path / "cifar-10-batches-py", "--held-out")
    assert cifar.returncode == 1 and "never trained on" in cifar.stderr and cifar.stderr.count("\n") == 1


def test_info_reports_backends_and_card():
    result = run_cli("info", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["backends"]["cpu"] is True
    assert info["bundled_model"]["exists"] and info["bundled_model"]["card"]["sigma_range"] == [0.0, 1.0]
    text = run_cli("info")
    assert text.returncode == 0
    average = info["bundled_model"]["card"].get("weight_average")
    if average:  # the bundled weights are an average of a model and its fine-tune (denoise.checkpoint)
        assert f"weights: {1 - average['tuned_weight']:g} x the model below + {average['tuned_weight']:g} x its fine-tune" in text.stdout
        assert "validation PSNR (dB): none: a weight average" in text.stdout
    else:
        assert "validation PSNR (dB): sigma 0.1: " in text.stdout
    stages, card = 0, info["bundled_model"]["card"]["training"]
    while card.get("fine_tuned_from"):
        stages, card = stages + 1, card["fine_tuned_from"]
    assert text.stdout.count("fine-tuned from:") == stages  # every training stage of the card is listed
    calibration = info["bundled_estimator"]["card"]["calibration"]  # the estimator's map, mapped back on white noise
    assert f"calibration: white-noise reads above {calibration['read'][1] * 255:.1f}/255 mapped back" in text.stdout


def test_help_has_examples():
    for command in ("batch", "train", "export", "eval", "info"):
        result = run_cli(command, "--help")
        assert result.returncode == 0 and "Example" in result.stdout


def test_runtime_never_imports_torch(tmp_path):
    import subprocess
    import sys

    code = ("import sys, numpy as np; from denoise import Denoiser; "
            "out = Denoiser().denoise(np.zeros((8, 8, 3), np.uint8), 0.1); "
            "from denoise.job.batch import run_batch; import denoise.cli; "
            "assert out.shape == (8, 8, 3) and out.dtype == np.uint8; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_exif_orientation_and_icc_profile(tmp_path, rng):
    src = tmp_path / "in"
    src.mkdir()
    pixels = rng.integers(0, 256, (10, 20, 3), dtype=np.uint8)  # 20 wide, 10 high as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": a viewer shows it 10 wide, 20 high
    Image.fromarray(pixels).save(src / "rotated.jpg", exif=exif.tobytes(), quality=95)
    icc = b"\x00" * 128 + b"fake-but-opaque-icc-bytes"  # copied byte for byte, never parsed
    Image.fromarray(pixels).save(src / "tagged.png", icc_profile=icc)
    result = run_cli("batch", src, tmp_path / "out", "--sigma", "auto")
    assert result.returncode == 0, result.stderr
    with Image.open(tmp_path / "out" / "rotated.jpg") as im:
        assert im.size == (10, 20)  # looks like the input did in a viewer
    with Image.open(tmp_path / "out" / "tagged.png") as im:
        assert im.info.get("icc_profile") == icc
    records = [json.loads(line) for line in (tmp_path / "out" / "denoise-manifest.jsonl").read_text().splitlines()]
    assert all(r["status"] == "ok" and 0 < r["sigma"] <= 1 for r in records)  # sigma estimated per image


def test_eval_with_cbm3d_and_plot(tmp_path):
    yy, xx = np.mgrid[0:32, 0:32]
    clean = np.stack([xx * 6, yy * 7, 255 - xx * 5], axis=2).astype(np.uint8)
    write_png(tmp_path / "c" / "x.png", clean)
    result = run_cli("eval", tmp_path / "c", "--sigma", "0.2", "--bm3d", "--plot", tmp_path / "plot.png")
    assert result.returncode == 0, result.stderr
    header, _, row = result.stdout.splitlines()[:3]
    assert "CBM3D PSNR" in header and "model PSNR" in header
    cells = [c.strip() for c in row.strip("|").split("|")]
    noisy_psnr, cbm3d_psnr = float(cells[4]), float(cells[8])
    assert cbm3d_psnr > noisy_psnr + 3
    with Image.open(tmp_path / "plot.png") as plot:
        assert plot.format == "PNG" and plot.size[0] > 300


@pytest.mark.parametrize("suffix", ["png", "tif"])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_sixteen_bit_files_stay_sixteen_bit(tmp_path, suffix, channels):
    import png
    import tifffile

    yy, xx = np.mgrid[0:40, 0:48]
    base = (xx * 1000 + yy * 300).astype(np.uint16)  # a smooth 16-bit ramp with values far above 255
    rng = np.random.default_rng(3)
    planes = [base + i * 500 for i in range(min(channels, 3))]
    if channels == 4:
        planes.append(rng.integers(0, 65536, (40, 48), dtype=np.uint16))  # alpha, full 16-bit range
    pixels = np.stack(planes, axis=2)
    noisy = np.clip(pixels[..., : min(channels, 3)].astype(float) + rng.normal(0, 3000, (40, 48, min(channels, 3))),
                    0, 65535).astype(np.uint16)
    if channels == 4:
        noisy = np.concatenate([noisy, pixels[..., 3:]], axis=2)
    src = tmp_path / "in"
    src.mkdir()
    path = src / f"deep.{suffix}"
    if suffix == "png":
        png.Writer(48, 40, greyscale=channels == 1, alpha=channels == 4, bitdepth=16).write(
            open(path, "wb"), noisy.reshape(40, -1))
    else:
        tifffile.imwrite(path, noisy[..., 0] if channels == 1 else noisy,
                         photometric="minisblack" if channels == 1 else "rgb",
                         extrasamples=("unassalpha",) if channels == 4 else None)
    result = run_cli("batch", src, tmp_path / "out", "--sigma", "0.05")
    assert result.returncode == 0, result.stderr
    out_path = tmp_path / "out" / path.name
    if suffix == "png":
        w, h, rows, info = png.Reader(filename=str(out_path)).asDirect()
        assert info["bitdepth"] == 16 and info["planes"] == channels
        out = np.vstack([np.asarray(r, np.uint16) for r in rows]).reshape(h, w, channels)
    else:
        out = tifffile.imread(out_path)
        out = out[..., None] if out.ndim == 2 else out
        assert out.dtype == np.uint16 and out.shape[2] == channels
    color = min(channels, 3)
    assert len(np.unique(out[..., :color] % 256)) > 200  # real 16-bit values, not 8-bit ones scaled up
    error_noisy = np.abs(noisy[..., :color].astype(float) - pixels[..., :color]).mean()
    error_out = np.abs(out[..., :color].astype(float) - pixels[..., :color]).mean()
    assert error_out < error_noisy
    if channels == 4:
        assert np.array_equal(out[..., 3], pixels[..., 3])  # 16-bit alpha untouched


def test_exif_is_copied_with_orientation_reset(tmp_path, rng):
    src = tmp_path / "in"
    src.mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "TestCam"  # camera make
    Image.fromarray(rng.integers(0, 256, (10, 20, 3), dtype=np.uint8)).save(src / "a.jpg", exif=exif.tobytes())
    assert run_cli("batch", src, tmp_path / "out", "--sigma", "0.1").returncode == 0
    with Image.open(tmp_path / "out" / "a.jpg") as im:
        copied = im.getexif()
        assert copied.get(0x010F) == "TestCam" and 0x0112 not in copied and im.size == (10, 20)


def test_nothing_to_do_says_why(tmp_path, rng):
    """An empty folder or a --glob that matches nothing is not a failure (exit 0), but it says so."""
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_cli("batch", empty, tmp_path / "out1", "--sigma", "0.1")
    assert result.returncode == 0 and "nothing to do: no files under" in result.stderr
    write_png(tmp_path / "in" / "a.png", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    result = run_cli("batch", tmp_path / "in", tmp_path / "out2", "--sigma", "0.1", "--glob", "*.jpg", "--json")
    assert result.returncode == 0 and "match --glob '*.jpg'" in result.stderr
    assert "match --glob" in json.loads(result.stdout)["note"]
    result = run_cli("batch", tmp_path / "in", tmp_path / "out3", "--sigma", "0.1")
    assert result.returncode == 0 and "nothing to do" not in result.stderr


def test_images_batched_together_give_the_same_files(tmp_path, rng):
    """Tiles of several images run in one batch (--max-batch 8) give exactly what one image per call gives."""
    for k in range(10):
        size = (24, 40) if k % 3 else (33, 17)
        write_png(tmp_path / "in" / f"{k}.png", rng.integers(0, 256, (*size, 3), dtype=np.uint8))
    for max_batch in (1, 8):
        result = run_cli("batch", tmp_path / "in", tmp_path / f"out{max_batch}", "--sigma", "0.2", "--max-batch", max_batch)
        assert result.returncode == 0, result.stderr
    for k in range(10):
        one, batched = (np.asarray(Image.open(tmp_path / f"out{b}" / f"{k}.png")) for b in (1, 8))
        assert np.array_equal(one, batched)
