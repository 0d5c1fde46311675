"""Reader for MNIST's IDX files (LeCun's format), compressed (``.gz``) or plain.

An IDX file is a 4-byte big-endian magic number (two zero bytes, a type byte, 0x08 for unsigned bytes, and
the number of dimensions), one big-endian uint32 per dimension, then the data. Images are magic 2051
(3 dimensions: count, rows, columns), labels 2049 (1 dimension). Every check failure is a
:class:`qbench.DataError` naming the file and the folder it was read from.

The files are found under a data directory in torchvision's layout (``MNIST/raw/``), in a ``mnist/``
folder, or directly in the directory, each as ``NAME`` or ``NAME.gz``.
"""

from __future__ import annotations

import gzip
import math
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from qbench import DataError

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
_UBYTE = 0x08
_GZIP_MAGIC = b"\x1f\x8b"

#: the folders searched under a data directory, in order
MNIST_FOLDERS = ("MNIST/raw", "mnist", ".")
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MNIST_IMAGE_SHAPE = (28, 28)


def _fail(path: Path, problem: str) -> DataError:
    return DataError(f"{path.name} in {path.parent}: {problem}")


def _payload(path: Path) -> bytes:
    """The file's bytes, decompressed when it is gzip (recognised by content, not by name)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise _fail(path, f"cannot be read ({exc.strerror or exc})") from None
    if not raw:
        raise _fail(path, "is empty")
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise _fail(path, f"is not a readable gzip file ({exc})") from None


def read_idx(path: Path, magic: int) -> np.ndarray:
    """The unsigned-byte array stored in the IDX file ``path``, whose magic number must be ``magic``.

    Checks the magic number, that every dimension is positive and that the file holds exactly the bytes
    the header declares.
    """
    path = Path(path)
    data = _payload(path)
    if len(data) < 4:
        raise _fail(path, f"is too short for an IDX header ({len(data)} bytes)")
    found = int.from_bytes(data[:4], "big")
    ndim = magic & 0xFF
    if found != magic:
        if data[:3] == bytes((0, 0, _UBYTE)):
            detail = f"{data[3]} dimension{'s' if data[3] != 1 else ''}, expected {ndim}"
        else:
            detail = "not an unsigned-byte IDX file"
        raise _fail(path, f"has magic number {found}, expected {magic} ({detail})")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise _fail(path, f"is truncated inside its header ({len(data)} bytes, the header needs {header_len})")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    if any(d == 0 for d in dims):
        raise _fail(path, f"declares an empty dimension {dims}")
    expected = header_len + math.prod(dims)
    if len(data) < expected:
        raise _fail(path, f"is truncated: {len(data)} bytes, the header {dims} needs {expected}")
    if len(data) > expected:
        raise _fail(path, f"has {len(data) - expected} bytes after the {dims} data the header declares")
    return np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape(dims)


def read_idx_images(path: Path, image_shape: tuple[int, int] | None = None) -> np.ndarray:
    """Images ``(N, rows, cols)`` uint8 from an IDX file (magic 2051); ``image_shape`` checks rows, cols."""
    images = read_idx(path, IMAGES_MAGIC)
    if image_shape is not None and images.shape[1:] != tuple(image_shape):
        rows, cols = image_shape
        raise _fail(Path(path), f"holds {images.shape[1]}x{images.shape[2]} images, expected {rows}x{cols}")
    return images


def read_idx_labels(path: Path, n_classes: int | None = None) -> np.ndarray:
    """Labels ``(N,)`` uint8 from an IDX file (magic 2049); ``n_classes`` checks every label is below it."""
    labels = read_idx(path, LABELS_MAGIC)
    if n_classes is not None and labels.size and int(labels.max()) >= n_classes:
        bad = int(np.argmax(labels >= n_classes))
        raise _fail(Path(path), f"label {int(labels[bad])} at index {bad} is not a class below {n_classes}")
    return labels


def _needed() -> str:
    names = [name for pair in MNIST_FILES.values() for name in pair]
    return ", ".join(f"{n}[.gz]" for n in names)


def find_mnist_file(data_dir: Path | None, name: str) -> Path:
    """The path of MNIST file ``name`` (e.g. ``train-images-idx3-ubyte``) under ``data_dir``.

    Looks in ``MNIST/raw/``, ``mnist/`` and ``data_dir`` itself, for ``name`` then ``name.gz``.
    """
    if data_dir is None:
        raise DataError(
            f"MNIST needs a data directory: pass --data-dir or set QBENCH_DATA to a folder holding {_needed()} "
            f"(in MNIST/raw/, mnist/ or the folder itself)"
        )
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"{name}[.gz] not found: data directory {data_dir} does not exist")
    folders = [data_dir / sub for sub in MNIST_FOLDERS]
    for folder in folders:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    looked = ", ".join(str(f) for f in folders)
    raise DataError(f"{name}[.gz] not found in data directory {data_dir} (looked in {looked})")


@dataclass(frozen=True)
class IdxSplit:
    """One MNIST split as stored: images ``(N, 28, 28)`` uint8, labels ``(N,)`` uint8, the files read."""

    images: np.ndarray
    labels: np.ndarray
    paths: tuple[Path, Path]


def load_mnist_split(data_dir: Path | None, split: Literal["train", "test"]) -> IdxSplit:
    """Read and cross-check the images and labels of MNIST's ``train`` or ``test`` split."""
    image_name, label_name = MNIST_FILES[split]
    image_path = find_mnist_file(data_dir, image_name)
    label_path = find_mnist_file(data_dir, label_name)
    images = read_idx_images(image_path, MNIST_IMAGE_SHAPE)
    labels = read_idx_labels(label_path, n_classes=10)
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{image_path.name} in {image_path.parent} holds {images.shape[0]} images but "
            f"{label_path.name} in {label_path.parent} holds {labels.shape[0]} labels"
        )
    return IdxSplit(images, labels, (image_path, label_path))
