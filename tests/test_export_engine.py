"""FP16 export, engine profiles, the engine cache, and the TensorRT build path.

TensorRT cannot be installed on our machines. The TensorRT test below uses a stand-in module that
defines only the real API names of TensorRT 10.x / 11.x (a misspelt call raises AttributeError): it
proves the call sequence and the version handling, NOT that TensorRT builds a working engine -- that
is scripts/gpu_check.py's job on a GPU machine.
"""

import ctypes
import json
import subprocess
import sys
import textwrap
import types

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from conftest import run_cli
from denoise.errors import DenoiseError
from denoise.export.engine_cache import EngineSpec, get_or_build, list_engines, spec_from_record
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


def test_two_processes_build_once_and_never_see_half_an_engine(tmp_path):
    """Two real processes ask for the same engine at once: one builds (slowly, in two writes), the other
    waits on the lock and reads the finished file."""
    worker = textwrap.dedent(f"""
        import json, sys, time
        from pathlib import Path
        from denoise.export.engine_cache import EngineSpec, get_or_build
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


# ---- TensorRT stand-in: real API names only (see the module docstring: call sequence, not TensorRT) ----

def fake_tensorrt(major: int, calls: list):
    class Enum:
        def __init__(self, **members):
            for name, value in members.items():
                setattr(self, name, value)

    class Logger:
        __slots__ = ()
        WARNING = 2

        def __init__(self, severity):
            calls.append(("Logger", severity))

    class HostMemory(bytes):
        pass

    class TimingCache:
        __slots__ = ("data",)

        def __init__(self, data):
            self.data = data

        def serialize(self):
            return HostMemory(b"timing:" + self.data)

    class Profile:
        __slots__ = ()

        def set_shape(self, name, smallest, optimal, largest):
            calls.append(("set_shape", name, tuple(smallest), tuple(optimal), tuple(largest)))

    class Config:
        __slots__ = ("hardware_compatibility_level", "_cache")

        def set_memory_pool_limit(self, pool, size):
            calls.append(("set_memory_pool_limit", pool, size))

        def add_optimization_profile(self, profile):
            calls.append(("add_optimization_profile",))

        def set_flag(self, flag):
            calls.append(("set_flag", flag))

        def create_timing_cache(self, data):
            return TimingCache(bytes(data))

        def set_timing_cache(self, cache, ignore_mismatch):
            self._cache = cache

        def get_timing_cache(self):
            return self._cache

    class Network:
        __slots__ = ()

    class Builder:
        __slots__ = ()

        def __init__(self, logger):
            pass

        def create_network(self, flags=0):
            calls.append(("create_network", flags))
            return Network()

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            calls.append(("build_serialized_network",))
            return HostMemory(b"ENGINE")

    class OnnxParser:
        __slots__ = ()
        num_errors = 0

        def __init__(self, network, logger):
            pass

        def parse_from_file(self, path):
            calls.append(("parse_from_file", path))
            return True

        def get_error(self, index):
            raise IndexError(index)

    module = types.ModuleType("tensorrt")
    module.__version__ = f"{major}.4.0"
    module.Logger, module.Builder, module.OnnxParser = Logger, Builder, OnnxParser
    module.NetworkDefinitionCreationFlag = Enum(STRONGLY_TYPED=1) if major >= 11 else Enum(EXPLICIT_BATCH=0, STRONGLY_TYPED=1)
    flags = dict(VERSION_COMPATIBLE=8, EXCLUDE_LEAN_RUNTIME=9)
    if major < 11:
        flags.update(FP16=0, INT8=1, BF16=17)  # weak-typing flags, gone in 11.x
    module.BuilderFlag = Enum(**flags)
    module.MemoryPoolType = Enum(WORKSPACE=0)
    module.HardwareCompatibilityLevel = Enum(NONE=0, AMPERE_PLUS=1)
    return module


def fake_cudart():
    class Error:
        cudaSuccess = 0

    props = types.SimpleNamespace(name=b"NVIDIA H200\x00\x00", major=9, minor=0)
    module = types.ModuleType("cuda.bindings.runtime")
    module.cudaError_t = Error
    module.cudaGetDeviceCount = lambda: (0, 1)
    module.cudaGetDeviceProperties = lambda device: (0, props)
    return module


@pytest.mark.parametrize("major", [10, 11])
def test_tensorrt_build_call_sequence(major, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt(major, calls))
    bindings = types.ModuleType("cuda.bindings")
    bindings.runtime = fake_cudart()
    monkeypatch.setitem(sys.modules, "cuda", types.ModuleType("cuda"))
    monkeypatch.setitem(sys.modules, "cuda.bindings", bindings)
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", bindings.runtime)
    monkeypatch.setenv("DENOISE_CACHE_DIR", str(tmp_path / "cache"))
    from denoise.export.tensorrt_build import build_engine

    onnx_path = tmp_path / "m.onnx"
    onnx_path.write_bytes(b"not parsed by the stand-in")
    profile = engine_profile((256, 256), 42, 8)
    path, built = build_engine(onnx_path, "fp16", profile, version_compatible=True, hardware_compatible=True)
    assert built and path.read_bytes() == b"ENGINE"
    assert ("create_network", 1 << 1) in calls  # STRONGLY_TYPED on both versions
    assert ("set_flag", 0) not in calls  # never BuilderFlag.FP16 (0 in the 10.x stand-in)
    assert ("set_flag", 8) in calls  # VERSION_COMPATIBLE
    assert ("set_shape", "noisy", (1, 3, 1, 1), (8, 3, 340, 340), (8, 3, 340, 340)) in calls
    timing = list((tmp_path / "cache").glob("timing-*.cache"))
    assert len(timing) == 1 and timing[0].read_bytes() == b"timing:"
    again, built_again = build_engine(onnx_path, "fp16", profile, version_compatible=True, hardware_compatible=True)
    assert again == path and not built_again and calls.count(("build_serialized_network",)) == 1


def test_info_lists_cached_engines(tmp_path):
    get_or_build(EngineSpec(**SPEC), lambda: b"ENGINE", root=tmp_path)
    import os

    env = {**os.environ, "DENOISE_CACHE_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "denoise", "info", "--json"], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    (engine,) = info["engine_cache"]["engines"]
    assert engine["gpu"] == "NVIDIA H200" and engine["precision"] == "fp16"
    assert engine["matches_this_machine"] is None  # no TensorRT/GPU here to compare with
    assert "TensorRT is not installed" in info["tensorrt"]


def fake_trt_runtime(module, calls: list):
    """Adds Runtime/engine/context to the TensorRT stand-in: an "engine" that copies its input to its
    output (through the stand-in device buffers), so the backend's buffers and copies are exercised too."""

    class Context:
        __slots__ = ("addresses", "shapes")

        def __init__(self):
            self.addresses, self.shapes = {}, {}

        def set_tensor_address(self, name, address):
            self.addresses[name] = address

        def set_input_shape(self, name, shape):
            self.shapes[name] = tuple(shape)

        def execute_async_v3(self, stream_handle):
            calls.append(("execute_async_v3", self.shapes["noisy"]))
            count = int(np.prod(self.shapes["noisy"]))
            ctypes.memmove(self.addresses["denoised"], self.addresses["noisy"], count * 4)
            return True

    class Engine:
        __slots__ = ()
        num_io_tensors = 3

        def get_tensor_name(self, index):
            return ("noisy", "sigma", "denoised")[index]

        def get_tensor_shape(self, name):  # ICudaEngine.get_tensor_shape: -1 for the dynamic axes
            return (-1, 1, -1, -1) if name == "sigma" else (-1, 3, -1, -1)

        def create_execution_context(self):
            return Context()

    class Runtime:
        __slots__ = ()

        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, data):
            return Engine()

    module.Runtime = Runtime
    return module


