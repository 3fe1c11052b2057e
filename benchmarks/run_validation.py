"""Score checkpoints on a training run's own validation set (the same sources, noise, seed and held-out real pairs
as the run's log): e.g. the model a fine-tune starts from, beside the run's checkpoints.

    python benchmarks/run_validation.py runs/keepwhite2 denoise/weights/default.pt runs/keepwhite2/last.pt
"""

import json
import sys
from pathlib import Path

import torch

from denoise.checkpoint import load_checkpoint
from denoise.datasets import is_image_folder, load_images
from denoise.model import build_model, config_from_dict
from denoise.train.loop import TrainSettings, VAL_SIGMAS, validation_set, pair_validation_set, validate
from denoise.train.pairs import load_pairs


cfg = json.loads(Path(sys.argv[1], "config.json").read_text())["settings"]
s = TrainSettings(**cfg)
torch.set_num_threads(2)
val_sources = [load_images(Path(d), "val") for d in s.data]
photo = [is_image_folder(Path(d)) for d in s.data]
sig = [x for x in VAL_SIGMAS if s.sigma_min <= x <= s.sigma_max] or [s.sigma_max]
pairs = validation_set(val_sources, photo, s.val_images, sig, s.protocol, s.seed)
pairs += pair_validation_set([p for f in s.pairs for p in load_pairs(Path(f), "val")])
for name in sys.argv[2:]:
    state = load_checkpoint(Path(name))
    model = build_model(config_from_dict(state["config"])); model.load_state_dict(state["model"]); model.eval()
    print(name, {k: round(v, 2) for k, v in validate(model, pairs, torch.device("cpu")).items()})
