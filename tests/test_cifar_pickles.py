"""The original cifar-10-batches-py format is pickle: real batch files written the way numpy pickles arrays
load, and a hostile one (a pickle that would run a command) is a one-line error, with nothing run."""

import pickle

import numpy as np
import pytest

from conftest import run_cli
from denoise.errors import DenoiseError
from denoise.datasets import load_cifar_batches


def write_batches(folder, names, images=4):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in names:
        batch = {b"batch_label": b"a batch", b"labels": list(range(images)),
                 b"data": rng.integers(0, 256, (images, 3072), dtype=np.uint8),
                 b"filenames": [b"x.png"] * images}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))


def test_real_batches_load(tmp_path):
    write_batches(tmp_path / "cifar-10-batches-py", ["test_batch"])
    images = load_cifar_batches(tmp_path / "cifar-10-batches-py", "test")
    assert len(images) == 4 and images[0].shape == (32, 32, 3) and images[0].dtype == np.uint8


class Hostile:
    def __reduce__(self):
        import os

        return os.system, ("touch PWNED",)


def test_a_hostile_batch_is_refused_and_runs_nothing(tmp_path, monkeypatch):
    folder = tmp_path / "cifar-10-batches-py"
    write_batches(folder, ["test_batch"])
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Hostile()}, protocol=2))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DenoiseError, match="refusing posix.system|refusing os.system"):
        load_cifar_batches(folder, "test")
    assert not (tmp_path / "PWNED").exists()
    result = run_cli("eval", folder, "--sigma", "0.1", cwd=tmp_path)
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "refusing" in result.stderr, result.stderr
    assert not (tmp_path / "PWNED").exists()
