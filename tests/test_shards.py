"""Deterministic shards and manifest merging, on real folders and real subprocesses."""

import json

import numpy as np
import pytest
from PIL import Image

from conftest import SAMPLES, run_cli, write_png
from denoise.errors import DenoiseError
from denoise.job.shards import Shard


def test_shards_are_disjoint_and_complete_for_any_n():
    paths = [f"set{i % 7}/img{i:05d}.png" for i in range(10_000)]
    for n in range(1, 65):
        owners = [[k for k in range(1, n + 1) if Shard(k, n).owns(p)] for p in paths]
        assert all(len(o) == 1 for o in owners), n
        if n <= 16:  # and reasonably balanced
            sizes = np.bincount([o[0] - 1 for o in owners], minlength=n)
            assert sizes.min() > 0.8 * len(paths) / n


def test_shard_parse():
    assert Shard.parse("2/5") == Shard(2, 5) and Shard.parse("5/5") == Shard(5, 5)  # K counts from 1 to N
    for bad in ("6/5", "-1/3", "1", "a/b", "1/0", "0/3"):
        with pytest.raises(DenoiseError):
            Shard.parse(bad)
    result = run_cli("batch", SAMPLES / "noisy", "/tmp/never-written", "--sigma", "0.1", "--shard", "0/3")
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "count from 1" in result.stderr


def test_three_shards_then_merge_equal_a_single_run(tmp_path):
    rng = np.random.default_rng(0)
    src = tmp_path / "in"
    for i in range(12):
        write_png(src / f"d{i % 3}" / f"im{i}.png", rng.integers(0, 256, (24, 30, 3), dtype=np.uint8))
    for k in range(3):
        result = run_cli("batch", src, tmp_path / "sharded", "--sigma", "0.1", "--shard", f"{k + 1}/3", "-q")
        assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "sharded").glob("denoise-manifest.shard-*-of-3.jsonl"))) == 3
    merged = run_cli("manifest", "merge", src, tmp_path / "sharded", "--json")
    assert merged.returncode == 0, merged.stderr
    report = json.loads(merged.stdout)
    assert report["complete"] and report["done"] == 12 and not report["done_twice"]
    assert run_cli("batch", src, tmp_path / "single", "--sigma", "0.1", "-q").returncode == 0
    single = sorted(p.relative_to(tmp_path / "single") for p in (tmp_path / "single").rglob("*.png"))
    sharded = sorted(p.relative_to(tmp_path / "sharded") for p in (tmp_path / "sharded").rglob("*.png"))
    assert single == sharded and len(single) == 12
    for rel in single:
        a = np.asarray(Image.open(tmp_path / "single" / rel))
        b = np.asarray(Image.open(tmp_path / "sharded" / rel))
        assert np.array_equal(a, b), rel


def test_merge_reports_missing_shard(tmp_path):
    src = tmp_path / "in"
    for i in range(6):
        write_png(src / f"im{i}.png", np.full((8, 8, 3), i * 30, np.uint8))
    assert run_cli("batch", src, tmp_path / "out", "--sigma", "0.1", "--shard", "1/2", "-q").returncode == 0
    merged = run_cli("manifest", "merge", src, tmp_path / "out", "--json")
    report = json.loads(merged.stdout)
    assert merged.returncode == 3 and not report["complete"]
    assert report["done"] + len(report["missing"]) == 6 and report["missing"]
