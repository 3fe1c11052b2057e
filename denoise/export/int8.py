"""QAT checkpoint -> INT8 ONNX (QDQ) that ONNX Runtime runs with integer kernels, verified three ways.

The QDQ graph is written here from the checkpoint's own quantization (``denoise.quantize``), not by
calibrating again: the FP32 ONNX of the QAT weights gets, around every quantized Conv,

* QuantizeLinear -> DequantizeLinear on its input and on its output (UINT8, the trained ranges) -- but where
  its input is the previous quantized Conv's output through a ReLU on the same grid (``quantize.tied_inputs``), it
  takes that output's DequantizeLinear directly and the ReLU goes (a no-op on a grid from 0), so ONNX Runtime
  passes the UINT8 tensor from QLinearConv to QLinearConv without requantizing,
* its weight as an INT8 initializer (per output channel, symmetric) -> DequantizeLinear,
* its bias as an INT32 initializer at scale input_scale * weight_scale -> DequantizeLinear,

which is the pattern ONNX Runtime's graph optimizer fuses into QLinearConv. The Convs the checkpoint keeps in
float (``quantize.float_layers``: the first and the last two, and both ends of the two outermost skip connections)
stay FP32, as in training.

Verification, against the FP32 model the INT8 file stands beside (the QAT checkpoint's own, or the model it
was fine-tuned from: what the runtime runs where INT8 is not used), or the export fails and no INT8 file is left:

1. the INT8 model in ONNX Runtime against the fake-quantized PyTorch model: PSNR within ``MATCH_DB`` and mean
   |difference| at most ``MATCH_MEAN_ABS``, at ``MATCH_SIGMAS``;
2. its PSNR against FP32's on the verification images, per sigma (``MAX_PSNR_DROP_DB``), from sigma 0.02 up:
   the highest level up to which every level passes is the card's ``int8.sigma_max`` -- the runtime runs
   images with more noise in FP32 -- and it must reach ``REQUIRED_SIGMA_MAX``;
3. ONNX Runtime's profile of one run: every quantized Conv ran as QLinearConv (an integer kernel), not as
   a float Conv on dequantized values.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from denoise.atomic import atomic_save_onnx
from denoise.errors import DenoiseError
from denoise.export.precision_check import PrecisionReport, compare_precision, paired_runs, verification_images

MAX_PSNR_DROP_DB = 0.1  # per verification sigma, INT8 against the FP32 model of the same weights
INT8_VERIFY_SIGMAS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0)
REQUIRED_SIGMA_MAX = 0.1  # INT8 must hold up to 25/255 at least: most photos' noise is below it
# INT8 ONNX against the fake-quantized PyTorch model. They compute the same quantized network, but not bit for
# bit: where a value lands on a rounding boundary, float (PyTorch) and integer (ONNX Runtime) accumulation can
# put it one step apart, and such steps multiply through the layers (a few of the first layer's outputs, many of
# the middle ones'). So the check is that both are equally good -- PSNR within MATCH_DB -- and close on average.
MATCH_DB = 0.05
MATCH_MEAN_ABS = 0.01
MATCH_SIGMAS = (0.05, 0.2)


@dataclass
class MatchReport:
    sigma: float
    psnr_torch: float
    psnr_onnx: float
    mean_abs: float

    @property
    def ok(self) -> bool:
        return abs(self.psnr_torch - self.psnr_onnx) <= MATCH_DB and self.mean_abs <= MATCH_MEAN_ABS

    def line(self) -> str:
        return (f"  sigma {self.sigma:g}: INT8 ONNX {self.psnr_onnx:.3f} dB, fake-quant PyTorch {self.psnr_torch:.3f} dB "
                f"(within {MATCH_DB:g}), mean |diff| {self.mean_abs:.1e} (at most {MATCH_MEAN_ABS:g}) "
                f"-> {'ok' if self.ok else 'FAILED'}")


def quantize_graph(fp32_path: Path, int8_path: Path, quantization: dict) -> None:
    """Write the QDQ model of ``fp32_path`` with a QAT checkpoint's ``quantization`` (see module doc)."""
    import onnx
    import torch
    from onnx import helper, numpy_helper

    from denoise.quantize import activation_qparams, fake_quant_weight, stored_weight_limit, weight_scales

    model = onnx.load(str(fp32_path))
    graph = model.graph
    weights = {init.name: init for init in graph.initializer}
    convs = [node for node in graph.node if node.op_type == "Conv"]
    layers = {int(k): v for k, v in quantization["layers"].items()}
    if len(convs) != len(layers) + len(quantization["float_layers"]):
        raise DenoiseError(f"{fp32_path} has {len(convs)} Conv nodes, but the checkpoint's quantization covers "
                           f"{len(layers) + len(quantization['float_layers'])}")
    nodes, extra_inits = [], []

    def qdq(tensor: str, scale: float, zero_point: int, tag: str) -> tuple[list, str]:
        """Q -> DQ of ``tensor``: the nodes and the name of the dequantized tensor."""
        extra_inits.extend([numpy_helper.from_array(np.array(scale, np.float32), f"{tag}_scale"),
                            numpy_helper.from_array(np.array(zero_point, np.uint8), f"{tag}_zero_point")])
        return ([helper.make_node("QuantizeLinear", [tensor, f"{tag}_scale", f"{tag}_zero_point"], [f"{tag}_q"], name=f"{tag}_Q"),
                 helper.make_node("DequantizeLinear", [f"{tag}_q", f"{tag}_scale", f"{tag}_zero_point"], [f"{tag}_dq"],
                                  name=f"{tag}_DQ")], f"{tag}_dq")

    position = {id(node): index for index, node in enumerate(convs)}
    producer = {output: node for node in graph.node for output in node.output}
    conv_outputs = [node.output[0] for node in convs]  # before the loop renames them
    tied = set(quantization.get("tied_inputs", ()))
    limit = stored_weight_limit(quantization)
    for node in graph.node:
        index = position.get(id(node))
        if index is None or index not in layers:
            nodes.append(node)
            continue
        tag = f"conv{index}"
        in_scale, in_zero = activation_qparams(*layers[index]["input"])
        out_scale, out_zero = activation_qparams(*layers[index]["output"])
        if index in tied:  # the previous QLinearConv's UINT8 output is this one's input: no ReLU, no requantizing
            relu = producer.get(node.input[0])
            if relu is None or relu.op_type != "Relu" or relu.input[0] != conv_outputs[index - 1] \
                    or layers[index]["input"] != layers[index - 1]["output"]:
                raise DenoiseError(f"conv {index} of {fp32_path} is not fed by conv {index - 1} through a ReLU on one "
                                   f"grid, as the checkpoint's quantization says")
            before, node.input[0] = [], f"conv{index - 1}_output_dq"
        else:
            before, node.input[0] = qdq(node.input[0], in_scale, in_zero, f"{tag}_input")
        weight = torch.from_numpy(numpy_helper.to_array(weights[node.input[1]]).copy())
        scales = weight_scales(weight, 0, limit)
        shape = (-1,) + (1,) * (weight.dim() - 1)
        int_weight = torch.round(fake_quant_weight(weight, 0, limit) / scales.reshape(shape)).to(torch.int8).numpy()
        bias_scale = (np.float32(in_scale) * scales.numpy()).astype(np.float32)
        bias = numpy_helper.to_array(weights[node.input[2]])
        int_bias = np.round(bias / bias_scale).astype(np.int32)
        extra_inits.extend([numpy_helper.from_array(int_weight, f"{tag}_weight_q"),
                            numpy_helper.from_array(scales.numpy(), f"{tag}_weight_scale"),
                            numpy_helper.from_array(np.zeros(len(scales), np.int8), f"{tag}_weight_zero_point"),
                            numpy_helper.from_array(int_bias, f"{tag}_bias_q"),
                            numpy_helper.from_array(bias_scale, f"{tag}_bias_scale"),
                            numpy_helper.from_array(np.zeros(len(scales), np.int32), f"{tag}_bias_zero_point")])
        before += [helper.make_node("DequantizeLinear", [f"{tag}_weight_q", f"{tag}_weight_scale", f"{tag}_weight_zero_point"],
                                    [f"{tag}_weight_dq"], name=f"{tag}_weight_DQ", axis=0),
                   helper.make_node("DequantizeLinear", [f"{tag}_bias_q", f"{tag}_bias_scale", f"{tag}_bias_zero_point"],
                                    [f"{tag}_bias_dq"], name=f"{tag}_bias_DQ", axis=0)]
        node.input[1], node.input[2] = f"{tag}_weight_dq", f"{tag}_bias_dq"
        output = node.output[0]
        node.output[0] = f"{tag}_raw"
        after, dequantized = qdq(f"{tag}_raw", out_scale, out_zero, f"{tag}_output")
        after.append(helper.make_node("Identity", [dequantized], [output], name=f"{tag}_out"))  # consumers unchanged
        nodes.extend(before + [node] + after)
    nodes = without_unused(nodes, {output.name for output in graph.output})
    used = {name for node in nodes for name in node.input}
    kept = [init for init in graph.initializer if init.name in used]
    del graph.node[:], graph.initializer[:]
    graph.node.extend(nodes)
    graph.initializer.extend(kept + extra_inits)
    props = {p.key: p.value for p in model.metadata_props}
    props["precision"] = "int8"
    del model.metadata_props[:]
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model, full_check=True)
    atomic_save_onnx(model, int8_path)


