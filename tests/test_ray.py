"""`denoise batch --ray` on a local Ray started by the test (2 CPUs): same outputs as the local path,
and a killed-and-restarted run loses nothing."""

import json
import signal
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import run_cli, wait_for, write_png

pytest.importorskip("ray", reason="the `ray` extra is not installed")


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(8):
        write_png(tmp_path / "in" / f"sub{i % 2}" / f"im{i}.png", rng.integers(0, 256, (40, 56, 3), dtype=np.uint8))
    return tmp_path / "in"


def pngs(root):
    return {p.relative_to(root).as_posix(): np.asarray(Image.open(p)) for p in sorted(root.rglob("*.png"))}


def test_ray_matches_local_path(folder, tmp_path):
    ray_run = run_cli("batch", folder, tmp_path / "ray", "--sigma", "0.1", "--ray", "--workers", "2", "--json", "-q",
                      "--backend", "cpu", "--tile", "32", "--max-batch", "2", timeout=600)  # tiles do not change a result
    assert ray_run.returncode == 0, ray_run.stderr
    assert json.loads(ray_run.stdout.strip().splitlines()[-1])["ok"] == 8
    assert run_cli("batch", folder, tmp_path / "local", "--sigma", "0.1", "-q", "--backend", "cpu").returncode == 0
    ray_out, local_out = pngs(tmp_path / "ray"), pngs(tmp_path / "local")
    assert ray_out.keys() == local_out.keys() and len(ray_out) == 8
    assert all(np.array_equal(ray_out[k], local_out[k]) for k in ray_out)
    records = [json.loads(l) for l in (tmp_path / "ray" / "denoise-manifest.jsonl").read_text().splitlines()]
    assert sorted(r["status"] for r in records) == ["ok"] * 8 and all(r["backend"].startswith("ray/") for r in records)


