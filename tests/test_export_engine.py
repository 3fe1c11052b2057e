"""FP16 export, engine profiles, the engine cache, and the TensorRT build path.

TensorRT cannot be installed on our machines. The TensorRT build tests below use stand-ins
(tests/trt_standins.py) that define only the real API names of TensorRT 10.x / 11.x: they prove the call
sequence and the version handling, NOT that TensorRT builds a working engine -- that is
scripts/gpu_check.py's job wherever TensorRT exists.
"""

import importlib.util
import json
import subprocess
import sys
import textwrap

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from conftest import run_cli
from trt_standins import fake_cudart, fake_tensorrt, install
from denoise.errors import DenoiseError
from denoise.runtime.engine_cache import EngineSpec, get_or_build, list_engines, spec_from_record
from denoise.runtime.tiling import engine_profile, overlap_for

SPEC = dict(onnx_sha256="ab" * 32, tensorrt_version="10.13.0", gpu_name="NVIDIA H200", compute_capability="9.0",
            precision="fp16", profile=engine_profile((256, 256), 42, 8))


def test_export_fp16_cli_writes_and_verifies_both(tmp_path):
    result = run_cli("export", "--fp16", "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "FP32 check" in result.stdout and "FP16 check" in result.stdout and "FAILED" not in result.stdout
    fp16 = onnx.load(str(tmp_path / "model.fp16.onnx"))
    props = {p.key: p.value for p in fp16.metadata_props}
    assert props["precision"] == "fp16" and "denoise_card" in props
    assert fp16.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # FP32 in/out kept
    assert any(init.data_type == onnx.TensorProto.FLOAT16 for init in fp16.graph.initializer)
    session = ort.InferenceSession(str(tmp_path / "model.fp16.onnx"), providers=["CPUExecutionProvider"])
    out = session.run(["denoised"], {"noisy": np.full((1, 3, 20, 20), 0.5, np.float32),
                                     "sigma": np.full((1, 1, 20, 20), 0.1, np.float32)})[0]
    assert out.dtype == np.float32 and np.isfinite(out).all()


TENSORRT_HERE = importlib.util.find_spec("tensorrt") is not None


@pytest.mark.skipif(TENSORRT_HERE, reason="TensorRT is installed here: this test is about machines without it")
def test_engine_without_tensorrt_says_what_is_missing(tmp_path):
    result = run_cli("export", "--engine", "--out", tmp_path)
    assert result.returncode == 1
    assert "TensorRT is not installed" in result.stderr and result.stderr.count("\n") == 1
    assert (tmp_path / "model.onnx").is_file() and (tmp_path / "model.fp16.onnx").is_file()


def test_profile_from_tile_settings():
    assert overlap_for(41, 2) == 42 and overlap_for(40, 2) == 40
    noisy, sigma = engine_profile((256, 128), 42, 8)
    assert noisy == ("noisy", (1, 3, 1, 1), (8, 3, 340, 212), (8, 3, 340, 212))
    assert sigma == ("sigma", (1, 1, 1, 1), (8, 1, 340, 212), (8, 1, 340, 212))  # a noise map per pixel
    assert engine_profile((256, 128), 42, 8, sigma_map=False)[1] == ("sigma", (1,), (8,), (8,))  # older models
    with pytest.raises(ValueError):
        engine_profile((0, 10), 4, 1)


def test_cache_key_changes_with_every_field():
    base = EngineSpec(**SPEC)
    assert base.key() == EngineSpec(**SPEC).key()
    changes = dict(onnx_sha256="cd" * 32, tensorrt_version="11.4.0", gpu_name="NVIDIA A100",
                   compute_capability="8.0", precision="fp32", profile=engine_profile((512, 512), 42, 8),
                   version_compatible=True, hardware_compatible=True)
    keys = {EngineSpec(**{**SPEC, field: value}).key() for field, value in changes.items()}
    assert len(keys) == len(changes) and base.key() not in keys


def test_engine_matches_machine():
    spec = EngineSpec(**SPEC)
    assert spec.matches_machine("10.13.0", "NVIDIA H200", "9.0")
    assert not spec.matches_machine("10.14.0", "NVIDIA H200", "9.0")
    assert not spec.matches_machine("10.13.0", "NVIDIA A100", "8.0")
    relaxed = EngineSpec(**{**SPEC, "version_compatible": True, "hardware_compatible": True})
    assert relaxed.matches_machine("10.14.0", "NVIDIA A100", "8.0")
    assert not relaxed.matches_machine("11.0.0", "NVIDIA A100", "8.0")
    assert not relaxed.matches_machine("10.12.1", "NVIDIA H200", "9.0")  # engines run forward only: older TensorRT no
    assert relaxed.matches_machine("10.13.0.35", "NVIDIA H200", "9.0")


def test_two_processes_build_once_and_never_see_half_an_engine(tmp_path):
    """Two real processes ask for the same engine at once: one builds (slowly, in two writes), the other
    waits on the lock and reads the finished file."""
    worker = textwrap.dedent(f"""
        import json, sys, time
        from pathlib import Path
        from denoise.runtime.engine_cache import EngineSpec, get_or_build
        from denoise.runtime.tiling import engine_profile
        spec = EngineSpec(**{{**json.loads(sys.argv[1]), "profile": engine_profile((256, 256), 42, 8)}})
        log = Path(sys.argv[2])
        def build():
            with open(log, "a") as f:
                f.write("build\\n")
            time.sleep(1.5)
            return b"E" * 1_000_000
        path, built = get_or_build(spec, build, root=Path({str(tmp_path)!r}))
        data = path.read_bytes()
        print(json.dumps({{"built": built, "size": len(data), "intact": data == b"E" * 1_000_000}}))
    """)
    spec_json = json.dumps({k: v for k, v in SPEC.items() if k != "profile"})
    log = tmp_path / "builds.log"
    procs = [subprocess.Popen([sys.executable, "-c", worker, spec_json, str(log)], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
    assert log.read_text().count("build") == 1
    assert sorted(r["built"] for r in results) == [False, True]
    assert all(r["intact"] and r["size"] == 1_000_000 for r in results)
    assert not list((tmp_path / "engines").glob(".*part"))
    records = list_engines(tmp_path)
    assert len(records) == 1 and spec_from_record(records[0]) == EngineSpec(**SPEC)


def test_failed_build_leaves_nothing(tmp_path):
    def build():
        raise DenoiseError("builder failed")

    with pytest.raises(DenoiseError):
        get_or_build(EngineSpec(**SPEC), build, root=tmp_path)
    assert not list((tmp_path / "engines").glob("*.engine")) and list_engines(tmp_path) == []


# ---- TensorRT build with stand-ins (tests/trt_standins.py: real API names; call sequence, not TensorRT) ----

@pytest.mark.parametrize("major", [10, 11])
def test_tensorrt_build_call_sequence(major, tmp_path, monkeypatch):
    calls = []
    trt = fake_tensorrt(major, calls)
    install(monkeypatch, trt, fake_cudart(), tmp_path / "cache")
    from denoise.runtime.tensorrt_build import build_engine

    onnx_path = tmp_path / "m.onnx"
    onnx_path.write_bytes(b"not parsed by the stand-in")
    profile = engine_profile((256, 256), 42, 8)
    path, built = build_engine(onnx_path, "fp16", profile, version_compatible=True, hardware_compatible=True)
    assert built and path.read_bytes() == b"ENGINE"
    # STRONGLY_TYPED is 1 in 10.x and 0 (deprecated, ignored) in 11.x: the flag bit is computed from the enum
    assert ("create_network", 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)) in calls
    assert ("set_flag", 0) not in calls  # never BuilderFlag.FP16 (0 in the 10.x stand-in)
    assert ("set_flag", 8) in calls  # VERSION_COMPATIBLE
    assert ("set_shape", "noisy", (1, 3, 1, 1), (8, 3, 340, 340), (8, 3, 340, 340)) in calls
    timing = list((tmp_path / "cache").glob("timing-*.cache"))
    assert len(timing) == 1 and timing[0].read_bytes() == b"timing:tactic1"
    again, built_again = build_engine(onnx_path, "fp16", profile, version_compatible=True, hardware_compatible=True)
    assert again == path and not built_again and calls.count(("build_serialized_network",)) == 1
    assert (tmp_path / "cache").stat().st_mode & 0o777 == 0o700  # engines are code: a private folder


def test_timing_cache_that_does_not_attach_is_replaced(tmp_path, monkeypatch):
    """A saved timing cache from another GPU/TensorRT: set_timing_cache returns False. The build must go on
    with a fresh cache (before: the bool was ignored and the finished engine lost to a crash on None)."""
    calls = []
    install(monkeypatch, fake_tensorrt(10, calls, attach_cache=False), fake_cudart(), tmp_path / "cache")
    from denoise.runtime.tensorrt_build import build_engine, engine_spec, timing_cache_path

    onnx_path = tmp_path / "m.onnx"
    onnx_path.write_bytes(b"x")
    profile = engine_profile((64, 64), 42, 2)
    timing = timing_cache_path(engine_spec(onnx_path, "fp16", profile))
    timing.parent.mkdir(parents=True)
    timing.write_bytes(b"timing:from-another-gpu")
    path, built = build_engine(onnx_path, "fp16", profile)
    assert built and path.read_bytes() == b"ENGINE"
    assert [c for c in calls if c[0] == "set_timing_cache"] == [("set_timing_cache", False), ("set_timing_cache", True)]


def test_no_timing_cache_after_build_keeps_the_engine(tmp_path, monkeypatch):
    install(monkeypatch, fake_tensorrt(11, [], timing_cache_after_build=False), fake_cudart(), tmp_path / "cache")
    from denoise.runtime.tensorrt_build import build_engine

    onnx_path = tmp_path / "m.onnx"
    onnx_path.write_bytes(b"x")
    path, built = build_engine(onnx_path, "fp16", engine_profile((64, 64), 42, 2))
    assert built and path.read_bytes() == b"ENGINE"


def test_timing_cache_keeps_entries_of_a_build_that_finished_meanwhile(tmp_path, monkeypatch):
    """Two builds overlap: the second one's save merges (under the lock) what the first saved after the second
    started, instead of overwriting it."""
    calls = []
    install(monkeypatch, fake_tensorrt(10, calls), fake_cudart(), tmp_path / "cache")
    from denoise.runtime import tensorrt_build

    onnx_path = tmp_path / "m.onnx"
    onnx_path.write_bytes(b"x")
    spec = tensorrt_build.engine_spec(onnx_path, "fp16", engine_profile((64, 64), 42, 2))
    timing = tensorrt_build.timing_cache_path(spec)
    original_save = tensorrt_build.save_timing_cache

    def save_after_the_other(config, cache_file):
        cache_file.write_bytes(b"timing:other-build")  # the other process saved while this one built
        original_save(config, cache_file)

    monkeypatch.setattr(tensorrt_build, "save_timing_cache", save_after_the_other)
    tensorrt_build.build_engine(onnx_path, "fp16", engine_profile((64, 64), 42, 2))
    assert set(timing.read_bytes().decode().removeprefix("timing:").split(",")) == {"other-build", "tactic1"}
    assert ("combine",) in calls


def test_info_lists_cached_engines(tmp_path):
    get_or_build(EngineSpec(**SPEC), lambda: b"ENGINE", root=tmp_path)
    import os

    env = {**os.environ, "DENOISE_CACHE_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "denoise", "info", "--json"], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    (engine,) = info["engine_cache"]["engines"]
    assert engine["gpu"] == "NVIDIA H200" and engine["precision"] == "fp16"
    if not TENSORRT_HERE:
        assert engine["matches_this_machine"] is None  # no TensorRT/GPU here to compare with
        assert "TensorRT is not installed" in info["tensorrt"]
