"""A signal stops a batch within seconds whatever the image size, and a re-run says what it kept (issue 24):
real CLI subprocesses on a real 12-megapixel JPEG, real manifests, the real tiler and estimator."""

import json
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from PIL import Image

from conftest import SAMPLES, run_cli, wait_for, write_png
from denoise.errors import Stopped
from denoise.runtime.denoiser import Denoiser
from denoise.job.options import EngineOptions, JobOptions
from denoise.job.ray_batch import DenoiseActor
from denoise.runtime.tiling import TileBatcher, estimate_map
from denoise.weights import DEFAULT_ESTIMATOR


@pytest.fixture(scope="module")
def twelve_megapixels(tmp_path_factory):
    """A 4000x3000 JPEG: about 90 s of denoising on 2 cores, so any stop within seconds is the stop's doing."""
    folder = tmp_path_factory.mktemp("big") / "in"
    folder.mkdir()
    y, x = np.mgrid[0:3000, 0:4000]
    pixels = np.stack([(x / 16) % 256, (y / 12) % 256, ((x + y) / 20) % 256], -1)
    pixels += np.random.default_rng(0).normal(0, 12, pixels.shape)
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(folder / "big.jpg", quality=92)
    return folder


class Batch:
    """``denoise -v batch`` on a real subprocess, its stderr read line by line as it comes: ``-v`` logs where the
    run is (job.pipeline: a file's noise level under way, then its tiles), and the tests signal on those events."""

    def __init__(self, inputs, out):
        # FP32 said, not auto: auto's INT8 is faster, and the tests want the image to take long
        self.process = subprocess.Popen([sys.executable, "-m", "denoise", "-v", "batch", str(inputs), str(out),
                                         "--precision", "fp32"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.process.stderr), daemon=True)
        self.reader.start()

    def signal_after(self, event: str, gaps=(0.0,)) -> float:
        """Send SIGINT once a stderr line holds ``event``, then after each further gap (seconds); the seconds from
        the last signal to the exit."""
        wait_for(lambda: any(event in line for line in self.lines), f"a line with {event!r}", self.process)
        for gap in gaps:
            time.sleep(gap)
            self.process.send_signal(signal.SIGINT)
        sent = time.monotonic()
        self.process.wait(timeout=60)
        waited = time.monotonic() - sent
        self.reader.join(timeout=10)
        return waited

    @property
    def stderr(self) -> str:
        return "".join(self.lines)


@pytest.mark.parametrize("event", ["big.jpg: its noise level", "big.jpg: denoising"])  # the estimator's map; the tiles
def test_sigint_inside_a_large_image_stops_within_seconds_and_the_rerun_does_it(tmp_path, twelve_megapixels, event):
    batch = Batch(twelve_megapixels, tmp_path / "out")
    waited = batch.signal_after(event, [0.5])
    assert batch.process.returncode == 130, batch.stderr
    assert waited < 10, f"exited {waited:.1f} s after SIGINT"
    assert "the image under way is left for a re-run" in batch.stderr and "Traceback" not in batch.stderr
    left = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert left == ["denoise-manifest.jsonl"]  # no partial output, no temporary file, the lock released
    assert (tmp_path / "out" / "denoise-manifest.jsonl").read_text() == ""  # nothing recorded for the image
    plan = run_cli("batch", twelve_megapixels, tmp_path / "out", "--dry-run")
    assert plan.returncode == 0 and plan.stdout.startswith("would denoise") and "big.jpg" in plan.stdout


def test_two_sigints_a_fifth_of_a_second_apart_stop_at_once(tmp_path, twelve_megapixels):
    batch = Batch(twelve_megapixels, tmp_path / "out")
    waited = batch.signal_after("big.jpg: denoising", [0.5, 0.2])
    # 130 when the second signal finds our handler; killed by SIGINT itself (-2) when it lands after the stop,
    # while the interpreter shuts down (CPython puts the default handlers back then): both stopped at once
    assert batch.process.returncode in (130, -signal.SIGINT), batch.stderr
    assert waited < 1.5, f"exited {waited:.1f} s after the second SIGINT"
    assert not list((tmp_path / "out").glob("big*"))


def test_tile_batcher_runs_nothing_more_once_stop_says_so():
    calls = []

    def infer(batch, levels):
        calls.append(len(batch))
        return batch

    batcher = TileBatcher(lambda level: infer, (32, 32), overlap=4, max_batch=1)
    batcher.add("a", np.zeros((100, 100, 3), np.uint8), 0.1)
    assert batcher.run(flush=True, stop=lambda: len(calls) >= 2) == []  # stopped after two batches, image unfinished
    assert len(calls) == 2 and batcher.in_flight == 1


