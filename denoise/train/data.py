"""Training batches from the image sets (``denoise.datasets``: CIFAR-10, image folders, the train/validation
split): random crops with flips and rotations drawn per batch, and their conversion to float tensors where
training runs.
"""

from __future__ import annotations

import numpy as np

from denoise.errors import DenoiseError


def crop_for(images: list[np.ndarray], crop: int) -> int:
    """The crop size used for a source: the requested size, or its smallest image side if that is smaller
    (CIFAR's 32x32 images give 32x32 crops when photos give 64x64 ones)."""
    return min(crop, min(min(im.shape[:2]) for im in images))


class MixedSampler:
    """Batches from several sources in turn, each with its own crop size (a batch is one source)."""

    def __init__(self, sources: list[list[np.ndarray]], crop: int, seed: int):
        self.samplers = [CropSampler(images, crop_for(images, crop), seed + i) for i, images in enumerate(sources)]
        self.turn = 0

    def batch(self, size: int) -> tuple[int, np.ndarray]:
        """The index of the source this batch comes from, and the batch."""
        source = self.turn % len(self.samplers)
        self.turn += 1
        return source, self.samplers[source].batch(size)


class CropSampler:
    """Random crops with flips and 90-degree rotations, as uint8 [N,crop,crop,4] RGBX batches (X: a pad byte).

    On a GPU the sampler runs between training steps, so it must be fast: pixels are kept as 4 bytes,
    which numpy flips and rotates much faster than 3-byte ones (and the batch stays contiguous for
    the copy to the GPU), and the random draws are made for the whole batch at once. The batch stays
    uint8 so the float conversion can run where training runs: see ``to_training_tensor``.
    """

    def __init__(self, images: list[np.ndarray], crop: int, seed: int):
        if not images:
            raise DenoiseError("no training images")
        smallest = min(min(im.shape[:2]) for im in images)
        if smallest < crop:
            raise DenoiseError(f"crop size {crop} is larger than the smallest image ({smallest} px); use --crop {smallest}")
        self.pixels = [np.ascontiguousarray(np.pad(im, ((0, 0), (0, 0), (0, 1)))).view(np.uint32)[..., 0] for im in images]
        self.crop = crop
        self.rng = np.random.default_rng(seed)

    def batch(self, size: int) -> np.ndarray:
        rng, c = self.rng, self.crop
        idx = rng.integers(len(self.pixels), size=size)
        ys, xs = rng.random(size), rng.random(size)
        out = np.empty((size, c, c), dtype=np.uint32)
        for k, i in enumerate(idx):
            im = self.pixels[i]
            y, x = int(ys[k] * (im.shape[0] - c + 1)), int(xs[k] * (im.shape[1] - c + 1))
            out[k] = im[y:y + c, x:x + c]
        flip = rng.random(size) < 0.5
        out[flip] = out[flip, :, ::-1]
        turns = rng.integers(4, size=size)
        for k in (1, 2, 3):
            chosen = turns == k
            out[chosen] = np.rot90(out[chosen], k=k, axes=(1, 2))
        return out[:, :, :, None].view(np.uint8)


def to_training_tensor(batch: np.ndarray, device) -> "torch.Tensor":
    """A uint8 [N,H,W,3 or 4] batch (RGB or RGBX) -> float32 [N,3,H,W] in [0,1] on ``device``.

    For a GPU the uint8 pixels cross the bus (4x fewer bytes than float) and are converted there; on the
    CPU numpy's transpose-and-convert is the fastest way (faster than torch's on a strided batch)."""
    import torch

    if torch.device(device).type != "cuda":
        return torch.from_numpy(batch[..., :3].transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255.0))
    # From pageable memory the copy waits for the GPU to finish its queue, so the CPU would draw the
    # next batch only after each step; from pinned memory it is queued and the two overlap.
    pixels = torch.from_numpy(np.ascontiguousarray(batch)).pin_memory().to(device, non_blocking=True)
    return pixels[..., :3].permute(0, 3, 1, 2).float().div_(255.0).contiguous()
