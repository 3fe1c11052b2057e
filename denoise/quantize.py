"""The INT8 model's arithmetic, in PyTorch: where the CAE is quantized, on which grids, and the fake-quantized
model that computes it. Training (``denoise.train.qat``: the quantization-aware fine-tune) and export
(``denoise.export.int8``: the INT8 ONNX written from a QAT checkpoint and checked against it) share it, so the
trained model is the model that runs:

* weights: per output channel, symmetric, on 129 levels in [-64, 64] (scale = max|w| / 64), recomputed every
  step -- 7 bits where INT8 holds 8, so that AVX2 CPUs may run the model (``WEIGHT_LIMIT``);
* every quantized convolution's input and its output: per tensor, asymmetric UINT8 in [0, 255], with a
  range observed during training (a moving average of each batch's min and max, ``RangeObserver``) and then
  frozen (``train.qat.OBSERVE_FRACTION``), so that the last part of the fine-tune trains against the ranges
  that ship. A checkpoint stores them (``ranges``); ``quantized_from_checkpoint`` rebuilds the model from it.

ONNX Runtime fuses DequantizeLinear -> Conv -> QuantizeLinear into one integer QLinearConv; the skip
additions and ReLUs between convolutions stay in float on the dequantized values, here as there. A
convolution whose output goes only into a ReLU (no skip connection takes it) has its output range start at
0: the grid's zero point is then 0 and quantizing is the ReLU, so all 256 levels go to the values that
survive it (its pre-ReLU outputs reach further below 0 than above it). When the next convolution is
quantized too, that output grid *is* the next one's input grid (``tied_inputs``): its values pass the ReLU
unchanged and are already on the grid, so the INT8 graph hands the UINT8 tensor from one QLinearConv
straight to the next, with no DequantizeLinear -> QuantizeLinear between (how many such hand-overs, and what
they save: BENCHMARKS.md, "INT8 on the CPU").

Seven convolutions stay FP32 (``float_layers``): the first and the last two, and both ends of the two outermost
skip connections (with the bundled layout: the first two, the fourth, the sixteenth and the last three). The first
sees the pixels and the noise level, and the last writes the predicted noise. The outputs at both ends of a skip
connection are added and go on towards the noise estimate; quantized, the outermost pair's cost the most PSNR on
white noise, far more than any other tensor (benchmarks/qat_sensitivity.py; BENCHMARKS.md, "What each quantized
tensor costs"), and the next pair's the most on real camera noise, whose denoised result is so clean that a fine
8-bit error shows (BENCHMARKS.md, "The INT8 sibling with seven FP32 convolutions"). The conv between the
outermost skip's decoder end and the last one also sees an input that grows with the noise level over more than
one UINT8 grid spans. What the other thirteen in INT8 gain in speed: BENCHMARKS.md.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from denoise.model import CAE

ACTIVATION_LEVELS = 255  # UINT8: 0..255
# INT8 weights, symmetric: -64..64. Why not -127..127: on x86 CPUs without VNNI, ONNX Runtime's integer kernels
# (MLAS, U8S8: UINT8 activations x INT8 weights) multiply with AVX2's vpmaddubsw, which adds two adjacent
# products a1*w1 + a2*w2 into a *saturating* 16-bit sum before widening (vpmaddwd) to 32 bits. With a <= 255
# and |w| <= 64 that sum is at most 255 * 128 = 32640 <= 32767, whichever two weights the kernel pairs, so it
# cannot saturate and the result is exact; with |w| up to 127 it can reach 64770. VNNI's vpdpbusd sums in 32
# bits and never saturates, so one file serves both (denoise.export.int8.pair_sum_max checks the file).
WEIGHT_LIMIT = 64
LEGACY_WEIGHT_LIMIT = 127  # QAT checkpoints made before weight_limit was recorded used the full INT8 range
MOMENTUM = 0.01  # of the moving averages of min and max


def activation_qparams(low: float, high: float) -> tuple[float, int]:
    """(scale, zero point) of the UINT8 grid over [low, high], widened to include 0 (so 0 is exact:
    ReLU's zeros and the convolutions' zero padding)."""
    low, high = min(float(low), 0.0), max(float(high), 0.0)
    scale = max((high - low) / ACTIVATION_LEVELS, 1e-8)
    return scale, int(min(max(round(-low / scale), 0), ACTIVATION_LEVELS))


def weight_scales(weight: torch.Tensor, axis: int, limit: int = WEIGHT_LIMIT) -> torch.Tensor:
    """Per-output-channel scales of the symmetric weight grid -limit..limit (float32)."""
    dims = [d for d in range(weight.dim()) if d != axis]
    return (weight.detach().abs().amax(dim=dims) / limit).clamp_min(1e-12).float()


def fake_quant_weight(weight: torch.Tensor, axis: int, limit: int = WEIGHT_LIMIT) -> torch.Tensor:
    scales = weight_scales(weight, axis, limit)
    zeros = torch.zeros_like(scales, dtype=torch.int32)
    return torch.fake_quantize_per_channel_affine(weight, scales, zeros, axis, -limit, limit)


class RangeObserver(nn.Module):
    """One tensor's quantization range: observed while training (until frozen), applied always."""

    def __init__(self, nonnegative: bool = False):
        super().__init__()
        self.nonnegative = nonnegative  # the range starts at 0 (a ReLU follows): negatives quantize to 0
        self.register_buffer("low", torch.tensor(0.0))
        self.register_buffer("high", torch.tensor(0.0))
        self.register_buffer("seen", torch.tensor(False))
        self.frozen = False

    def qparams(self) -> tuple[float, int]:
        return activation_qparams(self.low.item(), self.high.item())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and not self.frozen:
            with torch.no_grad():
                low = torch.zeros(()) if self.nonnegative else x.detach().min().float()
                high = x.detach().max().float()
                if not self.seen:
                    self.low.copy_(low), self.high.copy_(high), self.seen.fill_(True)
                else:
                    self.low.lerp_(low, MOMENTUM), self.high.lerp_(high, MOMENTUM)
        scale, zero_point = self.qparams()
        return torch.fake_quantize_per_tensor_affine(x, scale, zero_point, 0, ACTIVATION_LEVELS)


