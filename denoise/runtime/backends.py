"""The one way backends are made: one factory per backend, the ordered table that ``--backend auto`` walks, and
the noise estimator's backend beside the denoiser's.

Every backend keeps runtime.contract's ``Backend``. Factories take a ``BackendRequest`` and return a ready
backend, or raise ``DenoiseError`` (this machine cannot run it: the message says why) or ``BackendFault`` (it
failed while starting). ``auto`` takes the first that starts, logging why each faster one was skipped (shown
with ``-v``). Backend modules are imported inside their factory, so a runtime-only install never imports torch
or TensorRT.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

from denoise.errors import BackendFault, DenoiseError
from denoise.model_files import checkpoint_for, fp16_sibling, int8_sibling
from denoise.runtime.contract import Backend

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackendRequest:
    """What a factory needs: the model, its card, the shapes the runtime will feed (for TensorRT's profile), the
    form of its sigma input (runtime.contract), CPU threads, and the PyTorch checkpoint (None: the ``.pt`` beside
    the model)."""

    model_path: Path
    card: dict
    tile: tuple[int, int]
    overlap: int
    max_batch: int
    sigma_input: str = "map"
    threads: int = 0
    checkpoint: Path | None = None
    precision: str = "auto"  # of the CPU model (runtime.precision); GPUs keep their own


def open_tensorrt(request: BackendRequest) -> Backend:
    from denoise.runtime.tensorrt_backend import TensorRTBackend  # imports tensorrt lazily
    from denoise.runtime.tiling import engine_profile

    fp16 = fp16_sibling(request.model_path)
    if not fp16.is_file():
        raise DenoiseError(f"no FP16 model {fp16} (write one with: denoise export --fp16)")
    profile = engine_profile(request.tile, request.overlap, request.max_batch, sigma_map=request.sigma_input == "map")
    return TensorRTBackend(fp16, profile, precision="fp16")


def open_onnx_cuda(request: BackendRequest) -> Backend:
    from denoise.runtime.onnx_backend import OnnxRuntimeBackend

    return OnnxRuntimeBackend(request.model_path, "cuda", request.threads, spinning=False)


def nvidia_device_present() -> bool:
    """Whether the kernel shows an NVIDIA GPU (Linux /dev/nvidia0.., WSL2 /dev/dxg): checked before importing
    torch, which takes seconds and is pointless on a machine without one."""
    return any(Path("/dev").glob("nvidia[0-9]*")) or Path("/dev/dxg").exists()


def open_torch(request: BackendRequest) -> Backend:
    import importlib.util

    from denoise.runtime.torch_backend import TorchBackend, import_torch

    if importlib.util.find_spec("torch") is None:
        import_torch()  # raises the message that says what to install
    if not nvidia_device_present():
        raise DenoiseError("--backend torch needs an NVIDIA GPU, and this machine shows none (no /dev/nvidia* "
                           "device); use --backend cpu")
    return TorchBackend(checkpoint_for(request.model_path, request.card, request.checkpoint))


def open_onnx_cpu(request: BackendRequest) -> Backend:
    """The CPU's model in the precision runtime.precision chooses; INT8 comes with its FP32 model beside it
    (runtime.int8_fallback)."""
    from denoise.runtime.int8_fallback import Int8WithFp32
    from denoise.runtime.onnx_backend import OnnxRuntimeBackend
    from denoise.runtime.precision import cpu_model, int8_instructions

    choice = cpu_model(request.model_path, request.precision, int8_instructions(), request.card)
    # No spinning threads: the estimator's session takes turns with this one, and idle threads busy-waiting
    # slow the other (benchmarks/auto_cost.py measures it).
    backend = OnnxRuntimeBackend(choice.model_path, "cpu", request.threads, spinning=False)
    backend.precision_why = choice.why
    if choice.precision != "int8":
        return backend
    try:
        fp32 = OnnxRuntimeBackend(request.model_path, "cpu", request.threads, spinning=False)
    except BaseException:
        backend.close()
        raise
    return Int8WithFp32(backend, fp32, request.card["int8"]["sigma_max"])


# Fastest first: the order ``auto`` tries them in.
FACTORIES = {"tensorrt": open_tensorrt, "cuda": open_onnx_cuda, "torch": open_torch, "cpu": open_onnx_cpu}
BACKENDS = ("auto", *FACTORIES)


def open_backend(choice: str, request: BackendRequest) -> Backend:
    """The backend ``choice`` names, or for "auto" the first in FACTORIES that starts here."""
    if choice not in BACKENDS:
        raise DenoiseError(f"unknown backend {choice!r}; choose one of {', '.join(BACKENDS)}")
    if request.precision == "int8":  # a CPU precision: GPUs run FP16
        if choice not in ("auto", "cpu"):
            raise DenoiseError(f"--precision int8 runs on the CPU, not with --backend {choice} (GPUs run FP16); "
                               "use --backend cpu, or leave --precision out")
        choice = "cpu"
    backend = _open(choice, request)
    if backend.precision == "int8" and "int8" not in request.card:
        backend.close()
        raise DenoiseError(f"{request.model_path} is an INT8 model file; give its FP32 model as --model (the .onnx "
                           "beside it without .int8) and --precision int8: the runtime needs both")
    return backend


def _open(choice: str, request: BackendRequest) -> Backend:
    if choice != "auto":
        return FACTORIES[choice](request)
    *faster, (_, slowest) = FACTORIES.items()
    for name, factory in faster:
        try:
            backend = factory(request)
        except (DenoiseError, BackendFault) as exc:
            log.info("%s skipped: %s", name, exc)
            continue
        log.info("using %s", backend.name)
        return backend
    backend = slowest(request)  # the CPU: if it cannot start either, its error is the one to see
    log.info("using %s", backend.name)
    return backend


def open_beside(request: BackendRequest, beside: Backend) -> Backend:
    """The backend of a second model beside the denoiser's ``beside`` -- the noise estimator, the RAW model:
    PyTorch on the GPU beside the torch backend (in its precision), ONNX Runtime on CUDA beside any other GPU
    backend where it can, else the CPU: in the denoiser's precision where the model has an INT8 sibling (the RAW
    model), else FP32 (the estimator: a few % of the denoiser's work). Neither has an FP16 sibling, so neither
    runs in TensorRT."""
    if beside.on_gpu:
        from denoise.runtime.torch_backend import TorchBackend

        if isinstance(beside, TorchBackend):
            return TorchBackend(checkpoint_for(request.model_path, request.card, request.checkpoint),
                                precision=beside.precision)
        try:
            return open_onnx_cuda(request)
        except (DenoiseError, BackendFault) as exc:
            log.info("%s on the CPU: %s", request.model_path.name, exc)
    return open_onnx_cpu(request if int8_sibling(request.model_path).is_file() else replace(request, precision="fp32"))