def fake_cudart_with_memory(calls: list, fail_capture=False):
    """The cuda-python runtime names the backend uses; "device" memory is host memory here."""
    module = fake_cudart()
    blocks = []

    def malloc(nbytes):
        blocks.append(ctypes.create_string_buffer(nbytes))
        return 0, ctypes.addressof(blocks[-1])

    def memcpy(dst, src, nbytes, kind, stream):
        ctypes.memmove(int(dst), int(src), nbytes)
        return (0,)

    def begin_capture(stream, mode):
        calls.append(("begin_capture", mode))
        return (1,) if fail_capture else (0,)

    def launch(graph, stream):
        calls.append(("launch", graph))
        return (0,)

    module.cudaMallocHost = module.cudaMalloc = malloc
    module.cudaFreeHost = module.cudaFree = lambda ptr: (0,)
    module.cudaMemcpyAsync = memcpy
    module.cudaMemcpyKind = types.SimpleNamespace(cudaMemcpyHostToDevice=1, cudaMemcpyDeviceToHost=2)
    module.cudaStreamNonBlocking = 1
    module.cudaStreamCreateWithFlags = lambda flags: (0, 7)  # cudaStream_t converts to int; so does this
    module.cudaStreamDestroy = module.cudaStreamSynchronize = lambda stream: (0,)
    module.cudaStreamCaptureMode = types.SimpleNamespace(cudaStreamCaptureModeThreadLocal=2)
    module.cudaStreamBeginCapture = begin_capture
    module.cudaStreamEndCapture = lambda stream: (0, "graph")
    module.cudaGraphInstantiate = lambda graph, flags: (0, f"exec{sum(c[0] == 'begin_capture' for c in calls)}")
    module.cudaGraphLaunch = launch
    module.cudaGraphDestroy = module.cudaGraphExecDestroy = lambda graph: (0,)
    return module