def without_unused(nodes: list, graph_outputs: set[str]) -> list:
    """``nodes`` (in graph order) less those whose outputs nothing uses: the ReLUs that tied grids bypass."""
    needed, kept = set(graph_outputs), []
    for node in reversed(nodes):
        if any(output in needed for output in node.output):
            kept.append(node)
            needed.update(node.input)
    return kept[::-1]


def pair_sum_max(int8_path: Path) -> int:
    """The largest |a1*w1 + a2*w2| that any two UINT8 activations a (0..255) and two INT8 weights w of one output
    channel of one QLinearConv weight in ``int8_path`` can make: 255 times the two largest |w| of the channel.

    Why it matters: on x86 without VNNI, ONNX Runtime's U8S8 kernels (MLAS, AVX2) multiply with vpmaddubsw,
    which sums two adjacent products of one output channel into a saturating 16-bit integer before widening
    it. Which two weights are adjacent depends on MLAS's packing, so this bounds every pair: at most 32767
    (runtime.precision.VPMADDUBSW_MAX) and the model is exact there, as under VNNI's 32-bit sums."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(int8_path)).graph
    weights = {init.name: init for init in graph.initializer}
    dequantized = {node.output[0]: node.input[0] for node in graph.node if node.op_type == "DequantizeLinear"}
    largest = 0
    for node in graph.node:
        name = dequantized.get(node.input[1]) if node.op_type == "Conv" else None
        if name is None or weights[name].data_type != onnx.TensorProto.INT8:
            continue
        magnitudes = np.abs(numpy_helper.to_array(weights[name]).astype(np.int32)).reshape(weights[name].dims[0], -1)
        top_two = np.sort(magnitudes, axis=1)[:, -2:].sum(axis=1)
        largest = max(largest, int(top_two.max()) * 255)
    return largest


def kernels_run(model_path: Path, height: int = 64, width: int = 64) -> Counter:
    """Which operator kernels ONNX Runtime (CPU, all graph optimizations) ran for one input: op name -> count,
    from its profile -- what ran, after its fusions, not what the file says."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "profile")
        options.log_severity_level = 3
        session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        feeds = {"noisy": np.zeros((1, 3, height, width), np.float32)}
        if any(i.name == "sigma" for i in session.get_inputs()):
            feeds["sigma"] = np.full((1, 1, height, width), 0.1, np.float32)
        session.run(None, feeds)
        events = json.loads(Path(session.end_profiling()).read_text())
    return Counter(e["args"]["op_name"] for e in events
                   if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"))


def requantizations(model_path: Path) -> int:
    """DequantizeLinear -> QuantizeLinear hand-overs (a UINT8 tensor re-gridded through float) left in ONNX Runtime's
    optimized CPU graph of ``model_path``: with tied grids, only where a skip output's signed grid meets a ReLU."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        options.log_severity_level = 3
        ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        graph = onnx.load(options.optimized_model_filepath).graph
    producer = {out: node for node in graph.node for out in node.output}
    return sum(1 for node in graph.node if node.op_type == "QuantizeLinear" and node.input[0] in producer
               and producer[node.input[0]].op_type == "DequantizeLinear")


def match_fake_quant(int8_path: Path, model, images: list[np.ndarray]) -> list[MatchReport]:
    """The INT8 ONNX model and the fake-quantized PyTorch ``model`` it was written from (``quantize.quantized_from_checkpoint``)
    on the same noisy images."""
    import torch

    from denoise.runtime.onnx_backend import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend(int8_path, backend="cpu")

    def fake_quantized(noisy: np.ndarray, level: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(noisy), torch.from_numpy(level)).numpy()

    return [MatchReport(run.sigma, psnr_torch=run.psnr[1], psnr_onnx=run.psnr[0], mean_abs=run.mean_abs)
            for run in paired_runs((backend.infer, fake_quantized), images, MATCH_SIGMAS, seed=7)]


def export_int8(checkpoint: Path, fp32_path: Path, int8_path: Path, images_folder: Path | None = None) -> dict:
    """Write the INT8 model of a QAT checkpoint beside the FP32 ONNX ``fp32_path`` (that checkpoint's own, or the
    one it was fine-tuned from: the model the runtime falls back to) and verify it against that FP32 model.
    Returns what was checked, with the card's "int8" entry; raises DenoiseError, removing the file, when a check fails."""
    from denoise.checkpoint import load_checkpoint
    from denoise.export.onnx_export import export_onnx
    from denoise.quantize import quantized_from_checkpoint, ranges

    state = load_checkpoint(checkpoint)
    if "quantization" not in state:
        raise DenoiseError(f"{checkpoint} has no quantization ranges: an INT8 model comes from a quantization-aware "
                           f"fine-tune, `denoise train --init {checkpoint} --qat ...`; export that run's best.pt")
    with tempfile.TemporaryDirectory() as tmp:  # the QAT weights' own FP32 graph is what gets quantized
        own_fp32 = Path(tmp) / "qat.onnx"
        export_onnx(checkpoint, own_fp32)
        # the grids of the fake-quantized model the file is matched against (a checkpoint from before tied
        # grids gets them as load_ranges makes them)
        fake_quant = quantized_from_checkpoint(state)
        quantize_graph(own_fp32, int8_path, ranges(fake_quant))
    try:
        images = verification_images(images_folder)
        matches = match_fake_quant(int8_path, fake_quant, images)
        reports = compare_precision(fp32_path, int8_path, "int8", images, MAX_PSNR_DROP_DB, INT8_VERIFY_SIGMAS)
        ran = kernels_run(int8_path)
        expected = len(state["quantization"]["layers"])
        problems = [m.line().strip() for m in matches if not m.ok]
        sigma_max = verified_up_to(reports)
        if sigma_max < REQUIRED_SIGMA_MAX:
            problems += [r.line().strip() for r in reports if not r.ok and r.sigma <= REQUIRED_SIGMA_MAX]
        if ran["QLinearConv"] != expected:
            problems.append(f"ONNX Runtime ran {ran['QLinearConv']} QLinearConv kernels, not {expected} (ops run: "
                            f"{dict(ran)}): this ONNX Runtime would run the INT8 model as dequantized FP32")
        if problems:
            raise DenoiseError("INT8 model failed verification (file removed):\n  " + "\n  ".join(problems))
    except BaseException:
        int8_path.unlink(missing_ok=True)  # never leave an untrustworthy model where the runtime looks
        raise
    checked = {"matches": matches, "reports": reports, "kernels": dict(ran), "sigma_max": sigma_max,
               "pair_sum_max": pair_sum_max(int8_path),
               "verified_on": f"images in {images_folder}" if images_folder else "procedural test images"}
    return {**checked, "card_entry": int8_card_entry(int8_path, checkpoint, state, checked)}


def verified_up_to(reports: list[PrecisionReport]) -> float:
    """The highest verification sigma up to which every one passed (0 when the lowest failed)."""
    passed = 0.0
    for report in sorted(reports, key=lambda r: r.sigma):
        if not report.ok:
            break
        passed = report.sigma
    return passed


def int8_card_entry(int8_path: Path, checkpoint: Path, state: dict, checked: dict) -> dict:
    """What the FP32 model's card says of its INT8 sibling (psnr_drop_db: against that FP32 model)."""
    from denoise.model_files import sha256_file
    from denoise.quantize import stored_weight_limit

    reports: list[PrecisionReport] = checked["reports"]
    return {"onnx_sha256": sha256_file(int8_path), "sigma_max": checked["sigma_max"], "verified_on": checked["verified_on"],
            "qat_checkpoint": Path(checkpoint).name, "qat_checkpoint_sha256": sha256_file(checkpoint),
            "qat_steps": state.get("step"), "qat_minutes": round(state.get("meta", {}).get("train_seconds", 0.0) / 60, 1),
            "quantized_convs": len(state["quantization"]["layers"]),
            "weight_limit": stored_weight_limit(state["quantization"]),
            "pair_sum_max": checked["pair_sum_max"],  # <= 32767: exact on AVX2 too (runtime.precision)
            "float_convs": state["quantization"]["float_layers"],
            "psnr_drop_db": {f"{r.sigma:g}": round(r.psnr_fp32 - r.psnr_other, 4) for r in reports},
            "fake_quant_psnr_gap_db": {f"{m.sigma:g}": round(m.psnr_onnx - m.psnr_torch, 4) for m in checked["matches"]}, "qlinearconv_kernels": checked["kernels"].get("QLinearConv", 0)}
