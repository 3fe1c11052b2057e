"""Image sets, torch-free (numpy + Pillow): the CIFAR-10 archive (read in place), the original CIFAR-10 python
batches, or any folder of images, loaded as uint8 HxWx3 arrays; and the clean images that ``denoise eval`` and
export's precision checks measure on. Training (``denoise.train``), evaluation and export all read them here.

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
from denoise.formats import IMAGE_SUFFIXES, list_images, list_inputs
from denoise.metrics import to_uint8

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


def load_eval_images(source: Path, limit: int | None = None, held_out: bool = False) -> list[np.ndarray]:
    """Clean uint8 RGB images from a folder, or the test split of a CIFAR-10 archive / batches folder.

    ``held_out``: of a folder, only the images ``denoise train`` keeps out of training (every 10th), so a
    model trained on that folder is measured on photos it has not seen."""
    source = Path(source)
    if not source.exists():
        raise DenoiseError(f"clean images {source} do not exist")
    folder = is_image_folder(source)
    if held_out and not folder:
        raise DenoiseError(f"--held-out is for image folders; {source} is CIFAR-10, whose test split is never trained on")
    if folder:
        from denoise.image_files import read_image  # every format, read as the runtime reads it

        return [to_uint8(read_image(p).rgb) for p in eval_image_paths(source, limit, held_out)]
    return load_images(source, "test")[:limit]


def eval_image_paths(folder: Path, limit: int | None = None, held_out: bool = False) -> list[Path]:
    """The image files of a folder that ``load_eval_images`` reads, in its order."""
    candidates = held_out_paths(folder) if held_out else list_inputs(folder)
    paths = [p for p in candidates if p.suffix.lower() in IMAGE_SUFFIXES][:limit]
    if not paths:
        raise DenoiseError(f"no images found in {folder}")
    return paths