def test_estimate_map_stops_and_batches_no_more_pixels_than_the_denoiser(rng):
    """On the CPU a batch of the estimator's tiles holds at most one tile's worth of pixels, as the denoiser's
    does (it held max_batch large tiles, ignoring max_batch_pixels); a stop raises Stopped between batches."""
    image = rng.integers(0, 256, (300, 420, 3), dtype=np.uint8)
    with Denoiser(tile=128) as denoiser:
        real, sizes = denoiser.estimator.infer, []
        denoiser.estimator.infer = lambda batch: sizes.append(batch.shape[0] * batch.shape[2] * batch.shape[3]) or real(batch)
        whole = denoiser.estimate_map(image)
        assert sizes and max(sizes) <= denoiser.max_batch_pixels
        with Denoiser(tile=1024) as untiled:
            assert np.allclose(whole, untiled.estimate_map(image), atol=1e-5)  # batching does not change the map
        with pytest.raises(Stopped):
            denoiser.estimate_map(image, stop=lambda: True)
    with pytest.raises(Stopped):
        estimate_map(lambda b: b[:, :1], image, (64, 64), 8, stop=lambda: True)


def manifest(out):
    return [json.loads(line) for line in (out / "denoise-manifest.jsonl").read_text().splitlines()]


def test_a_rerun_with_another_strength_redoes_the_files_and_with_the_same_one_skips(tmp_path):
    for name in ("a.png", "b.png"):
        write_png(tmp_path / "in" / name, np.asarray(Image.open(SAMPLES / "noisy" / "cbsd68-21077.png"))[:48, :64])
    out = tmp_path / "out"
    assert run_cli("batch", tmp_path / "in", out).returncode == 0
    first = (out / "a.png").read_bytes()
    records = manifest(out)
    assert records[0]["settings"]["strength"] == 1.0 and records[0]["settings"]["sigma"] == "auto"
    same = run_cli("batch", tmp_path / "in", out)
    assert same.returncode == 0 and "0 denoised" in same.stderr and "2 skipped" in same.stderr
    plan = run_cli("batch", tmp_path / "in", out, "--strength", "1.5", "--dry-run")
    assert plan.stdout.count("would redo") == 2 and "strength 1.0 -> 1.5" in plan.stdout
    again = run_cli("batch", tmp_path / "in", out, "--strength", "1.5", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["redone"] == 2 and "2 made again" in again.stderr
    assert (out / "a.png").read_bytes() != first  # the stronger result replaced the old one
    redone = [r for r in manifest(out) if r.get("redone")]
    assert len(redone) == 2 and redone[0]["settings"]["strength"] == 1.5
    assert "1 skipped" in run_cli("batch", tmp_path / "in" / "a.png", out, "--strength", "1.5").stderr


def test_an_output_the_manifest_knows_nothing_of_is_kept(tmp_path):
    """A file already in OUT that no run of ours recorded (or one from before settings were recorded) may be
    the user's: it is skipped, as before, whatever the settings."""
    write_png(tmp_path / "in" / "a.png", np.full((24, 24, 3), 100, np.uint8))
    write_png(tmp_path / "out" / "a.png", np.full((24, 24, 3), 7, np.uint8))
    before = (tmp_path / "out" / "a.png").read_bytes()
    result = run_cli("batch", tmp_path / "in", tmp_path / "out", "--strength", "1.5")
    assert result.returncode == 0 and "1 skipped" in result.stderr
    assert (tmp_path / "out" / "a.png").read_bytes() == before


def test_ray_actors_get_the_estimator_tile_and_batch_options(tmp_path):
    """--ray used to drop --estimator, --tile and --max-batch. The actor is built here without starting Ray, to
    see what its Denoiser was given (tests/test_ray.py runs the whole path where the `ray` extra is installed)."""
    actor = DenoiseActor(EngineOptions(backend="cpu", estimator=str(DEFAULT_ESTIMATOR), tile=128, max_batch=3), JobOptions())
    try:
        assert actor.denoiser.tile == (128, 128) and actor.denoiser.max_batch == 3
        assert actor.denoiser.estimator_path == DEFAULT_ESTIMATOR
    finally:
        actor.denoiser.close()
    with pytest.raises(Exception, match="does not exist"):
        DenoiseActor(EngineOptions(backend="cpu", estimator=str(tmp_path / "missing.onnx")), JobOptions())
