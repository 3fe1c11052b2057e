"""TensorRT backend: a cached engine, device and pinned host buffers from cuda-python, a non-default
stream and ``execute_async_v3``, and a CUDA graph per input shape. Same contract as the other backends
(runtime.contract).

CUDA graphs: the runtime feeds few shapes (every tile of a large image has one shape, see runtime.tiling),
so the engine's kernels for each shape are captured once into a graph and replayed, which removes the
per-kernel launch cost. TensorRT's docs: a captured graph is specific to the input shapes *and the state of
the execution context* it was captured from, and the context needs one ordinary run after a shape change
before capture. So each captured shape gets its own execution context, whose shapes are set once and never
changed; ordinary runs of other shapes use a separate context. All contexts share one block of activation
memory (``USER_MANAGED`` allocation), which is safe because they run one at a time on one stream. At most
MAX_GRAPHS shapes are captured (a folder of many differently sized small images would otherwise grow without
end); if a capture fails, graphs are turned off for this backend.

Errors: TensorRT and cuda-python failures (a False return, a None, a RuntimeError, a CUDA error code) are
raised as BackendFault -- not the user's to fix -- so ``--backend auto`` falls back at start-up and a batch
stops after a few in a row. An engine that does not take what this runtime feeds (names, I/O modes, FP32 I/O)
is refused at start-up with a DenoiseError saying to rebuild it.

Written against the documented TensorRT 10/11 and cuda-python 12/13 APIs; TensorRT cannot be installed on
the team's machines (CPU or the lent GPU), so this module is exercised by stand-ins in the tests (call
sequences only) and by ``scripts/gpu_check.py`` wherever TensorRT exists.
"""

from __future__ import annotations

import ctypes
import logging
from pathlib import Path

import numpy as np

from denoise.errors import BackendFault, DenoiseError
from denoise.runtime.contract import BackendBase
from denoise.runtime.engine_cache import read_engine
from denoise.runtime.levels import sigma_feed
from denoise.runtime.tensorrt_build import build_engine, import_cudart, import_tensorrt

log = logging.getLogger(__name__)

MAX_GRAPHS = 8


def _check(result):
    """cuda-python calls return (error, *values): raise BackendFault on error, return the value(s)."""
    cudart = import_cudart()
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != cudart.cudaError_t.cudaSuccess:
        raise BackendFault(f"CUDA call failed: {err}")
    return values[0] if len(values) == 1 else values


def _ok(returned, what: str):
    """TensorRT calls that report failure by returning False or None: raise BackendFault then."""
    if returned is None or returned is False:
        raise BackendFault(f"TensorRT {what} failed")
    return returned


class _Buffer:
    """A pinned host buffer (viewed as a numpy array) and a device buffer of the same size."""

    def __init__(self, count: int):
        cudart = import_cudart()
        self.nbytes = count * 4
        self.host_ptr = _check(cudart.cudaMallocHost(self.nbytes))
        self.device_ptr = _check(cudart.cudaMalloc(self.nbytes))
        self.host = np.ctypeslib.as_array(ctypes.cast(int(self.host_ptr), ctypes.POINTER(ctypes.c_float)), (count,))

    def free(self):
        cudart = import_cudart()
        cudart.cudaFreeHost(self.host_ptr)
        cudart.cudaFree(self.device_ptr)


