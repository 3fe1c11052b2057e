"""Training (needs the `train` extra: torch): data, noise, the loop and checkpoints."""
