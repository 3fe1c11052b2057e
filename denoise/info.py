"""What `denoise info` reports, as a dict (the CLI prints it or dumps it as JSON): versions, the backends this
machine can run, the bundled model's and estimator's cards, TensorRT and the engine cache. Imports nothing
heavy: no torch, and TensorRT only if it is installed."""

from __future__ import annotations

import importlib.util
import platform
from importlib import metadata

from denoise import __version__
from denoise.errors import DenoiseError

PACKAGES = ("numpy", "pillow", "pillow-heif", "rawpy", "onnxruntime", "onnxruntime-gpu", "torch", "onnx", "tensorrt",
            "cuda-python")


def package_version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def torch_gpu_possible() -> bool:
    """Whether --backend torch may start here, without importing torch (seconds): torch installed and an
    NVIDIA device present. Whether torch's build has CUDA is only known when it starts (-v says)."""
    from denoise.runtime.backends import nvidia_device_present

    return importlib.util.find_spec("torch") is not None and nvidia_device_present()


def tensorrt_here() -> tuple[tuple | None, str]:
    """((TensorRT version, GPU name, compute capability) or None, a line saying what is here)."""
    try:
        from denoise.runtime.tensorrt_build import gpu_info, import_tensorrt

        machine = (import_tensorrt().__version__, *gpu_info())
        return machine, f"TensorRT {machine[0]} on {machine[1]} (sm {machine[2]})"
    except DenoiseError as exc:
        return None, str(exc)


def cached_engines(machine: tuple | None) -> list[dict]:
    from denoise.runtime.engine_cache import list_engines, spec_from_record

    engines = []
    for record in list_engines():
        spec = spec_from_record(record)
        engines.append({"path": record["path"], "built": record.get("built"), "gpu": spec.gpu_name,
                        "tensorrt": spec.tensorrt_version, "precision": spec.precision,
                        "matches_this_machine": spec.matches_machine(*machine) if machine else None})
    return engines


def cpu_int8_report(model_path) -> dict:
    """What --precision auto does on this CPU with the bundled model, and why."""
    from denoise.model_files import int8_sibling, read_card
    from denoise.runtime.precision import cpu_model, int8_instructions

    instructions = int8_instructions()
    choice = cpu_model(model_path, "auto", instructions, read_card(model_path))
    return {"instructions": instructions, "int8_model": str(int8_sibling(model_path)),
            "int8_model_exists": int8_sibling(model_path).is_file(),
            "auto_runs": choice.precision, "why": choice.why}


def raw_report() -> dict:
    """Camera RAW support: LibRaw's version through rawpy (None without the `raw` extra), and the suffixes read."""
    from denoise.formats import RAW_SUFFIXES
    from denoise.raw_files import libraw_version

    return {"libraw": libraw_version(), "suffixes": list(RAW_SUFFIXES)}


def machine_report() -> dict:
    from denoise.model_files import read_card
    from denoise.runtime.engine_cache import cache_dir
    from denoise.weights import DEFAULT_ESTIMATOR, DEFAULT_MODEL, DEFAULT_RAW_MODEL

    try:
        import onnxruntime

        providers = onnxruntime.get_available_providers()
    except ImportError:
        providers = []
    machine, machine_note = tensorrt_here()
    return {
        "denoise": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": {name: package_version(name) for name in PACKAGES},
        "onnxruntime_providers": providers,
        "backends": {"cpu": "CPUExecutionProvider" in providers, "cuda": "CUDAExecutionProvider" in providers,
                     "torch": torch_gpu_possible()},
        "bundled_model": {"path": str(DEFAULT_MODEL), "exists": DEFAULT_MODEL.is_file(), "card": read_card()},
        "cpu_int8": cpu_int8_report(DEFAULT_MODEL),
        "bundled_estimator": {"path": str(DEFAULT_ESTIMATOR), "exists": DEFAULT_ESTIMATOR.is_file(),
                              "card": read_card(DEFAULT_ESTIMATOR)},
        "bundled_raw_model": {"path": str(DEFAULT_RAW_MODEL), "exists": DEFAULT_RAW_MODEL.is_file(),
                              "card": read_card(DEFAULT_RAW_MODEL),
                              "cpu_int8": cpu_int8_report(DEFAULT_RAW_MODEL) if DEFAULT_RAW_MODEL.is_file() else None},
        "tensorrt": machine_note,
        "raw": raw_report(),
        "engine_cache": {"path": str(cache_dir()), "engines": cached_engines(machine)},
    }
