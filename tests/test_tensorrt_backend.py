"""The TensorRT backend with stand-ins for TensorRT and cuda-python (tests/trt_standins.py: real API names
and values only). What these prove: call sequences, the checks at start-up, error types, CUDA graph and
context bookkeeping, the engine cache's integrity checks, and that ``auto`` falls back. NOT that TensorRT
runs the model -- nothing here can; scripts/gpu_check.py does that wherever TensorRT exists.
"""

import os

import numpy as np
import pytest

from trt_standins import add_runtime, fake_cudart, fake_tensorrt, install
from denoise.errors import BackendFault, DenoiseError
from denoise.runtime.tiling import engine_profile

PROFILE = engine_profile((64, 64), 42, 4)


def start(monkeypatch, tmp_path, calls, major=10, cudart=None, **runtime):
    install(monkeypatch, add_runtime(fake_tensorrt(major, calls), calls, **runtime),
            cudart or fake_cudart(calls), tmp_path / "cache")
    from denoise.runtime.tensorrt_backend import TensorRTBackend

    onnx_path = tmp_path / "m.onnx"
    onnx_path.write_bytes(b"not parsed by the stand-in")
    return TensorRTBackend, onnx_path


def batch(n, h, w, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 3, h, w), dtype=np.float32), np.full((n, 1, h, w), 0.1, np.float32)


@pytest.mark.parametrize("fail_capture", [False, True])
def test_cuda_graph_per_shape_each_on_its_own_context(fail_capture, tmp_path, monkeypatch):
    """A, B, A: each captured shape gets a context of its own whose input shapes are set once and never
    changed, so replaying A's graph after running B never meets a context in B's state (TensorRT's docs:
    a graph is tied to its context's state). At most MAX_GRAPHS; plain runs if capture fails."""
    calls = []
    backend_type, onnx_path = start(monkeypatch, tmp_path, calls, cudart=fake_cudart([], fail_capture))
    from denoise.runtime.tensorrt_backend import MAX_GRAPHS

    with backend_type(onnx_path, PROFILE) as backend:
        a, b = batch(4, 148, 148), batch(2, 100, 60, seed=1)
        for x, s in (a, b, a, b, a):
            assert np.array_equal(backend.infer(x, s), x)  # the identity "engine", via the buffers
        if fail_capture:
            assert not backend.graphs and not backend.cuda_graphs
            return
        assert set(backend.graphs) == {a[0].shape, b[0].shape}
        shape_sets = [c for c in calls if c[0] == "set_input_shape"]
        by_context = {}
        for _, index, name, shape in shape_sets:
            by_context.setdefault(index, []).append((name, shape))
        for index, context in ((backend.contexts[a[0].shape].index, a), (backend.contexts[b[0].shape].index, b)):
            assert by_context[index] == [("noisy", context[0].shape), ("sigma", context[1].shape)]  # set once
        assert backend.context.index not in by_context  # the plain context never ran: all shapes were captured
        for h in range(1, MAX_GRAPHS + 3):
            x, s = batch(1, h, 5)
            assert np.array_equal(backend.infer(x, s), x)
        assert len(backend.graphs) == MAX_GRAPHS


def test_failed_graph_instantiation_destroys_the_graph(tmp_path, monkeypatch):
    calls = []
    backend_type, onnx_path = start(monkeypatch, tmp_path, calls, cudart=fake_cudart(calls, fail_instantiate=True))
    with backend_type(onnx_path, PROFILE) as backend:
        x, s = batch(1, 30, 30)
        assert np.array_equal(backend.infer(x, s), x)
        assert not backend.cuda_graphs and ("graph_destroy", "graph") in calls


def test_no_execution_context_is_a_backend_fault_and_auto_falls_back(tmp_path, monkeypatch):
    calls = []
    backend_type, onnx_path = start(monkeypatch, tmp_path, calls, context_fails=True)
    with pytest.raises(BackendFault, match="create_execution_context"):
        backend_type(onnx_path, PROFILE)
    from denoise import Denoiser

    with Denoiser(backend="auto") as denoiser:  # the bundled model: TensorRT "starts", faults, the next one takes over
        assert denoiser.backend.name != "tensorrt"
    assert ("create_execution_context", 2) in calls  # USER_MANAGED: contexts share one activation block


