"""Which model the CPU runs: the INT8 one where this CPU has the instructions that make it fast, else FP32.

ONNX Runtime's INT8 convolutions (QLinearConv, UINT8 activations x INT8 weights) are fast on CPUs with an
8-bit dot-product instruction: VNNI (AVX-512 VNNI since Cascade Lake / Ice Lake / Zen 4, AVX-VNNI since Alder
Lake), AMX, or Arm's dot product (``asimddp``: Neoverse, Apple M1 on). Without one, x86 falls back to AVX2's
``vpmaddubsw``, whose 16-bit sums saturate for UINT8 x INT8 weights over 64 in size -- ONNX Runtime's own
documentation asks for 7-bit weights there -- so INT8 is then neither safely exact nor much faster: FP32 runs.

``--precision``: ``auto`` (INT8 where it is fast and the model has an INT8 sibling, else FP32), ``fp32``, or
``int8`` (refused in one line where it cannot run well). GPUs keep their own precision (FP16); ``int8`` is a
CPU choice. The noise estimator stays FP32 (3% of the denoiser's work).
"""

from __future__ import annotations

import logging
import platform
import subprocess
from pathlib import Path

from denoise.errors import DenoiseError

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "int8")
X86_INT8_FLAGS = ("amx_int8", "avx512_vnni", "avx_vnni")  # /proc/cpuinfo "flags", best first
ARM_INT8_FLAGS = ("asimddp",)  # /proc/cpuinfo "Features": the dot-product extension


def int8_sibling(model_path: Path) -> Path:
    """``model.onnx`` -> ``model.int8.onnx``: where ``denoise export --int8`` puts the INT8 model."""
    return Path(model_path).with_name(Path(model_path).stem + ".int8.onnx")


def int8_instructions(cpuinfo: str | None = None) -> str | None:
    """The fast INT8 dot-product instructions this CPU has (a flag name such as ``avx512_vnni``), or None.
    ``cpuinfo``: the text of /proc/cpuinfo (read when None, on Linux); macOS on Apple silicon asks sysctl."""
    if cpuinfo is None:
        if platform.system() == "Darwin":
            return "arm dotprod" if sysctl_flag("hw.optional.arm.FEAT_DotProd") else None
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return None  # another system: its CPU's features are not known here, so FP32
    flags = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return next((flag for flag in X86_INT8_FLAGS + ARM_INT8_FLAGS if flag in flags), None)


def sysctl_flag(name: str) -> bool:
    try:
        result = subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return False
    return result.stdout.strip() == "1"


def cpu_model(model_path: Path, precision: str, instructions: str | None, card: dict) -> tuple[Path, str]:
    """(the ONNX file the CPU backend opens, "int8" or "fp32") for ``--precision``; DenoiseError for an
    ``int8`` that cannot be had here. ``card``: the FP32 model's, where export says up to which noise level
    the INT8 model was verified (``int8.sigma_max``); images above it run in FP32 (runtime.denoiser)."""
    if precision not in PRECISIONS:
        raise DenoiseError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    sibling = int8_sibling(model_path)
    if precision == "fp32":
        return Path(model_path), "fp32"
    why_not = None
    if not sibling.is_file():
        why_not = (f"there is no INT8 model {sibling} (make one with `denoise train --qat`, then "
                   "`denoise export --int8`)")
    elif "sigma_max" not in card.get("int8", {}):
        why_not = (f"the card beside {model_path} does not say up to which noise level its INT8 model was verified "
                   "(export it again with `denoise export --int8`)")
    elif instructions is None:
        why_not = ("this CPU has no VNNI, AMX or Arm dot-product instructions, without which INT8 is not faster "
                   "here and AVX2's 16-bit sums can saturate")
    if why_not is None:
        return sibling, "int8"
    if precision == "int8":
        raise DenoiseError(f"--precision int8: {why_not}; use --precision fp32")
    log.info("INT8 not used: %s", why_not)
    return Path(model_path), "fp32"
