"""Training (needs the `train` extra: torch): data, noise, the loop and checkpoints.

This package's own module is torch-free, so the CLI can offer its choices without importing torch."""

LOSSES = ("mse", "log-mse")  # see loop.batch_loss
ANCHORS = ("synthesized", "white")  # see loop.ANCHOR_WEIGHT: which batches through_loss anchors
