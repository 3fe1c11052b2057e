"""Quantization-aware training (QAT) of the CAE: the model learns to work with INT8 convolutions.

What is quantized, on which grids, and the fake-quantized model itself are the INT8 model's arithmetic,
shared with the export that writes the INT8 ONNX: ``denoise.quantize``. The loop (``denoise.train.loop``)
turns the model into its fake-quantized version (``quantize.prepare_qat``) before it makes the optimizer,
trains on today's weight grid (``quantize.WEIGHT_LIMIT``) whatever grid its ``--init`` was made on, is taught by
the FP32 model's own outputs (``loop.distillation_loss``), and stores the ranges apart from the weights
(``quantize.ranges``, ``quantize.float_state``). What is the training's own is when the ranges stop moving:
"""

from __future__ import annotations

# The ranges are observed (a moving average of each batch's min and max) for the first half of a QAT run and
# frozen for the second (quantize.freeze_ranges), so that the last part of the fine-tune trains against the
# ranges that ship.
OBSERVE_FRACTION = 0.5
