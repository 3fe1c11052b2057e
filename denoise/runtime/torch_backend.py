"""PyTorch backend (``--backend torch``): the model from its checkpoint, run by PyTorch on an NVIDIA GPU.

For machines with torch and CUDA but neither TensorRT nor onnxruntime-gpu (the team's lent GPU machine is
one). FP16 autocast by default (BF16 and FP32 on request), channels_last, and a CUDA graph per input shape
(at most MAX_GRAPHS; other shapes run eagerly): the runtime feeds few shapes (every tile of a large image has
one), so replaying a captured graph removes the per-kernel launch cost, as in the TensorRT backend. Inputs go
through pinned host buffers (one per shape, reused) and non-blocking copies.

Only imported when this backend is asked for, so the runtime-only install stays torch-free. ``device="cpu"``
(FP32, no graphs) exists so the same code is tested against ONNX Runtime on machines without a GPU; the CLI
never picks it (``onnxruntime-cpu`` is the CPU backend).
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from denoise.errors import BackendFault, DenoiseError
from denoise.runtime.contract import BackendBase

log = logging.getLogger(__name__)

MAX_GRAPHS = 8
PRECISIONS = ("fp16", "bf16", "fp32")


def import_torch():
    try:
        import torch
    except ImportError:
        raise DenoiseError("--backend torch needs PyTorch with CUDA; install a CUDA build of torch "
                           "(https://pytorch.org/get-started/locally/) or pip install 'denoise[train]'") from None
    return torch


class TorchBackend(BackendBase):
    """A denoiser or noise estimator checkpoint on ``device``; ``infer`` as the other backends'."""

    def __init__(self, checkpoint: Path, device: str = "cuda", precision: str = "fp16", cuda_graphs: bool = True):
        torch = self.torch = import_torch()
        if precision not in PRECISIONS:
            raise DenoiseError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
        if device == "cuda" and not torch.cuda.is_available():
            build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            raise DenoiseError(f"--backend torch needs an NVIDIA GPU, and this torch ({torch.__version__}, {build}) "
                               "sees none; use --backend cpu, or install a CUDA build of torch on a GPU machine")
        from denoise.checkpoint import model_from_checkpoint
        from denoise.model import is_estimator

        model, _ = model_from_checkpoint(checkpoint)
        self.estimator = is_estimator(model)
        self.device = torch.device(device)
        self.on_gpu = self.device.type == "cuda"
        try:
            self.model = model.to(self.device, memory_format=torch.channels_last)
        except RuntimeError as exc:  # e.g. CUDA out of memory, or a broken driver
            raise BackendFault(f"cannot move the model to {device}: {exc}") from exc
        # Every exported denoiser takes a map, also one built without a level channel (which ignores it)
        self.sigma_input = "none" if self.estimator else "map"
        self.precision = precision if self.on_gpu else "fp32"
        self.autocast_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(self.precision)
        self.cuda_graphs = cuda_graphs and self.on_gpu
        self.graphs: dict[tuple, tuple] = {}  # input shape -> (graph, static inputs, static output)
        self.pinned: dict[tuple, tuple] = {}  # input shape -> pinned host tensors (noisy, sigma, output)
        self.name = f"torch-{self.device.type}-{self.precision}"
        log.info("backend %s (torch %s, checkpoint %s)", self.name, torch.__version__, checkpoint)

    def infer(self, noisy: np.ndarray, sigma: np.ndarray | None = None) -> np.ndarray:
        """noisy: float32 [N,3,H,W] in [0,1]; sigma: float32 [N,1,H,W] maps (ignored by the estimator)."""
        if sigma is None and not self.estimator:
            raise DenoiseError("this model needs a noise level: give sigma as [N,1,H,W] maps")
        try:
            with self.torch.inference_mode():
                return self._infer(np.ascontiguousarray(noisy, np.float32),
                                   None if sigma is None else np.ascontiguousarray(sigma, np.float32))
        except RuntimeError as exc:  # CUDA errors (out of memory, illegal address, ...) are RuntimeErrors
            raise BackendFault(f"PyTorch failed on a {noisy.shape} batch: {str(exc).splitlines()[0]}") from exc

    def _infer(self, noisy: np.ndarray, sigma: np.ndarray | None) -> np.ndarray:
        torch = self.torch
        if not self.on_gpu:
            return self._forward(torch.from_numpy(noisy), None if sigma is None else torch.from_numpy(sigma)).numpy()
        host_noisy, host_sigma, host_out = self._pinned_for(noisy.shape)
        host_noisy.numpy()[...] = noisy
        if sigma is not None:
            host_sigma.numpy()[...] = sigma
        graph = self._graph_for(noisy.shape)
        if graph is not None:
            replay, static_noisy, static_sigma, static_out = graph
            static_noisy.copy_(host_noisy, non_blocking=True)
            static_sigma.copy_(host_sigma, non_blocking=True)
            replay.replay()
            out = static_out
        else:
            out = self._forward(host_noisy.to(self.device, non_blocking=True),
                                host_sigma.to(self.device, non_blocking=True))
        host_out.copy_(out, non_blocking=True)
        torch.cuda.current_stream(self.device).synchronize()
        return host_out.numpy().copy()

    def _forward(self, noisy, sigma):
        """The model on device tensors, in the backend's precision; float32 output."""
        torch = self.torch
        noisy = noisy.contiguous(memory_format=torch.channels_last)
        autocast = torch.autocast(self.device.type, dtype=self.autocast_dtype) if self.autocast_dtype else nullcontext()
        with autocast:
            out = self.model(noisy) if self.estimator else self.model(noisy, sigma)
        return out.float()

    def _pinned_for(self, shape: tuple) -> tuple:
        if shape not in self.pinned:
            if len(self.pinned) >= MAX_GRAPHS:
                self.pinned.pop(next(iter(self.pinned)))
            n, _, h, w = shape
            out_channels = 1 if self.estimator else 3
            self.pinned[shape] = tuple(self.torch.empty(s, dtype=self.torch.float32, pin_memory=True)
                                       for s in ((n, 3, h, w), (n, 1, h, w), (n, out_channels, h, w)))
        return self.pinned[shape]

    def _graph_for(self, shape: tuple):
        """The captured CUDA graph for this input shape (captured on first use; warm-up runs on a side stream
        first, as PyTorch's CUDA graph docs ask), or None to run eagerly."""
        if not self.cuda_graphs:
            return None
        if shape in self.graphs or len(self.graphs) >= MAX_GRAPHS:
            return self.graphs.get(shape)
        torch = self.torch
        n, _, h, w = shape
        static_noisy = torch.zeros(shape, device=self.device).contiguous(memory_format=torch.channels_last)
        static_sigma = torch.zeros((n, 1, h, w), device=self.device)
        try:
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                for _ in range(2):
                    self._forward(static_noisy, static_sigma)
            torch.cuda.current_stream(self.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_out = self._forward(static_noisy, static_sigma)
        except RuntimeError as exc:
            log.info("CUDA graphs turned off: capture failed (%s)", str(exc).splitlines()[0])
            self.cuda_graphs = False
            return None
        self.graphs[shape] = (graph, static_noisy, static_sigma, static_out)
        return self.graphs[shape]

    def close(self):
        self.graphs, self.pinned = {}, {}
        self.model = None
        if self.on_gpu:
            self.torch.cuda.empty_cache()