def test_false_from_set_tensor_address_is_a_backend_fault(tmp_path, monkeypatch):
    backend_type, onnx_path = start(monkeypatch, tmp_path, [], address_fails=True)
    with pytest.raises(BackendFault, match="set_tensor_address"):
        backend_type(onnx_path, PROFILE)


def test_engine_with_fp16_io_is_refused(tmp_path, monkeypatch):
    """A strongly typed engine built from an FP16-I/O ONNX would get FP32 bytes: wrong pictures, no error."""
    backend_type, onnx_path = start(monkeypatch, tmp_path, [], io_dtype=1)  # DataType.HALF
    with pytest.raises(DenoiseError, match="FP32"):
        backend_type(onnx_path, PROFILE)


def test_close_frees_everything_and_denoiser_close_calls_it(tmp_path, monkeypatch):
    calls = []
    backend_type, onnx_path = start(monkeypatch, tmp_path, calls)
    backend = backend_type(onnx_path, PROFILE)
    backend.infer(*batch(1, 20, 20))
    backend.close()
    backend.close()  # idempotent
    assert calls.count(("stream_destroy",)) == 1 and sum(c[0] == "graph_exec_destroy" for c in calls) == 1
    assert sum(c[0] == "free" for c in calls) == 2 * 3 + 1  # pinned + device per buffer, and the shared scratch

    from denoise import Denoiser

    calls.clear()
    with Denoiser(backend="tensorrt") as denoiser:
        assert denoiser.backend.name == "tensorrt"
    assert calls.count(("stream_destroy",)) == 1


def test_version_compatible_engine_loads_with_host_code_allowed(tmp_path, monkeypatch):
    calls = []
    start(monkeypatch, tmp_path, calls)
    from denoise.runtime.tensorrt_build import build_engine
    from denoise.runtime import tensorrt_backend

    monkeypatch.setattr(tensorrt_backend, "build_engine",
                        lambda path, precision, profile: build_engine(path, precision, profile, version_compatible=True))
    onnx_path = tmp_path / "m.onnx"
    with tensorrt_backend.TensorRTBackend(onnx_path, PROFILE):
        pass
    assert ("deserialize_cuda_engine", True) in calls


def test_engine_cache_refuses_changed_or_foreign_engines(tmp_path, monkeypatch):
    backend_type, onnx_path = start(monkeypatch, tmp_path, [])
    with backend_type(onnx_path, PROFILE):
        pass
    (engine,) = (tmp_path / "cache" / "engines").glob("*.engine")
    from denoise.runtime.engine_cache import read_engine

    assert read_engine(engine)[0] == b"ENGINE"
    os.chmod(engine, 0o666)
    with pytest.raises(DenoiseError, match="writable by others"):
        read_engine(engine)
    os.chmod(engine, 0o600)
    engine.write_bytes(b"EVIL!!")
    with pytest.raises(DenoiseError, match="sha256"):
        backend_type(onnx_path, PROFILE)
    engine.with_suffix(".json").unlink()
    with pytest.raises(DenoiseError, match="no record"):
        read_engine(engine)


def test_gpu_check_script_runs_end_to_end_on_the_stand_ins(tmp_path, monkeypatch, capsys):
    """scripts/gpu_check.py is how TensorRT gets verified on a GPU; run its code here on the stand-ins so a
    wrong call in the script itself is found before a GPU session is spent on it. The identity "engine" does
    not denoise, so the photo checks must fail -- and the graph checks must pass."""
    import runpy

    from conftest import REPO

    start(monkeypatch, tmp_path, [])
    module = runpy.run_path(str(REPO / "scripts" / "gpu_check.py"))
    assert module["main"]() == 1
    out = capsys.readouterr().out
    assert "| graphs captured and used | 2 graphs, on 2 contexts | - | - | - | ok |" in out
    assert out.count("vs plain run | - | - | - | ok |") == 5  # A, B, A, B, A replayed as the plain runs gave
    failed = out.split("RESULT:")[1]
    assert "cbsd68-21077.png" in failed and "graph" not in failed
