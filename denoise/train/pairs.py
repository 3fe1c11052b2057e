"""Real noisy/clean camera pairs as a training source (``denoise train --pairs DIR``).

A pair folder holds ``noisy/`` and ``clean/`` with the same file names (SIDD, RENOIR and the like). Real
noise teaches what the synthesized camera protocol misses -- a real camera's own demosaicing, sharpening,
noise reduction and JPEG -- but the sets are small, so they are mixed with the synthesized sources, not
used alone (see ``TrainSettings.pairs_share``).

The held-out part is fixed and named by a rule, not by chance, so every run and every benchmark holds out
the same pairs: files are grouped by *scene* (the name up to its first ``_``: SIDD names start with the
scene number, and one SIDD scene has eleven crops that must not straddle the split; other names are their
own scene), scenes are sorted, and every ``PAIR_VALIDATION_EVERY``-th scene (index 0, 5, 10, ...) is held
out. ``held_out_pair_names`` lists them.

The clean reference is shifted, per channel, to the noisy shot's mean brightness (``align_brightness``):
SIDD's clean images are 1-9 grey levels brighter than their noisy shots (its ground truth is estimated from
many frames and lands slightly off in brightness), and a denoiser trained on that offset learns to brighten
what it denoises -- which costs it on every other kind of noise (BENCHMARKS.md, the real1 run). Noise has no mean; what differs on average is the reference, not the noise.

The level the denoiser is given for a real pair is the true local noise level, measured the way the
camera protocol measures it (``camera_noise.local_noise_level``: the RMS of noisy - clean over a 9x9
window), so real and synthesized batches speak the same language.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from denoise.camera_noise import local_noise_level
from denoise.errors import DenoiseError
from denoise.formats import IMAGE_SUFFIXES

PAIR_VALIDATION_EVERY = 5


@dataclass
class Pair:
    name: str
    noisy: np.ndarray  # uint8 HxWx3
    clean: np.ndarray  # float32 HxWx3 in [0,1], brightness aligned to noisy (align_brightness)
    level: np.ndarray  # float32 HxW: the true local noise level, [0,1] scale


def align_brightness(noisy: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """float32 [0,1] ``clean`` shifted per channel to ``noisy``'s mean (module docstring); both uint8 HxWx3."""
    shift = noisy.mean(axis=(0, 1), dtype=np.float64) - clean.mean(axis=(0, 1), dtype=np.float64)
    return np.clip((clean + shift) / 255.0, 0.0, 1.0).astype(np.float32)


def scene_of(name: str) -> str:
    """The scene a pair's file belongs to: the stem up to its first ``_`` (the whole stem if it has none)."""
    return Path(name).stem.split("_", 1)[0]


def pair_names(folder: Path) -> list[str]:
    """The file names present in both ``noisy/`` and ``clean/``, sorted; a name in only one of them is an error
    that names it (a pair folder that does not match is a mistake, not something to train around)."""
    folder = Path(folder)
    for part in ("noisy", "clean"):
        if not (folder / part).is_dir():
            raise DenoiseError(f"{folder} is not a pair folder: it has no {part}/ (give a folder with noisy/ and clean/ "
                               "holding the same file names)")
    names = {part: {p.name for p in (folder / part).iterdir()
                    if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES}
             for part in ("noisy", "clean")}
    for part, other in (("noisy", "clean"), ("clean", "noisy")):
        alone = sorted(names[part] - names[other])
        if alone:
            more = f" and {len(alone) - 1} more" if len(alone) > 1 else ""
            raise DenoiseError(f"{folder / part / alone[0]}{more} has no match in {folder / other}/: "
                               "noisy/ and clean/ must hold the same file names")
    if not names["noisy"]:
        raise DenoiseError(f"{folder} has no image pairs in noisy/ and clean/")
    return sorted(names["noisy"])


def held_out_pair_names(folder: Path) -> list[str]:
    """The pairs of ``folder`` that training never sees: every PAIR_VALIDATION_EVERY-th scene (module docstring)."""
    names = pair_names(folder)
    scenes = sorted({scene_of(n) for n in names})
    held = {s for i, s in enumerate(scenes) if i % PAIR_VALIDATION_EVERY == 0}
    return [n for n in names if scene_of(n) in held]


def _read_rgb(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError, SyntaxError) as exc:  # what Pillow raises for a corrupt or truncated file
        raise DenoiseError(f"{path}: cannot read it as an image ({exc}); replace or remove the pair") from None


def load_pairs(folder: Path, split: str) -> list[Pair]:
    """``split`` "train" (the pairs not held out), "val" (the held-out ones) or "all"."""
    folder = Path(folder)
    if split not in ("train", "val", "all"):
        raise ValueError(f"unknown split {split!r}")
    names = pair_names(folder)
    held = set(held_out_pair_names(folder))
    chosen = [n for n in names if split == "all" or (n in held) == (split == "val")]
    pairs = []
    for name in chosen:
        noisy, clean = _read_rgb(folder / "noisy" / name), _read_rgb(folder / "clean" / name)
        if noisy.shape != clean.shape:
            raise DenoiseError(f"{folder / 'noisy' / name} is {noisy.shape[1]}x{noisy.shape[0]} but its clean version is "
                               f"{clean.shape[1]}x{clean.shape[0]}: a pair must have one size")
        aligned = align_brightness(noisy, clean)
        pairs.append(Pair(name, noisy, aligned, local_noise_level(noisy / 255.0, aligned)))
    return pairs


class PairSampler:
    """Aligned random crops of real pairs, with the same flip and 90-degree rotation on noisy, clean and level.

    ``batch`` gives float32 (noisy [N,3,c,c], clean [N,3,c,c], level [N,1,c,c]) in [0,1]."""

    def __init__(self, pairs: list[Pair], crop: int, seed: int):
        if not pairs:
            raise DenoiseError("no training pairs (every pair is held out? give more pairs)")
        smallest = min(min(p.noisy.shape[:2]) for p in pairs)
        self.crop = min(crop, smallest)
        # One HxWx7 float32 stack per pair (noisy, clean, level), so one crop/flip/rotation moves all three.
        self.stacks = [np.concatenate([p.noisy / np.float32(255), p.clean, p.level[..., None]],
                                      axis=-1).astype(np.float32) for p in pairs]
        self.rng = np.random.default_rng(seed)

    def batch(self, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rng, c = self.rng, self.crop
        out = np.empty((size, c, c, 7), np.float32)
        for k, i in enumerate(rng.integers(len(self.stacks), size=size)):
            im = self.stacks[i]
            y, x = rng.integers(im.shape[0] - c + 1), rng.integers(im.shape[1] - c + 1)
            crop = im[y:y + c, x:x + c]
            if rng.random() < 0.5:
                crop = crop[:, ::-1]
            out[k] = np.rot90(crop, k=int(rng.integers(4)))
        chw = out.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(chw[:, :3]), np.ascontiguousarray(chw[:, 3:6]), np.ascontiguousarray(chw[:, 6:])
