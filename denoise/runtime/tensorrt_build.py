"""Building TensorRT engines: the only module that calls TensorRT's builder (imported lazily). The runtime owns it
with its engine cache (``runtime.engine_cache``): the TensorRT backend builds the engine it needs on first use,
and ``denoise export --engine`` calls the same builder ahead of time.

TensorRT 10.x and 11.x both: 11.x removed weak typing (no ``BuilderFlag.FP16``; networks are always
strongly typed, and the STRONGLY_TYPED creation flag is accepted but ignored), so precision comes from
the ONNX graph itself: we build the FP16 ONNX (FP32 inputs/outputs) as a strongly typed network on
both versions, and never set precision flags.

Written against the documented Python API; TensorRT cannot be installed on the team's CPU machines,
so this path is checked on a GPU machine by ``scripts/gpu_check.py``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from denoise.errors import DenoiseError
from denoise.atomic import atomic_write_bytes
from denoise.model_files import sha256_file
from denoise.runtime.engine_cache import EngineSpec, cache_dir, file_lock, get_or_build

log = logging.getLogger(__name__)

WORKSPACE_BYTES = 4 << 30


def import_tensorrt():
    try:
        import tensorrt
    except ImportError:
        raise DenoiseError("TensorRT is not installed: TensorRT engines need an NVIDIA GPU and "
                           "pip install 'denoise[tensorrt]'; the ONNX files work without it") from None
    return tensorrt


def import_cudart():
    """cuda-python's runtime bindings (``cuda.bindings.runtime``; ``cuda.cudart`` in releases before 12.6)."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart
        except ImportError:
            raise DenoiseError("cuda-python is not installed; install it with: pip install 'denoise[tensorrt]'") from None
    return cudart


def gpu_info(device: int = 0) -> tuple[str, str]:
    """(GPU name, compute capability "major.minor") of a CUDA device; DenoiseError when there is none."""
    cudart = import_cudart()
    err, count = cudart.cudaGetDeviceCount()
    if err != cudart.cudaError_t.cudaSuccess or count == 0:
        raise DenoiseError(f"no NVIDIA GPU found (CUDA says: {err}); TensorRT engines need one")
    err, props = cudart.cudaGetDeviceProperties(device)
    if err != cudart.cudaError_t.cudaSuccess:
        raise DenoiseError(f"cannot read the properties of GPU {device} (CUDA says: {err})")
    name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else str(props.name)
    return name.rstrip("\x00").strip(), f"{props.major}.{props.minor}"


def engine_spec(onnx_path: Path, precision: str, profile: tuple, version_compatible: bool = False,
                hardware_compatible: bool = False) -> EngineSpec:
    trt = import_tensorrt()
    name, capability = gpu_info()
    return EngineSpec(onnx_sha256=sha256_file(onnx_path), tensorrt_version=trt.__version__, gpu_name=name,
                      compute_capability=capability, precision=precision, profile=profile,
                      version_compatible=version_compatible, hardware_compatible=hardware_compatible)


def timing_cache_path(spec: EngineSpec) -> Path:
    gpu = "".join(c if c.isalnum() else "-" for c in spec.gpu_name)
    return cache_dir() / f"timing-{gpu}-sm{spec.compute_capability}-trt{spec.tensorrt_version}.cache"


def build_serialized(onnx_path: Path, spec: EngineSpec) -> bytes:
    """Parse the ONNX file and build a serialized engine for ``spec`` (reusing and updating the timing cache)."""
    trt = import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):  # opt-in on 10.x, ignored on 11.x
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise DenoiseError(f"TensorRT could not parse {onnx_path}: {errors}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    profile = builder.create_optimization_profile()
    for name, smallest, optimal, largest in spec.profile:
        profile.set_shape(name, smallest, optimal, largest)
    config.add_optimization_profile(profile)
    if spec.version_compatible:
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
    if spec.hardware_compatible:
        config.hardware_compatibility_level = trt.HardwareCompatibilityLevel.AMPERE_PLUS

    cache_file = timing_cache_path(spec)
    attach_timing_cache(config, cache_file)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise DenoiseError(f"TensorRT failed to build an engine from {onnx_path} (see its log above)")
    save_timing_cache(config, cache_file)
    return bytes(serialized)


def attach_timing_cache(config, cache_file: Path) -> None:
    """Start the build from the saved timing cache; one that does not attach (made on another GPU or TensorRT,
    or damaged: ``set_timing_cache`` returns False) is replaced by a fresh one, so the build still succeeds."""
    with file_lock(cache_file.with_suffix(".lock")):
        saved = cache_file.read_bytes() if cache_file.is_file() else b""
    cache = config.create_timing_cache(saved)
    if cache is not None and config.set_timing_cache(cache, ignore_mismatch=False):
        return
    log.warning("the timing cache %s does not fit this GPU and TensorRT; building with a fresh one", cache_file)
    config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)


def save_timing_cache(config, cache_file: Path) -> None:
    """Save what this build learnt, merged (under the lock) with what other builds saved meanwhile, so
    concurrent builds keep each other's entries. Never fails a finished build."""
    built = config.get_timing_cache()
    if built is None:
        log.info("no timing cache to save after the build")
        return
    with file_lock(cache_file.with_suffix(".lock")):
        if cache_file.is_file():
            on_disk = config.create_timing_cache(cache_file.read_bytes())
            if on_disk is not None and on_disk.combine(built, False):
                built = on_disk
        atomic_write_bytes(cache_file, bytes(built.serialize()))


def build_engine(onnx_path: Path, precision: str, profile: tuple, version_compatible: bool = False,
                 hardware_compatible: bool = False) -> tuple[Path, bool]:
    """The cached engine for this ONNX file on this GPU and TensorRT, built if missing: (path, built_now)."""
    spec = engine_spec(Path(onnx_path), precision, profile, version_compatible, hardware_compatible)

    def build() -> bytes:  # said on stderr (a warning): it takes minutes, once per GPU model and model file
        log.warning("building a TensorRT %s engine from %s for %s (sm %s, TensorRT %s); this takes a few "
                    "minutes, once", precision, Path(onnx_path).name, spec.gpu_name, spec.compute_capability,
                    spec.tensorrt_version)
        started = time.perf_counter()
        data = build_serialized(Path(onnx_path), spec)
        log.warning("built the TensorRT engine in %.0f s", time.perf_counter() - started)
        return data

    path, built = get_or_build(spec, build)
    log.info("%s engine %s", "built" if built else "reused", path)
    return path, built
