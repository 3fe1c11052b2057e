"""TensorRT backend: a cached engine, device and pinned host buffers from cuda-python, a non-default
stream and ``execute_async_v3``, and a CUDA graph per input shape. Same inference interface as
OnnxRuntimeBackend (``name``, ``takes_sigma``, ``infer``), usable as a context manager; the Denoiser
reads the model card from ONNX Runtime.

CUDA graphs: the runtime feeds few shapes (every tile of a large image has one shape, see
runtime.tiling), so the engine's kernels for each shape are captured once into a graph and replayed,
which removes the per-kernel launch cost. TensorRT wants one ordinary run after a shape change before
capture. At most MAX_GRAPHS shapes are kept (a folder of many differently sized small images would
otherwise grow without end); other shapes run without a graph, and if a capture fails graphs are
turned off for this backend.

Written against the documented TensorRT 10/11 and cuda-python APIs; TensorRT cannot be installed on
the team's CPU machines, so this module is exercised by ``scripts/gpu_check.py`` on a GPU machine.
"""

from __future__ import annotations

import ctypes
import logging
from pathlib import Path

import numpy as np

from denoise.errors import DenoiseError
from denoise.export.tensorrt_build import build_engine, import_cudart, import_tensorrt
from denoise.runtime.levels import sigma_feed

log = logging.getLogger(__name__)

MAX_GRAPHS = 8


def _check(result):
    """cuda-python calls return (error, *values): raise on error, return the value(s)."""
    cudart = import_cudart()
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != cudart.cudaError_t.cudaSuccess:
        raise DenoiseError(f"CUDA call failed: {err}")
    return values[0] if len(values) == 1 else values


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


class TensorRTBackend:
    name = "tensorrt"

    def __init__(self, onnx_path: Path, profile: tuple, precision: str = "fp16", cuda_graphs: bool = True):
        trt = import_tensorrt()
        self.cudart = import_cudart()
        engine_path, _ = build_engine(Path(onnx_path), precision, profile)
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self.runtime.deserialize_cuda_engine(engine_path.read_bytes())
        if self.engine is None:
            raise DenoiseError(f"TensorRT could not load the cached engine {engine_path}; delete it to rebuild")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.takes_sigma = "sigma" in names
        # [N,1,H,W] noise maps, or [N] for models exported before maps (ICudaEngine.get_tensor_shape: -1 = dynamic)
        self.sigma_rank = len(self.engine.get_tensor_shape("sigma")) if self.takes_sigma else 0
        (_, _, _, noisy_max), *_ = profile
        self.max_shape = tuple(noisy_max)
        count = int(np.prod(self.max_shape))
        self.buffers = {"noisy": _Buffer(count), "denoised": _Buffer(count)}
        if self.takes_sigma:
            self.buffers["sigma"] = _Buffer(count // 3 if self.sigma_rank == 4 else self.max_shape[0])
        for name, buffer in self.buffers.items():
            self.context.set_tensor_address(name, int(buffer.device_ptr))
        self.stream = _check(self.cudart.cudaStreamCreateWithFlags(self.cudart.cudaStreamNonBlocking))
        self.cuda_graphs = cuda_graphs
        self.graphs: dict[tuple, object] = {}  # input shape -> instantiated CUDA graph
        log.info("TensorRT %s engine %s", trt.__version__, engine_path)

    def infer(self, noisy: np.ndarray, sigma: np.ndarray) -> np.ndarray:
        """noisy: float32 [N,3,H,W] within the engine's profile; sigma: float32 [N,1,H,W] noise maps."""
        n, c, h, w = noisy.shape
        if n > self.max_shape[0] or h > self.max_shape[2] or w > self.max_shape[3]:
            raise DenoiseError(f"input {noisy.shape} exceeds the engine's profile {self.max_shape}")
        h2d, d2h = self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        size = noisy.size
        inputs = {"noisy": noisy.reshape(-1)}
        self.context.set_input_shape("noisy", (n, c, h, w))
        if self.takes_sigma:
            feed = sigma_feed(sigma, self.sigma_rank)
            inputs["sigma"] = feed.reshape(-1)
            self.context.set_input_shape("sigma", feed.shape)
        for name, values in inputs.items():
            buffer = self.buffers[name]
            buffer.host[:values.size] = values
            _check(self.cudart.cudaMemcpyAsync(buffer.device_ptr, buffer.host_ptr, values.size * 4, h2d, self.stream))
        graph = self._graph_for(noisy.shape)
        if graph is not None:
            _check(self.cudart.cudaGraphLaunch(graph, self.stream))
        elif not self.context.execute_async_v3(int(self.stream)):
            raise DenoiseError("TensorRT execution failed")
        out = self.buffers["denoised"]
        _check(self.cudart.cudaMemcpyAsync(out.host_ptr, out.device_ptr, size * 4, d2h, self.stream))
        _check(self.cudart.cudaStreamSynchronize(self.stream))
        return out.host[:size].reshape(n, c, h, w).copy()

    def _graph_for(self, shape: tuple):
        """The CUDA graph for this input shape (captured on first use), or None to run without one.
        Called with the input shapes set and the inputs' copies queued on the stream."""
        if not self.cuda_graphs:
            return None
        if shape in self.graphs or len(self.graphs) >= MAX_GRAPHS:
            return self.graphs.get(shape)
        cudart = self.cudart
        if not self.context.execute_async_v3(int(self.stream)):  # the ordinary run TensorRT wants after a shape change
            raise DenoiseError("TensorRT execution failed")
        _check(cudart.cudaStreamSynchronize(self.stream))
        try:
            _check(cudart.cudaStreamBeginCapture(self.stream, cudart.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal))
            try:
                captured = self.context.execute_async_v3(int(self.stream))
            finally:
                graph = _check(cudart.cudaStreamEndCapture(self.stream))
            if not captured:
                raise DenoiseError("TensorRT execution failed during CUDA graph capture")
            self.graphs[shape] = _check(cudart.cudaGraphInstantiate(graph, 0))
            cudart.cudaGraphDestroy(graph)
        except DenoiseError as exc:
            log.info("CUDA graphs turned off: capture failed (%s)", exc)
            self.cuda_graphs = False
            return None
        return self.graphs[shape]

    def close(self):
        for graph in getattr(self, "graphs", {}).values():
            self.cudart.cudaGraphExecDestroy(graph)
        self.graphs = {}
        if getattr(self, "buffers", None):
            for buffer in self.buffers.values():
                buffer.free()
            self.buffers = {}
            self.cudart.cudaStreamDestroy(self.stream)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
