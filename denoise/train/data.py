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
from denoise.formats import list_images

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


class CifarUnpickler(pickle.Unpickler):
    """Unpickles only what a CIFAR-10 batch contains: builtins (dict, list, bytes, str, int) and numpy arrays
    (the three globals numpy's pickles name), plus ``_codecs.encode``, which protocol-2 pickles written by
    Python 3 use for bytes (it only encodes a string). Any other global -- os.system, say -- is refused."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing {module}.{name}: a CIFAR-10 batch holds only dicts, lists, bytes "
                                         "and numpy arrays (is this file what it claims to be?)")
        if name == "_reconstruct":
            from numpy._core.multiarray import _reconstruct

            return _reconstruct
        if module == "_codecs":
            import codecs

            return codecs.encode
        return getattr(np, name)


def load_cifar_batches(folder: Path, split: str) -> list[np.ndarray]:
    """The original ``cifar-10-batches-py`` folder as users download it.

    Those files are Python pickles (the dataset's own format). They are read with CifarUnpickler, which
    admits only what the dataset holds (dicts, lists, bytes and numpy uint8 arrays), so a hostile file is a
    one-line error instead of running code.
    """
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise DenoiseError(f"{folder} lacks {', '.join(missing)}: give the whole cifar-10-batches-py folder")
    images = []
    for name in names:
        with open(folder / name, "rb") as f:
            try:
                batch = CifarUnpickler(f, encoding="bytes").load()
            except pickle.UnpicklingError as exc:
                raise DenoiseError(f"{folder / name}: {exc}") from None
        if not isinstance(batch, dict) or b"data" not in batch:
            raise DenoiseError(f"{folder / name} is not a CIFAR-10 batch (no b'data' in it)")
        data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        images.extend(data)
    return images


def image_folder_paths(folder: Path) -> list[Path]:
    """Every image under ``folder`` (recursive; hidden files and links leading outside it left out, as
    everywhere: formats.list_images), sorted by path: the order the train/validation split uses."""
    return list_images(folder)


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


def is_cifar_archive(source: Path) -> bool:
    """The CIFAR-10 .tar.gz archive (read in place)."""
    return source.is_file() and source.name.endswith((".tar.gz", ".tgz", ".tar"))


def is_cifar_batches(source: Path) -> bool:
    """The original cifar-10-batches-py folder."""
    return (source / "data_batch_1").is_file() or (source / "test_batch").is_file()


def is_image_folder(source: Path) -> bool:
    """True for a folder of images (photos), False for the CIFAR-10 archive or cifar-10-batches-py."""
    source = Path(source)
    return source.is_dir() and not is_cifar_batches(source)


def load_images(source: Path, split: str) -> list[np.ndarray]:
    """``split`` is "train", "val" or "test" (test exists only for CIFAR-10)."""
    source = Path(source)
    if not source.exists():
        raise DenoiseError(f"training data {source} does not exist")
    if is_cifar_archive(source):
        images = load_cifar_archive(source, "test" if split == "test" else "train")
    elif is_cifar_batches(source):
        images = load_cifar_batches(source, "test" if split == "test" else "train")
    elif source.is_dir():  # not CIFAR (checked above): a folder of images
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

    def batch(self, size: int) -> tuple[int, np.ndarray]:
        """The index of the source this batch comes from, and the batch."""
        source = self.turn % len(self.samplers)
        self.turn += 1
        return source, self.samplers[source].batch(size)


class CropSampler:
    """Random crops with flips and 90-degree rotations, as uint8 [N,crop,crop,4] RGBX batches (X: a pad byte).

    On a GPU the sampler runs between training steps, so it must be fast: pixels are kept as 4 bytes,
    which numpy flips and rotates about 4x faster than 3-byte ones (and the batch stays contiguous for
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
    CPU numpy's transpose-and-convert is the fastest way (about 2x torch's on a strided batch)."""
    import torch

    if torch.device(device).type != "cuda":
        return torch.from_numpy(batch[..., :3].transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255.0))
    # From pageable memory the copy waits for the GPU to finish its queue, so the CPU would draw the
    # next batch only after each step; from pinned memory it is queued and the two overlap.
    pixels = torch.from_numpy(np.ascontiguousarray(batch)).pin_memory().to(device, non_blocking=True)
    return pixels[..., :3].permute(0, 3, 1, 2).float().div_(255.0).contiguous()