def test_killed_ray_run_restarts_without_loss(tmp_path):
    rng = np.random.default_rng(2)
    folder = tmp_path / "in"
    for i in range(24):  # enough work that the kill lands mid-run (asserted below)
        write_png(folder / f"sub{i % 2}" / f"im{i}.png", rng.integers(0, 256, (160, 224, 3), dtype=np.uint8))
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "denoise", "batch", folder, out, "--sigma", "0.1", "--ray",
                             "--workers", "2", "-q", "--backend", "cpu", "--precision", "fp32"],  # FP32: slow enough to kill mid-run
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    manifest = out / "denoise-manifest.jsonl"
    # the event: the first record (a finished Ray call; the model loaded on the workers), not a fixed time
    wait_for(lambda: manifest.exists() and manifest.read_text().count("\n") >= 1, "a record in the manifest", proc)
    assert proc.poll() is None, "the run finished before the kill: the test would prove nothing"
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray processes it started
    proc.wait()
    assert manifest.read_text().count("\n") < 24
    rerun = run_cli("batch", folder, out, "--sigma", "0.1", "--ray", "--workers", "2", "--json", "-q",
                    "--backend", "cpu", "--precision", "fp32", timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    outputs = pngs(out)
    assert len(outputs) == 24 and all(v.shape == (160, 224, 3) for v in outputs.values())
    assert not list(out.rglob("*.part"))
    merged = run_cli("manifest", "merge", folder, out, "--json")
    report = json.loads(merged.stdout)
    assert merged.returncode == 0 and report["complete"] and not report["done_twice"]


def test_files_per_call_keeps_every_worker_busy():
    from denoise.job.ray_batch import FILES_PER_CALL, files_per_call

    assert files_per_call(1000, 4) == FILES_PER_CALL  # big jobs: full calls
    assert files_per_call(6, 4) == 2 and files_per_call(3, 4) == 1  # small jobs: spread over the workers
    assert files_per_call(0, 2) == 1


def test_a_corrupt_file_fails_alone_inside_a_ray_call(folder, tmp_path):
    (folder / "sub0" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    result = run_cli("batch", folder, tmp_path / "out", "--sigma", "0.1", "--ray", "--workers", "2", "--json", "-q",
                     "--backend", "cpu", timeout=600)
    assert result.returncode == 3, result.stderr  # finished, but an input failed
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["ok"], summary["failed"]) == (8, 1)
    records = [json.loads(l) for l in (tmp_path / "out" / "denoise-manifest.jsonl").read_text().splitlines()]
    failed = [r for r in records if r["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["path"].endswith("broken.png") and failed[0]["error"]
    assert len(pngs(tmp_path / "out")) == 8  # the other files of its call were written


@pytest.mark.slow  # about 30 s: a three-node Ray cluster on this machine; CI runs it
def test_two_worker_nodes_share_the_job_and_a_lost_node_costs_nothing(tmp_path):
    """A simulated cluster on this machine (Ray's cluster_utils.Cluster: a head without CPUs and two worker
    nodes of one CPU each, separate raylets): the job spreads over both worker nodes; a worker node killed
    mid-run (a replacement joins, as an autoscaler's would) loses nothing -- every file ends up ok exactly once
    (Ray retries the lost node's work, or the re-run finishes it) and the outputs equal a local run's."""
    from ray.cluster_utils import Cluster

    rng = np.random.default_rng(1)
    files = 48  # enough work that the second actor is up before the first one has done it all, and that the node
    # is lost mid-run: 24 files at INT8 had all been done by the time the first record reached the manifest (CI, stop 34)
    for i in range(files):
        write_png(tmp_path / "in" / f"im{i:02d}.png", rng.integers(0, 256, (256, 320, 3), dtype=np.uint8))
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    try:
        nodes = [cluster.add_node(num_cpus=1) for _ in range(2)]
        cluster.wait_for_nodes()
        spread = run_cli("batch", tmp_path / "in", tmp_path / "spread", "--sigma", "0.1", "--ray", cluster.address,
                         "--workers", "2", "-q", "--backend", "cpu", timeout=600)
        assert spread.returncode == 0, spread.stderr
        records = [json.loads(l) for l in (tmp_path / "spread" / "denoise-manifest.jsonl").read_text().splitlines()]
        assert sorted(r["status"] for r in records) == ["ok"] * files
        assert {r["node"] for r in records} == {node.node_id for node in nodes}  # both worker nodes worked

        out = tmp_path / "lost"
        proc = subprocess.Popen([sys.executable, "-m", "denoise", "batch", tmp_path / "in", out, "--sigma", "0.1",
                                 "--ray", cluster.address, "--workers", "2", "-q", "--backend", "cpu",
                                 "--precision", "fp32"],  # FP32: slow enough that the node is lost mid-run
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        manifest = out / "denoise-manifest.jsonl"
        wait_for(lambda: manifest.exists() and manifest.read_text().count("\n") >= 1, "a record in the manifest", proc)
        assert proc.poll() is None, "the run ended before the node could be lost mid-run"
        done_before = manifest.read_text().count("\n")
        assert done_before < files, "every file was done before the node was lost: the test would prove nothing"
        cluster.remove_node(nodes[1])  # a worker node lost mid-run
        cluster.add_node(num_cpus=1)  # its replacement
        try:
            proc.wait(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        print(f"node lost after {done_before} of {files} records; the run exited {proc.returncode}")
        if proc.returncode != 0:  # Ray could not retry it all: the re-run must finish the rest
            rerun = run_cli("batch", tmp_path / "in", out, "--sigma", "0.1", "--ray", cluster.address, "--workers",
                            "2", "-q", "--backend", "cpu", "--precision", "fp32", timeout=600)
            assert rerun.returncode == 0, rerun.stderr
    finally:
        cluster.shutdown()
    final = {}
    ok_counts = {}
    for line in manifest.read_text().splitlines():
        record = json.loads(line)
        final[record["path"]] = record["status"]
        ok_counts[record["path"]] = ok_counts.get(record["path"], 0) + (record["status"] == "ok")
    assert set(final.values()) <= {"ok", "skipped"} and len(final) == files and max(ok_counts.values()) == 1
    assert run_cli("batch", tmp_path / "in", tmp_path / "local", "--sigma", "0.1", "-q", "--backend", "cpu",
                   "--precision", "fp32").returncode == 0
    lost, local = pngs(out), pngs(tmp_path / "local")
    assert lost.keys() == local.keys() and all(np.array_equal(lost[k], local[k]) for k in lost)


def test_ray_records_settings_redoes_on_another_strength_and_checks_the_estimator(folder, tmp_path):
    """--ray records each output's settings as the local path does: a re-run with another --strength redoes the
    files, one with the same skips; an --estimator that does not exist is one line before any worker starts."""
    missing = run_cli("batch", folder, tmp_path / "out", "--ray", "--workers", "1", "--estimator", tmp_path / "none.onnx")
    assert missing.returncode == 1 and "none.onnx does not exist" in missing.stderr and "Traceback" not in missing.stderr
    first = run_cli("batch", folder, tmp_path / "out", "--ray", "--workers", "2", "--json", "-q", "--backend", "cpu", timeout=600)
    assert first.returncode == 0, first.stderr
    local = run_cli("batch", folder, tmp_path / "out", "--json", "-q", "--backend", "cpu")
    assert json.loads(local.stdout)["skipped"] == 8  # the local path reads Ray's settings as its own
    again = run_cli("batch", folder, tmp_path / "out", "--ray", "--workers", "2", "--json", "-q", "--backend", "cpu",
                    "--strength", "1.3", timeout=600)
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout.strip().splitlines()[-1])
    assert summary["ok"] == 8 and summary["redone"] == 8

