"""Shared fixtures. Tests that need ../shared/data skip when it is absent (a user's clone), unless
DENOISE_REQUIRE_DATA=1 (set by .ci/run), which turns those skips into failures."""

import os
import subprocess
import sys
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


def write_png(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path) if mode else Image.fromarray(array).save(path)
    return path


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
