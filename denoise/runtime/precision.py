"""Which model the CPU runs: the INT8 one where this CPU multiplies 8-bit integers fast and exactly, else FP32.

ONNX Runtime's INT8 convolutions (QLinearConv: UINT8 activations x INT8 weights, its MLAS "U8S8" kernels)
run on one of three kinds of instruction, and which one decides what ``auto`` does:

* an 8-bit dot product with 32-bit sums -- VNNI (AVX-512 VNNI since Cascade Lake / Ice Lake / Zen 4,
  AVX-VNNI since Alder Lake), AMX, or Arm's dot product (``asimddp``: Neoverse, Apple M1 on): exact for any
  INT8 model, and fast. INT8 runs.
* AVX2 alone (Haswell to Comet Lake, AMD Zen 1-3): MLAS's AVX2 kernel multiplies with ``vpmaddubsw``, which
  adds two adjacent UINT8 x INT8 products into a *saturating* 16-bit sum. That sum cannot saturate when every
  weight is within 64 of zero (255 x 128 = 32640 <= 32767), which our QAT builds in (``quantize.WEIGHT_LIMIT``)
  and the export proves for the file it writes (``export.int8.pair_sum_max``, the card's ``int8.pair_sum_max``).
  INT8 runs where the card says so; an INT8 model made before (8-bit weights) stays FP32 there.
* neither (x86 before AVX2; Arm without the dot product): MLAS widens to 16 bits and multiplies with
  ``pmaddwd``/``umull`` -- exact, but not measured to be faster than FP32 here, so FP32 runs.

``--precision``: ``auto`` (INT8 where the above allows and the model has an INT8 sibling, else FP32), ``fp32``,
or ``int8`` (refused in one line where it cannot run well). GPUs keep their own precision (FP16); ``int8`` is a
CPU choice. The noise estimator stays FP32 (a few % of the denoiser's work).
"""

from __future__ import annotations

import logging
import platform
import subprocess
from pathlib import Path
from typing import NamedTuple

from denoise.errors import DenoiseError
from denoise.model_files import int8_sibling

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "int8")
X86_INT8_FLAGS = ("amx_int8", "avx512_vnni", "avx_vnni")  # /proc/cpuinfo "flags", best first: 32-bit sums
ARM_INT8_FLAGS = ("asimddp",)  # /proc/cpuinfo "Features": the dot-product extension
AVX2 = "avx2"  # 16-bit pair sums: only for INT8 models whose card proves they cannot saturate them
VPMADDUBSW_MAX = 32767  # the largest 16-bit sum of two products that AVX2's vpmaddubsw keeps exact


class CpuChoice(NamedTuple):
    model_path: Path  # the ONNX file the CPU backend opens
    precision: str  # "int8" or "fp32"
    why: str  # one line for `denoise info` and the manifest


def int8_instructions(cpuinfo: str | None = None) -> str | None:
    """The best instructions for INT8 this CPU has (a flag name: ``avx512_vnni``, ``asimddp``, ... or ``avx2``),
    or None. ``cpuinfo``: the text of /proc/cpuinfo (read when None, on Linux); macOS on Apple silicon asks sysctl."""
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
    return next((flag for flag in X86_INT8_FLAGS + ARM_INT8_FLAGS + (AVX2,) if flag in flags), None)


def sysctl_flag(name: str) -> bool:
    try:
        result = subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return False
    return result.stdout.strip() == "1"


def avx2_exact(card: dict) -> bool:
    """Whether the card's INT8 model was proved, at export, unable to saturate AVX2's 16-bit pair sums."""
    pair_sum_max = card.get("int8", {}).get("pair_sum_max")
    return pair_sum_max is not None and int(pair_sum_max) <= VPMADDUBSW_MAX


def cpu_model(model_path: Path, precision: str, instructions: str | None, card: dict) -> CpuChoice:
    """The model the CPU runs for ``--precision``, and why; DenoiseError for an ``int8`` that cannot be had here.
    ``card``: the FP32 model's, where export says up to which noise level the INT8 model was verified
    (``int8.sigma_max``; images above it run in FP32, runtime.denoiser) and whether it fits AVX2 (see above)."""
    if precision not in PRECISIONS:
        raise DenoiseError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    sibling = int8_sibling(model_path)
    if precision == "fp32":
        return CpuChoice(Path(model_path), "fp32", "--precision fp32 asked for it")
    why_not = None
    if not sibling.is_file():
        why_not = (f"there is no INT8 model {sibling} (make one with `denoise train --qat`, then "
                   "`denoise export --int8`)")
    elif "sigma_max" not in card.get("int8", {}):
        why_not = (f"the card beside {model_path} does not say up to which noise level its INT8 model was verified "
                   "(export it again with `denoise export --int8`)")
    elif instructions is None:
        why_not = ("this CPU has none of AVX2, VNNI, AMX or Arm's dot product, on which INT8 is fast; without them "
                   "it is not known to be faster than FP32")
    elif instructions == AVX2 and not avx2_exact(card):
        why_not = (f"this CPU multiplies INT8 with AVX2's 16-bit sums (no VNNI), and the INT8 model beside "
                   f"{model_path} has weights too large to be exact in them (made before 7-bit weights); make it "
                   "again with `denoise train --qat`, then `denoise export --int8`")
    if why_not is None:
        how = ("AVX2, whose 16-bit sums this model's 7-bit weights cannot saturate" if instructions == AVX2
               else f"{instructions}, whose 32-bit sums are exact")
        return CpuChoice(sibling, "int8", f"this CPU runs INT8 with {how}")
    if precision == "int8":
        raise DenoiseError(f"--precision int8: {why_not}; use --precision fp32")
    log.info("INT8 not used: %s", why_not)
    return CpuChoice(Path(model_path), "fp32", f"INT8 not used: {why_not}")