@pytest.mark.parametrize("fail_capture", [False, True])
def test_tensorrt_backend_cuda_graph_per_shape(fail_capture, tmp_path, monkeypatch):
    """Stand-ins again (call sequence, not TensorRT): one ordinary run then a capture per new shape, a
    replay for a shape seen before, no more than MAX_GRAPHS graphs, and plain runs if capture fails."""
    calls = []
    cudart = fake_cudart_with_memory(calls, fail_capture)
    monkeypatch.setitem(sys.modules, "tensorrt", fake_trt_runtime(fake_tensorrt(10, calls), calls))
    bindings = types.ModuleType("cuda.bindings")
    bindings.runtime = cudart
    monkeypatch.setitem(sys.modules, "cuda", types.ModuleType("cuda"))
    monkeypatch.setitem(sys.modules, "cuda.bindings", bindings)
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", cudart)
    monkeypatch.setenv("DENOISE_CACHE_DIR", str(tmp_path / "cache"))
    from denoise.runtime.tensorrt_backend import MAX_GRAPHS, TensorRTBackend

    onnx_path = tmp_path / "m.onnx"
    onnx_path.write_bytes(b"not parsed by the stand-in")
    with TensorRTBackend(onnx_path, engine_profile((64, 64), 42, 4)) as backend:
        rng = np.random.default_rng(0)
        batch = rng.random((4, 3, 148, 148), dtype=np.float32)
        sigma = np.full((4, 1, 148, 148), 0.1, np.float32)
        for _ in range(3):
            assert np.array_equal(backend.infer(batch, sigma), batch)  # the identity "engine", via the buffers
        runs = [c for c in calls if c[0] in ("execute_async_v3", "begin_capture", "launch")]
        if fail_capture:
            assert not backend.graphs and not backend.cuda_graphs
            assert [c[0] for c in runs] == ["execute_async_v3", "begin_capture"] + ["execute_async_v3"] * 3
        else:
            assert [c[0] for c in runs] == ["execute_async_v3", "begin_capture", "execute_async_v3", "launch", "launch", "launch"]
            for h in range(1, MAX_GRAPHS + 3):
                small = rng.random((1, 3, h, 5), dtype=np.float32)
                assert np.array_equal(backend.infer(small, np.full((1, 1, h, 5), 0.1, np.float32)), small)
            assert len(backend.graphs) == MAX_GRAPHS
