"""Fashion-MNIST loading from Debian's `dataset-fashion-mnist` (IDX files, gzip).

Nothing is downloaded: the data must already be on disk. Images come back as float32 in [-1, 1]
(the range the diffusion model predicts and the sampler clips to), labels as int64.
"""
import gzip
import hashlib
import os
import struct

import numpy as np

DEFAULT_DATA_DIR = "/usr/share/datasets/fashion-mnist"
CLASS_NAMES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
NULL_CLASS = len(CLASS_NAMES)  # label used for the unconditional branch of classifier-free guidance

_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


class DatasetMissingError(RuntimeError):
    pass


def data_dir_from(arg=None):
    return arg or os.environ.get("FASHION_MNIST_DIR") or DEFAULT_DATA_DIR


def _paths(data_dir, split):
    if split not in _FILES:
        raise ValueError(f"unknown split {split!r}; expected one of {sorted(_FILES)}")
    paths = [os.path.join(data_dir, name) for name in _FILES[split]]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise DatasetMissingError(
            f"Fashion-MNIST files not found: {', '.join(missing)}. Install Debian's package "
            f"'dataset-fashion-mnist' (apt-get install dataset-fashion-mnist) or point "
            f"--data-dir / FASHION_MNIST_DIR at a folder holding the four IDX .gz files."
        )
    return paths


def _read_idx(path, expected_magic):
    with gzip.open(path, "rb") as handle:
        raw = handle.read()
    magic, count = struct.unpack(">II", raw[:8])
    if magic != expected_magic:
        raise ValueError(f"{path}: IDX magic {magic:#x}, expected {expected_magic:#x}")
    if expected_magic == 0x803:
        rows, cols = struct.unpack(">II", raw[8:16])
        return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(count, rows, cols)
    return np.frombuffer(raw, dtype=np.uint8, offset=8).reshape(count)


def load_split(split, data_dir=None, limit=None):
    """Returns (images float32 [N,1,28,28] in [-1,1], labels int64 [N])."""
    image_path, label_path = _paths(data_dir_from(data_dir), split)
    images = _read_idx(image_path, 0x803)
    labels = _read_idx(label_path, 0x801)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    images = images.astype(np.float32)[:, None, :, :] / 127.5 - 1.0
    return images, labels.astype(np.int64)


def dataset_sha256(data_dir=None):
    """Hash of the four IDX files, recorded in the manifest so a model names the data it saw."""
    digest = hashlib.sha256()
    for split in ("train", "test"):
        for path in _paths(data_dir_from(data_dir), split):
            with open(path, "rb") as handle:
                digest.update(handle.read())
    return digest.hexdigest()
