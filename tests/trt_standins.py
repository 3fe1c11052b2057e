"""Stand-ins for TensorRT and cuda-python, which cannot be installed on our machines (CPU or the lent GPU).

They define only real API names and values of TensorRT 10.x / 11.x and cuda-bindings 12/13 (a misspelt call
raises AttributeError; classes use __slots__ so a misspelt attribute cannot be set): tests with them prove
call sequences, checks and version handling, NOT that TensorRT builds or runs a working engine -- that is
scripts/gpu_check.py's job wherever TensorRT exists. "Device" memory is host memory here, and the "engine"
copies its input to its output, so buffers and copies are exercised too.
"""

import ctypes
import sys
import types

import numpy as np


CAPTURE = {"work": None}  # while a stream capture is open: the work queued on it, which its graph replays


class Enum:
    def __init__(self, **members):
        for name, value in members.items():
            setattr(self, name, value)


def fake_tensorrt(major: int, calls: list, attach_cache: bool = True, timing_cache_after_build: bool = True):
    class Logger:
        __slots__ = ()
        WARNING = 2

        def __init__(self, severity):
            calls.append(("Logger", severity))

    class HostMemory(bytes):
        pass

    class TimingCache:  # ITimingCache: its "entries" are a set of bytes tokens
        __slots__ = ("entries",)

        def __init__(self, data):
            self.entries = set(bytes(data).decode().removeprefix("timing:").split(",")) - {""}

        def serialize(self):
            return HostMemory(("timing:" + ",".join(sorted(self.entries))).encode())

        def combine(self, input_cache, ignore_mismatch):
            calls.append(("combine",))
            self.entries |= input_cache.entries
            return True

    class Profile:
        __slots__ = ()

        def set_shape(self, name, smallest, optimal, largest):
            calls.append(("set_shape", name, tuple(smallest), tuple(optimal), tuple(largest)))

    class Config:
        __slots__ = ("hardware_compatibility_level", "_cache")

        def __init__(self):
            self._cache = None

        def set_memory_pool_limit(self, pool, size):
            calls.append(("set_memory_pool_limit", pool, size))

        def add_optimization_profile(self, profile):
            calls.append(("add_optimization_profile",))

        def set_flag(self, flag):
            calls.append(("set_flag", flag))

        def create_timing_cache(self, data):
            return TimingCache(bytes(data))

        def set_timing_cache(self, cache, ignore_mismatch):  # returns whether it attached (IBuilderConfig)
            attached = attach_cache or not cache.entries
            calls.append(("set_timing_cache", attached))
            if attached:
                self._cache = cache
            return attached

        def get_timing_cache(self):  # None when no cache is set
            if not timing_cache_after_build:
                return None
            if self._cache is not None:
                self._cache.entries.add(f"tactic{len([c for c in calls if c[0] == 'build_serialized_network'])}")
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
    if major >= 11:  # 11.x: STRONGLY_TYPED deprecated (always on), EXPLICIT_BATCH gone
        module.NetworkDefinitionCreationFlag = Enum(STRONGLY_TYPED=0, PREFER_JIT_PYTHON_PLUGINS=1,
                                                    PREFER_AOT_PYTHON_PLUGINS=2)
    else:
        module.NetworkDefinitionCreationFlag = Enum(EXPLICIT_BATCH=0, STRONGLY_TYPED=1, PREFER_JIT_PYTHON_PLUGINS=2,
                                                    PREFER_AOT_PYTHON_PLUGINS=3)
    flags = dict(VERSION_COMPATIBLE=8, EXCLUDE_LEAN_RUNTIME=9)
    if major < 11:
        flags.update(FP16=0, INT8=1, BF16=17)  # weak-typing flags, gone in 11.x
    module.BuilderFlag = Enum(**flags)
    module.MemoryPoolType = Enum(WORKSPACE=0)
    module.HardwareCompatibilityLevel = Enum(NONE=0, AMPERE_PLUS=1)
    module.TensorIOMode = Enum(NONE=0, INPUT=1, OUTPUT=2)
    module.DataType = Enum(FLOAT=0, HALF=1, INT8=2, INT32=3, BOOL=4, UINT8=5, FP8=6, BF16=7, INT64=8)
    module.ExecutionContextAllocationStrategy = Enum(STATIC=0, ON_PROFILE_CHANGE=1, USER_MANAGED=2)
    return module


