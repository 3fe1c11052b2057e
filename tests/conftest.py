"""Shared fixtures. Tests that need ../shared/data skip when it is absent (a user's clone), unless
DENOISE_REQUIRE_DATA=1 (set by .ci/run), which turns those skips into failures."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("DENOISE_SHARED_DATA", REPO.parent / "shared" / "data"))
SAMPLES = REPO / "samples"


def need_shared(relative: str) -> Path:
    """Path under ../shared/data, or skip (fail when DENOISE_REQUIRE_DATA=1) if it is not there."""
    path = SHARED_DATA / relative
    if not path.exists():
        message = f"{path} not found: the shared data sets are only on the team's machines"
        if os.environ.get("DENOISE_REQUIRE_DATA") == "1":
            pytest.fail(message + " (DENOISE_REQUIRE_DATA=1)")
        pytest.skip(message)
    return path


def run_cli(*args, cwd=None, timeout=300):
    """Run the real `denoise` command in a subprocess (python -m, so the venv's package is used)."""
    return subprocess.run([sys.executable, "-m", "denoise", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


def wait_for(condition, what: str, process: subprocess.Popen | None = None, timeout: float = 300.0):
    """Poll ``condition()`` until it returns something true, and return that: a test waits on an event (a file
    appears, a manifest line is written), never a fixed time. ``what`` names the event for the failure, which
    comes when ``process`` exits first or after ``timeout`` seconds (generous: a loaded 2-core machine is slow;
    a fast one never waits that long) -- instead of going on as if it had happened."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if process is not None and process.poll() is not None:
            pytest.fail(f"the process exited with {process.returncode} before {what}")
        if time.monotonic() > deadline:
            if process is not None:  # and the processes it started, where it leads its own session
                if os.getpgid(process.pid) == process.pid:
                    os.killpg(process.pid, signal.SIGKILL)
                else:
                    process.kill()
                process.wait()
            pytest.fail(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.02)


def write_png(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path) if mode else Image.fromarray(array).save(path)
    return path


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
