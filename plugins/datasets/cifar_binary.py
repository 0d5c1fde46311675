"""Reader for Toronto's binary CIFAR files (the "binary version" of CIFAR-10 and CIFAR-100).

A CIFAR-10 record is 1 label byte then 3072 pixel bytes (1024 red, 1024 green, 1024 blue, each a row-major
32x32 plane); a CIFAR-100 record is a coarse-label byte, a fine-label byte, then the same 3072 bytes. A
file is a plain concatenation of records. Every check failure is a :class:`qbench.DataError` naming the
file and the folder it was read from.

CIFAR-10 lives in ``cifar-10-batches-bin/`` (``data_batch_1.bin`` .. ``data_batch_5.bin``, whichever are
present, and ``test_batch.bin``) or directly in the data directory. CIFAR-100 is ``train.bin`` and
``test.bin`` in ``cifar-100-binary/`` or in the data directory, or failing both the 10000-image training
subset ``cifar-100-subset/train_subset.bin``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qbench import DataError

IMAGE_BYTES = 3 * 32 * 32
CIFAR10_RECORD = 1 + IMAGE_BYTES
CIFAR100_RECORD = 2 + IMAGE_BYTES

CIFAR10_FOLDERS = ("cifar-10-batches-bin", ".")
CIFAR10_TRAIN = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
CIFAR10_TEST = "test_batch.bin"
CIFAR100_FOLDERS = ("cifar-100-binary", ".")
CIFAR100_SUBSET = Path("cifar-100-subset") / "train_subset.bin"


def _fail(path: Path, problem: str) -> DataError:
    return DataError(f"{path.name} in {path.parent}: {problem}")


def read_records(path: Path, record_size: int) -> np.ndarray:
    """The records of ``path`` as a ``(N, record_size)`` uint8 array; the length must be a whole multiple."""
    path = Path(path)
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise _fail(path, f"cannot be read ({exc.strerror or exc})") from None
    if raw.size == 0:
        raise _fail(path, "is empty")
    if raw.size % record_size:
        raise _fail(
            path, f"is {raw.size} bytes, not a whole number of {record_size}-byte records "
            f"({raw.size // record_size} records and {raw.size % record_size} bytes left over)"
        )
    return raw.reshape(-1, record_size)


def _check_labels(path: Path, labels: np.ndarray, n_classes: int, what: str) -> None:
    if int(labels.max()) >= n_classes:
        bad = int(np.argmax(labels >= n_classes))
        raise _fail(path, f"{what} {int(labels[bad])} of record {bad} is not a class below {n_classes}")


def _images(records: np.ndarray) -> np.ndarray:
    return records[:, -IMAGE_BYTES:].reshape(-1, 3, 32, 32)


def read_cifar10_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(images (N, 3, 32, 32) uint8, labels (N,) uint8)`` from one CIFAR-10 binary file."""
    records = read_records(path, CIFAR10_RECORD)
    labels = records[:, 0]
    _check_labels(Path(path), labels, 10, "label")
    return _images(records), labels.copy()


def read_cifar100_file(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(images (N, 3, 32, 32) uint8, coarse (N,) uint8, fine (N,) uint8)`` from one CIFAR-100 binary file."""
    records = read_records(path, CIFAR100_RECORD)
    coarse, fine = records[:, 0], records[:, 1]
    _check_labels(Path(path), coarse, 20, "coarse label")
    _check_labels(Path(path), fine, 100, "fine label")
    return _images(records), coarse.copy(), fine.copy()


def _require_dir(data_dir: Path | None, what: str, needed: str) -> Path:
    if data_dir is None:
        raise DataError(f"{what} needs a data directory: pass --data-dir or set QBENCH_DATA to a folder holding {needed}")
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"{what} files not found: data directory {data_dir} does not exist")
    return data_dir


@dataclass(frozen=True)
class Cifar10Files:
    """The CIFAR-10 files found: the training batches present (in order) and the test batch."""

    train: tuple[Path, ...]
    test: Path


def find_cifar10(data_dir: Path | None) -> Cifar10Files:
    """Locate CIFAR-10's binary files under ``data_dir`` (``cifar-10-batches-bin/`` or the directory itself).

    The first folder holding ``test_batch.bin`` and at least one ``data_batch_*.bin`` wins.
    """
    needed = "cifar-10-batches-bin/ with data_batch_1.bin .. data_batch_5.bin (any) and test_batch.bin"
    data_dir = _require_dir(data_dir, "CIFAR-10", needed)
    folders = [data_dir / sub for sub in CIFAR10_FOLDERS]
    for folder in folders:
        train = tuple(folder / name for name in CIFAR10_TRAIN if (folder / name).is_file())
        if train and (folder / CIFAR10_TEST).is_file():
            return Cifar10Files(train, folder / CIFAR10_TEST)
    looked = ", ".join(str(f) for f in folders)
    for folder in folders:
        has_train = any((folder / name).is_file() for name in CIFAR10_TRAIN)
        if has_train:
            raise DataError(f"{CIFAR10_TEST} not found in {folder}, which holds the CIFAR-10 training batches")
        if (folder / CIFAR10_TEST).is_file():
            raise DataError(f"data_batch_1.bin .. data_batch_5.bin: none found in {folder}, which holds {CIFAR10_TEST}")
    raise DataError(f"CIFAR-10 data_batch_*.bin and {CIFAR10_TEST} not found in data directory {data_dir} (looked in {looked})")


@dataclass(frozen=True)
class Cifar100Files:
    """The CIFAR-100 files found: ``train`` and ``test``, or the training subset alone (``test`` is None)."""

    train: Path
    test: Path | None


def find_cifar100(data_dir: Path | None) -> Cifar100Files:
    """Locate CIFAR-100: ``train.bin`` + ``test.bin`` (``cifar-100-binary/`` or the data directory itself),
    else ``cifar-100-subset/train_subset.bin``."""
    needed = f"cifar-100-binary/train.bin and test.bin, or {CIFAR100_SUBSET.as_posix()}"
    data_dir = _require_dir(data_dir, "CIFAR-100", needed)
    folders = [data_dir / sub for sub in CIFAR100_FOLDERS]
    for folder in folders:
        if (folder / "train.bin").is_file() and (folder / "test.bin").is_file():
            return Cifar100Files(folder / "train.bin", folder / "test.bin")
    subset = data_dir / CIFAR100_SUBSET
    if subset.is_file():
        return Cifar100Files(subset, None)
    looked = ", ".join(str(f) for f in folders)
    raise DataError(
        f"CIFAR-100 train.bin + test.bin not found in data directory {data_dir} (looked in {looked}), "
        f"nor {CIFAR100_SUBSET.name} in {subset.parent}"
    )