def add_runtime(module, calls: list, io_dtype: int = 0, context_fails: bool = False, address_fails: bool = False):
    """Runtime, ICudaEngine and IExecutionContext on the TensorRT stand-in; the "engine" copies noisy to denoised."""

    class Context:
        __slots__ = ("addresses", "shapes", "memory", "index")

        def __init__(self, index):
            self.addresses, self.shapes, self.memory, self.index = {}, {}, None, index

        def set_device_memory(self, memory, size):
            self.memory = (memory, size)

        def set_tensor_address(self, name, address):
            self.addresses[name] = address
            return not address_fails

        def set_input_shape(self, name, shape):
            calls.append(("set_input_shape", self.index, name, tuple(shape)))
            self.shapes[name] = tuple(shape)
            return True

        def execute_async_v3(self, stream_handle):
            assert self.memory is not None, "a USER_MANAGED context runs only with its device memory set"
            calls.append(("execute_async_v3", self.index, self.shapes["noisy"]))
            count = int(np.prod(self.shapes["noisy"]))
            dst, src = self.addresses["denoised"], self.addresses["noisy"]
            work = lambda: ctypes.memmove(dst, src, count * 4)  # what a graph captures: kernels with fixed shapes
            if CAPTURE["work"] is not None:
                CAPTURE["work"].append(work)
            else:
                work()
            return True

    class Engine:
        __slots__ = ("contexts",)
        num_io_tensors = 3
        device_memory_size_v2 = 4096

        def __init__(self):
            self.contexts = []

        def get_tensor_name(self, index):
            return ("noisy", "sigma", "denoised")[index]

        def get_tensor_shape(self, name):  # ICudaEngine.get_tensor_shape: -1 for the dynamic axes
            return (-1, 1, -1, -1) if name == "sigma" else (-1, 3, -1, -1)

        def get_tensor_mode(self, name):
            return module.TensorIOMode.OUTPUT if name == "denoised" else module.TensorIOMode.INPUT

        def get_tensor_dtype(self, name):
            return io_dtype

        def create_execution_context(self, strategy=0):
            calls.append(("create_execution_context", strategy))
            if context_fails:
                return None  # what TensorRT returns when it cannot allocate
            self.contexts.append(Context(len(self.contexts)))
            return self.contexts[-1]

    class Runtime:
        __slots__ = ("engine_host_code_allowed",)

        def __init__(self, logger):
            self.engine_host_code_allowed = False

        def deserialize_cuda_engine(self, data):
            calls.append(("deserialize_cuda_engine", self.engine_host_code_allowed))
            return Engine()

    module.Runtime = Runtime
    return module


def fake_cudart(calls: list | None = None, fail_capture: bool = False, fail_instantiate: bool = False):
    """The cuda-python runtime names the code uses (cuda.bindings.runtime)."""
    calls = [] if calls is None else calls

    class Error:
        cudaSuccess = 0

    props = types.SimpleNamespace(name=b"NVIDIA H200\x00\x00", major=9, minor=0)
    module = types.ModuleType("cuda.bindings.runtime")
    module.cudaError_t = Error
    module.cudaGetDeviceCount = lambda: (0, 1)
    module.cudaGetDeviceProperties = lambda device: (0, props)
    blocks = {}

    def malloc(nbytes):
        block = ctypes.create_string_buffer(nbytes)
        blocks[ctypes.addressof(block)] = block
        return 0, ctypes.addressof(block)

    def free(ptr):
        calls.append(("free", int(ptr)))
        return (0,)

    def memcpy(dst, src, nbytes, kind, stream):
        ctypes.memmove(int(dst), int(src), nbytes)
        return (0,)

    def begin_capture(stream, mode):
        calls.append(("begin_capture", mode))
        if fail_capture:
            return (1,)
        CAPTURE["work"] = []
        return (0,)

    def end_capture(stream):
        work, CAPTURE["work"] = CAPTURE["work"], None
        return 0, ("graph", tuple(work or ()))

    def launch(graph, stream):
        calls.append(("launch", graph[0]))
        for work in graph[1]:
            work()
        return (0,)

    def instantiate(graph, flags):
        if fail_instantiate:
            return (1, None)
        return 0, (f"exec{sum(c[0] == 'begin_capture' for c in calls)}", graph[1])

    module.cudaMallocHost = module.cudaMalloc = malloc
    module.cudaFreeHost = module.cudaFree = free
    module.cudaMemcpyAsync = memcpy
    module.cudaMemcpyKind = types.SimpleNamespace(cudaMemcpyHostToDevice=1, cudaMemcpyDeviceToHost=2)
    module.cudaStreamNonBlocking = 1
    module.cudaStreamCreateWithFlags = lambda flags: (0, 7)  # cudaStream_t converts to int; so does this
    module.cudaStreamSynchronize = lambda stream: (0,)
    module.cudaStreamDestroy = lambda stream: calls.append(("stream_destroy",)) or (0,)
    module.cudaStreamCaptureMode = types.SimpleNamespace(cudaStreamCaptureModeThreadLocal=2)
    module.cudaStreamBeginCapture = begin_capture
    module.cudaStreamEndCapture = end_capture
    module.cudaGraphInstantiate = instantiate
    module.cudaGraphLaunch = launch
    module.cudaGraphDestroy = lambda graph: calls.append(("graph_destroy", graph[0])) or (0,)
    module.cudaGraphExecDestroy = lambda graph: calls.append(("graph_exec_destroy", graph[0])) or (0,)
    return module


def install(monkeypatch, tensorrt_module, cudart_module, cache_dir):
    """Put the stand-ins where ``import tensorrt`` and ``from cuda.bindings import runtime`` find them."""
    bindings = types.ModuleType("cuda.bindings")
    bindings.runtime = cudart_module
    monkeypatch.setitem(sys.modules, "tensorrt", tensorrt_module)
    monkeypatch.setitem(sys.modules, "cuda", types.ModuleType("cuda"))
    monkeypatch.setitem(sys.modules, "cuda.bindings", bindings)
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", cudart_module)
    monkeypatch.setenv("DENOISE_CACHE_DIR", str(cache_dir))
