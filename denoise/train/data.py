"""Training data: the CIFAR-10 archive (read in place), the original CIFAR-10 python batches, or any
folder of images. Everything is loaded as uint8 HxWx3 arrays; crops and augmentation are drawn per batch.

The train/validation split is fixed and the same for every source: of the images in sorted order,
every 10th (index % 10 == 0) is validation, the rest train. Test splits (CIFAR's test set) are separate.
"""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from denoise.errors import DenoiseError
from denoise.runtime.images import IMAGE_SUFFIXES

VALIDATION_EVERY = 10


def _rgb_array(im: Image.Image) -> np.ndarray:
    return np.asarray(im.convert("RGB"), dtype=np.uint8)  # grayscale becomes 3 equal channels


def load_cifar_archive(path: Path, split: str) -> list[np.ndarray]:
    """``train/`` or ``test/`` of the CIFAR-10 JPEG archive (``<split>/<class>/NNNN.jpg``), sorted by name."""
    with tarfile.open(path) as tar:
        members = sorted((m for m in tar.getmembers() if m.isfile() and m.name.startswith(f"{split}/")),
                         key=lambda m: m.name)
        images = [_rgb_array(Image.open(io.BytesIO(tar.extractfile(m).read()))) for m in members]
    if not images:
        raise DenoiseError(f"{path} has no {split}/ images; expected the CIFAR-10 JPEG archive layout")
    return images


def load_cifar_batches(folder: Path, split: str) -> list[np.ndarray]:
    """The original ``cifar-10-batches-py`` folder as users download it.

    Those files are Python pickles (the dataset's own format): only open copies you downloaded yourself.
    """
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    images = []
    for name in names:
        with open(folder / name, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        images.extend(data)
    return images


def image_folder_paths(folder: Path) -> list[Path]:
    """Every image under ``folder`` (recursive), sorted by path: the order the train/validation split uses."""
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def held_out_paths(folder: Path) -> list[Path]:
    """The images of ``folder`` that training never sees (its validation part): every 10th, in path order."""
    return [p for i, p in enumerate(image_folder_paths(folder)) if i % VALIDATION_EVERY == 0]


def load_image_folder(folder: Path) -> list[np.ndarray]:
    """Every image under ``folder`` (recursive), sorted by path."""
    paths = image_folder_paths(folder)
    if not paths:
        raise DenoiseError(f"no images found under {folder}")
    images = []
    for p in paths:
        with Image.open(p) as im:
            images.append(_rgb_array(im))
    return images


def load_images(source: Path, split: str) -> list[np.ndarray]:
    """``split`` is "train", "val" or "test" (test exists only for CIFAR-10)."""
    source = Path(source)
    if not source.exists():
        raise DenoiseError(f"training data {source} does not exist")
    if source.is_file() and source.name.endswith((".tar.gz", ".tgz", ".tar")):
        images = load_cifar_archive(source, "test" if split == "test" else "train")
    elif (source / "data_batch_1").is_file():
        images = load_cifar_batches(source, "test" if split == "test" else "train")
    elif source.is_dir():
        if split == "test":
            raise DenoiseError(f"{source} is an image folder: it has no test split (use split 'val')")
        images = load_image_folder(source)
    else:
        raise DenoiseError(f"{source}: give a folder of images, the CIFAR-10 .tar.gz archive or cifar-10-batches-py")
    if split == "test":
        return images
    keep_val = split == "val"
    return [im for i, im in enumerate(images) if (i % VALIDATION_EVERY == 0) == keep_val]


def crop_for(images: list[np.ndarray], crop: int) -> int:
    """The crop size used for a source: the requested size, or its smallest image side if that is smaller
    (CIFAR's 32x32 images give 32x32 crops when photos give 64x64 ones)."""
    return min(crop, min(min(im.shape[:2]) for im in images))


class MixedSampler:
    """Batches from several sources in turn, each with its own crop size (a batch is one source)."""

    def __init__(self, sources: list[list[np.ndarray]], crop: int, seed: int):
        self.samplers = [CropSampler(images, crop_for(images, crop), seed + i) for i, images in enumerate(sources)]
        self.turn = 0

    def batch(self, size: int) -> np.ndarray:
        sampler = self.samplers[self.turn % len(self.samplers)]
        self.turn += 1
        return sampler.batch(size)


class CropSampler:
    """Random crops with flips and 90-degree rotations, as uint8 [N,crop,crop,3] batches.

    The batch stays uint8 so the float conversion can run where training runs (see ``to_training_tensor``):
    on a GPU, converting on the CPU would cost more than the training step itself.
    """

    def __init__(self, images: list[np.ndarray], crop: int, seed: int):
        if not images:
            raise DenoiseError("no training images")
        self.images = images
        self.crop = crop
        self.rng = np.random.default_rng(seed)
        smallest = min(min(im.shape[:2]) for im in images)
        if smallest < crop:
            raise DenoiseError(f"crop size {crop} is larger than the smallest image ({smallest} px); use --crop {smallest}")

    def batch(self, size: int) -> np.ndarray:
        out = np.empty((size, self.crop, self.crop, 3), dtype=np.uint8)
        for k, idx in enumerate(self.rng.integers(len(self.images), size=size)):
            im = self.images[idx]
            y = self.rng.integers(im.shape[0] - self.crop + 1)
            x = self.rng.integers(im.shape[1] - self.crop + 1)
            patch = im[y:y + self.crop, x:x + self.crop]
            if self.rng.random() < 0.5:
                patch = patch[:, ::-1]
            out[k] = np.rot90(patch, k=int(self.rng.integers(4)))
        return out


def to_training_tensor(batch: np.ndarray, device) -> "torch.Tensor":
    """A uint8 [N,H,W,3] batch -> float32 [N,3,H,W] in [0,1] on ``device`` (uint8 crosses the bus, 4x less)."""
    import torch

    pixels = torch.from_numpy(batch)
    if torch.device(device).type == "cuda":
        # From pageable memory the copy waits for the GPU to finish its queue, so the CPU would draw the
        # next batch only after each step; from pinned memory it is queued and the two overlap.
        pixels = pixels.pin_memory()
    pixels = pixels.to(device, non_blocking=True)
    return pixels.permute(0, 3, 1, 2).float().div_(255.0).contiguous()