class QuantConv2d(nn.Conv2d):
    weight_axis = 0  # [out, in, k, k]; None: weights unquantized (benchmarks/qat_sensitivity.py)
    weight_limit = WEIGHT_LIMIT  # set per layer by load_ranges for checkpoints made with another

    def add_observers(self, relu_only: bool):
        self.input_range, self.output_range = RangeObserver(), RangeObserver(nonnegative=relu_only)
        return self

    def quantized_weight(self):
        if self.weight_axis is None:
            return self.weight
        return fake_quant_weight(self.weight, self.weight_axis, self.weight_limit)

    def forward(self, x):
        weight = self.quantized_weight()
        return self.output_range(self._conv_forward(self.input_range(x), weight, self.bias))


class OnPreviousGrid(nn.Module):
    """The input 'observer' of a convolution whose input is already on the previous convolution's output
    grid (``tied_inputs``): nothing to observe or round."""

    def forward(self, x):
        return x


class QuantConvTranspose2d(nn.ConvTranspose2d):
    weight_axis = 1  # [in, out, k, k]: per output channel, as the equivalent Conv's axis 0

    weight_limit = WEIGHT_LIMIT
    add_observers = QuantConv2d.add_observers
    quantized_weight = QuantConv2d.quantized_weight

    def forward(self, x):
        weight = self.quantized_weight()
        out = F.conv_transpose2d(self.input_range(x), weight, self.bias, self.stride, self.padding,
                                 self.output_padding, self.groups, self.dilation)
        return self.output_range(out)


def conv_layers(model: CAE) -> list[tuple[nn.ModuleList, int]]:
    """(container, index) of every convolution in graph order: the encoder's, then the decoder's -- the
    order of the Conv nodes in the exported ONNX."""
    return [(model.encoder, i) for i in range(len(model.encoder))] + [(model.decoder, i) for i in range(len(model.decoder))]


def float_layers(model: CAE) -> tuple[int, ...]:
    """Graph-order indices of the convolutions that stay FP32: the first and the last two, and both ends of the
    two outermost skip connections (encoder layer i's output meets decoder layer ``layers - i``'s)."""
    n, last = model.config.layers, len(conv_layers(model)) - 1
    ends = {end for i in sorted(model.config.skip_layers)[:2] for end in (i - 1, 2 * n - i - 1)}
    return tuple(sorted({0, last - 1, last} | ends))


def skip_outputs(model: CAE) -> set[int]:
    """Graph-order indices of the convolutions whose output (before its ReLU) a skip connection uses: the encoder
    layers that feed a skip, and the decoder layers to which one is added (``CAEConfig.skip_layers``, the rule
    CAE.forward wires)."""
    n, layers = model.config.layers, model.config.skip_layers
    return {i - 1 for i in layers} | {n + j - 1 for j in layers}


def tied_inputs(model: CAE, keep: tuple[int, ...] | None = None) -> set[int]:
    """Graph-order indices of the quantized convolutions whose input is the previous quantized convolution's
    output through nothing but a ReLU: that output's grid starts at 0, so it is their input grid as well."""
    keep, skips = float_layers(model) if keep is None else keep, skip_outputs(model)
    quantized = set(range(len(conv_layers(model)))) - set(keep)
    return {position for position in quantized if position - 1 in quantized and position - 1 not in skips}