class TensorRTBackend(BackendBase):
    name = "tensorrt"
    on_gpu = True

    def __init__(self, onnx_path: Path, profile: tuple, precision: str = "fp16", cuda_graphs: bool = True):
        self.precision = precision
        trt = self.trt = import_tensorrt()
        self.cudart = import_cudart()
        self.buffers: dict[str, _Buffer] = {}
        self.contexts: dict[tuple, object] = {}  # captured input shape -> its own execution context
        self.graphs: dict[tuple, object] = {}  # captured input shape -> instantiated CUDA graph
        self.scratch = self.stream = None
        engine_path, _ = build_engine(Path(onnx_path), precision, profile)
        data, record = read_engine(engine_path)
        try:
            self._start(trt, data, record, profile)
        except (DenoiseError, BackendFault):
            self.close()
            raise
        except Exception as exc:  # TensorRT raises RuntimeError/TypeError for what its C++ API reports
            self.close()
            raise BackendFault(f"TensorRT could not start: {exc}") from exc
        self.cuda_graphs = cuda_graphs
        log.info("TensorRT %s engine %s", trt.__version__, engine_path)

    def _start(self, trt, data: bytes, record: dict, profile: tuple) -> None:
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        if record["spec"].get("version_compatible"):
            # A version-compatible engine carries its own lean runtime: host code TensorRT refuses to run
            # unless allowed. read_engine has checked that the engine is the one this cache built.
            self.runtime.engine_host_code_allowed = True
        self.engine = _ok(self.runtime.deserialize_cuda_engine(data), "deserialize_cuda_engine (a damaged or "
                          "foreign engine file)")
        # [N,1,H,W] noise maps, or [N] for models exported before maps (ICudaEngine.get_tensor_shape: -1 = dynamic)
        self.sigma_input = "none"
        if self._check_io(trt):
            self.sigma_input = "map" if len(self.engine.get_tensor_shape("sigma")) == 4 else "number"
        (_, _, _, noisy_max), *_ = profile
        self.max_shape = tuple(noisy_max)
        count = int(np.prod(self.max_shape))
        self.buffers = {"noisy": _Buffer(count), "denoised": _Buffer(count)}
        if self.sigma_input != "none":
            self.buffers["sigma"] = _Buffer(count // 3 if self.sigma_input == "map" else self.max_shape[0])
        self.scratch_bytes = int(self.engine.device_memory_size_v2)
        self.scratch = _check(self.cudart.cudaMalloc(max(self.scratch_bytes, 1)))
        self.context = self._new_context()
        self.stream = _check(self.cudart.cudaStreamCreateWithFlags(self.cudart.cudaStreamNonBlocking))

    def _check_io(self, trt) -> bool:
        """Refuse an engine whose tensors are not the ones this runtime feeds: ``noisy`` in, ``denoised`` out,
        optionally ``sigma`` in, all FP32 (a strongly typed engine takes its I/O types from the ONNX, and an
        FP16-I/O ONNX would get FP32 bytes: wrong pictures, no error). Returns whether it takes ``sigma``."""
        names = {self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)}
        want = {"noisy": trt.TensorIOMode.INPUT, "denoised": trt.TensorIOMode.OUTPUT}
        if "sigma" in names:
            want["sigma"] = trt.TensorIOMode.INPUT
        problems = [f"tensors {sorted(names)}, expected {sorted(want)}"] if names != set(want) else []
        for name in sorted(set(want) & names):
            mode, dtype = self.engine.get_tensor_mode(name), self.engine.get_tensor_dtype(name)
            if mode != want[name]:
                problems.append(f"{name} is {mode}, expected {want[name]}")
            if dtype != trt.DataType.FLOAT:
                problems.append(f"{name} is {dtype}, expected FP32 ({trt.DataType.FLOAT})")
        if problems:
            raise DenoiseError("this TensorRT engine does not take what denoise feeds (" + "; ".join(problems)
                               + "); export the model again with: denoise export --fp16")
        return "sigma" in names

    def _new_context(self):
        """An execution context on the shared activation memory, its tensors bound to the I/O buffers."""
        strategy = self.trt.ExecutionContextAllocationStrategy.USER_MANAGED
        context = _ok(self.engine.create_execution_context(strategy), "create_execution_context (out of GPU memory?)")
        context.set_device_memory(int(self.scratch), self.scratch_bytes)
        for name, buffer in self.buffers.items():
            _ok(context.set_tensor_address(name, int(buffer.device_ptr)), f"set_tensor_address({name!r})")
        return context

    def infer(self, noisy: np.ndarray, sigma: np.ndarray | None = None) -> np.ndarray:
        """noisy: float32 [N,3,H,W] within the engine's profile; sigma: float32 [N,1,H,W] noise maps."""
        n, c, h, w = noisy.shape
        if n > self.max_shape[0] or h > self.max_shape[2] or w > self.max_shape[3]:
            raise DenoiseError(f"input {noisy.shape} exceeds the engine's profile {self.max_shape}")
        if sigma is None and self.sigma_input != "none":
            raise DenoiseError("this model needs a noise level: give sigma as [N,1,H,W] maps")
        try:
            return self._infer(noisy, sigma)
        except (DenoiseError, BackendFault):
            raise
        except Exception as exc:  # TensorRT/cuda-python raising instead of returning an error
            raise BackendFault(f"TensorRT failed on a {noisy.shape} batch: {exc}") from exc

    def _infer(self, noisy: np.ndarray, sigma: np.ndarray | None) -> np.ndarray:
        h2d, d2h = self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        shapes = {"noisy": noisy.shape}
        inputs = {"noisy": np.ascontiguousarray(noisy, np.float32).reshape(-1)}
        if self.sigma_input != "none":
            feed = sigma_feed(sigma, self.sigma_input)
            inputs["sigma"], shapes["sigma"] = feed.reshape(-1), feed.shape
        for name, values in inputs.items():
            buffer = self.buffers[name]
            buffer.host[:values.size] = values
            _check(self.cudart.cudaMemcpyAsync(buffer.device_ptr, buffer.host_ptr, values.size * 4, h2d, self.stream))
        graph = self._graph_for(noisy.shape, shapes)
        if graph is not None:
            _check(self.cudart.cudaGraphLaunch(graph, self.stream))
        else:
            self._set_shapes(self.context, shapes)
            _ok(self.context.execute_async_v3(int(self.stream)), "execution")
        out = self.buffers["denoised"]
        _check(self.cudart.cudaMemcpyAsync(out.host_ptr, out.device_ptr, noisy.size * 4, d2h, self.stream))
        _check(self.cudart.cudaStreamSynchronize(self.stream))
        return out.host[:noisy.size].reshape(noisy.shape).copy()

    @staticmethod
    def _set_shapes(context, shapes: dict) -> None:
        for name, shape in shapes.items():
            _ok(context.set_input_shape(name, tuple(shape)), f"set_input_shape({name!r}, {tuple(shape)})")

    def _graph_for(self, shape: tuple, shapes: dict):
        """The CUDA graph for this input shape (captured on first use, on a context of its own), or None to
        run without one. Called with the inputs' copies queued on the stream."""
        if not self.cuda_graphs:
            return None
        if shape in self.graphs or len(self.graphs) >= MAX_GRAPHS:
            return self.graphs.get(shape)
        cudart = self.cudart
        try:
            context = self._new_context()
            self._set_shapes(context, shapes)
            _ok(context.execute_async_v3(int(self.stream)), "execution")  # the ordinary run TensorRT wants first
            _check(cudart.cudaStreamSynchronize(self.stream))
            _check(cudart.cudaStreamBeginCapture(self.stream, cudart.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal))
            try:
                captured = context.execute_async_v3(int(self.stream))
            finally:
                graph = _check(cudart.cudaStreamEndCapture(self.stream))
            try:
                _ok(captured, "execution during CUDA graph capture")
                self.graphs[shape] = _check(cudart.cudaGraphInstantiate(graph, 0))
            finally:
                cudart.cudaGraphDestroy(graph)  # the instantiated graph does not need it; a failed one neither
            self.contexts[shape] = context
        except BackendFault as exc:
            log.info("CUDA graphs turned off: capture failed (%s)", exc)
            self.cuda_graphs = False
            return None
        return self.graphs[shape]

    def close(self):
        """Free the graphs, contexts, buffers and stream (idempotent)."""
        for graph in self.graphs.values():
            self.cudart.cudaGraphExecDestroy(graph)
        self.graphs, self.contexts = {}, {}
        self.context = self.engine = None
        for buffer in self.buffers.values():
            buffer.free()
        self.buffers = {}
        if self.scratch is not None:
            self.cudart.cudaFree(self.scratch)
            self.scratch = None
        if self.stream is not None:
            self.cudart.cudaStreamDestroy(self.stream)
            self.stream = None