def prepare_qat(model: CAE, keep: tuple[int, ...] | None = None) -> CAE:
    """Turn every convolution but those ``float_layers`` names (or those ``keep`` names) into its
    fake-quantized version, in place (same parameter names, plus the observers' buffers)."""
    keep = float_layers(model) if keep is None else keep
    skips, tied = skip_outputs(model), tied_inputs(model, keep)
    for position, (container, index) in enumerate(conv_layers(model)):
        if position in keep:
            continue
        old = container[index]
        cls = QuantConvTranspose2d if isinstance(old, nn.ConvTranspose2d) else QuantConv2d
        new = cls(old.in_channels, old.out_channels, old.kernel_size, padding=old.padding).add_observers(
            relu_only=position not in skips)
        if position in tied:
            new.input_range = OnPreviousGrid()
        new.load_state_dict(old.state_dict(), strict=False)
        container[index] = new.to(old.weight.device)
    return model


def quantized_layers(model: CAE) -> dict[int, nn.Module]:
    return {position: container[index] for position, (container, index) in enumerate(conv_layers(model))
            if isinstance(container[index], (QuantConv2d, QuantConvTranspose2d))}


def freeze_ranges(model: CAE) -> None:
    for layer in quantized_layers(model).values():
        layer.input_range.frozen = layer.output_range.frozen = True


def input_observer(layers: dict[int, nn.Module], position: int) -> RangeObserver:
    """The observer that holds a quantized layer's input grid: its own, or the previous layer's output one."""
    layer = layers[position]
    return layers[position - 1].output_range if isinstance(layer.input_range, OnPreviousGrid) else layer.input_range


def ranges(model: CAE) -> dict:
    """What a checkpoint stores: each quantized layer's (graph-order index) input and output [low, high]."""
    layers = quantized_layers(model)

    def span(observer: RangeObserver) -> list[float]:
        return [observer.low.item(), observer.high.item()]

    return {"layers": {str(position): {"input": span(input_observer(layers, position)), "output": span(layer.output_range)}
                       for position, layer in layers.items()},
            "float_layers": [p for p in range(len(conv_layers(model))) if p not in layers],
            "tied_inputs": sorted(p for p, layer in layers.items() if isinstance(layer.input_range, OnPreviousGrid)),
            "weight_limit": weight_limit(model)}


def stored_weight_limit(stored: dict) -> int:
    """The weight grid of a checkpoint's stored quantization (``ranges``); LEGACY_WEIGHT_LIMIT where it predates it."""
    return int(stored.get("weight_limit", LEGACY_WEIGHT_LIMIT))


def use_weight_limit(model: CAE, limit: int) -> None:
    for layer in quantized_layers(model).values():
        layer.weight_limit = limit


def weight_limit(model: CAE) -> int:
    limits = {layer.weight_limit for layer in quantized_layers(model).values()}
    if len(limits) != 1:
        raise ValueError(f"the quantized layers use different weight grids: {sorted(limits)}")
    return limits.pop()


def float_state(model: CAE) -> dict:
    """The model's weights without the observers: what a plain CAE loads."""
    return {k: v.detach().cpu() for k, v in model.state_dict().items() if "_range." not in k}


def load_ranges(model: CAE, stored: dict) -> None:
    """Put a checkpoint's ranges into a model made by ``prepare_qat``."""
    layers = quantized_layers(model)
    if sorted(map(int, stored["layers"])) != sorted(layers):
        raise ValueError("the stored quantization ranges are for other layers than this model quantizes")
    use_weight_limit(model, stored_weight_limit(stored))
    # Outputs first, then inputs: where a layer's input is the previous layer's output grid, the input range
    # wins. They are equal in checkpoints of tied training; in older ones (trained with two grids there) the
    # input range is the grid the next layer was trained to see.
    for key in ("output", "input"):
        for position, values in stored["layers"].items():
            layer = layers[int(position)]
            observer = layer.output_range if key == "output" else input_observer(layers, int(position))
            low, high = values[key]
            observer.low.fill_(low), observer.high.fill_(high), observer.seen.fill_(True)


def quantized_from_checkpoint(state: dict) -> CAE:
    """The fake-quantized model of a QAT checkpoint (eval mode): what the INT8 ONNX model must match."""
    from denoise.model import build_model, config_from_dict

    model = build_model(config_from_dict(state["config"]))
    model.load_state_dict(state["model"])
    prepare_qat(model, keep=tuple(state["quantization"]["float_layers"]))
    load_ranges(model, state["quantization"])
    freeze_ranges(model)
    return model.eval()
