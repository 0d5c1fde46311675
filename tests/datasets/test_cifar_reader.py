"""The CIFAR binary reader and the cifar10 / cifar100 datasets on small synthetic files in Toronto's format."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from qbench import DataError
from qbench.errors import ConfigError
from qbench.contract.testing import check_dataset, context
from qbench_plugins.datasets import cifar10, cifar100
from qbench_plugins.datasets.cifar_binary import read_cifar10_file, read_cifar100_file
from qbench_plugins.datasets.cifar10 import Cifar10
from qbench_plugins.datasets.cifar100 import Cifar100


def cifar_bytes(images: np.ndarray, *label_columns: np.ndarray) -> bytes:
    """Records of label bytes (1 for CIFAR-10, coarse + fine for CIFAR-100) followed by 3072 pixel bytes."""
    columns = [np.asarray(c, dtype=np.uint8).reshape(-1, 1) for c in label_columns]
    return np.hstack([*columns, images.reshape(len(images), -1).astype(np.uint8)]).tobytes()


def random_images(n: int, seed: int) -> np.ndarray:
    """``(n, 3, 32, 32)`` seed-fixed random bytes."""
    return np.random.default_rng(seed).integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)


def write_cifar10(folder: Path, batches: dict[str, int]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write CIFAR-10 files named as in ``batches`` (name -> record count); labels cycle through 0..9."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for seed, (name, n) in enumerate(batches.items()):
        images, labels = random_images(n, seed), (np.arange(n) + seed) % 10
        (folder / name).write_bytes(cifar_bytes(images, labels))
        written[name] = (images, labels)
    return written


def write_cifar100(path: Path, per_class: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A CIFAR-100 file with ``per_class`` images of each fine class, sorted by fine label (like the subset)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fine = np.repeat(np.arange(100), per_class)
    images = random_images(fine.size, seed)
    path.write_bytes(cifar_bytes(images, fine // 5, fine))
    return images, fine


def test_cifar10_record_layout(tmp_path):
    images = random_images(3, 7)
    path = tmp_path / "batch.bin"
    path.write_bytes(cifar_bytes(images, [4, 0, 9]))
    read_images, labels = read_cifar10_file(path)
    assert labels.tolist() == [4, 0, 9]
    np.testing.assert_array_equal(read_images, images)
    # channel planes in order R, G, B, each row-major: byte 1 + 1024 + 32 * 2 + 5 of record 0 is G[2, 5]
    assert path.read_bytes()[1 + 1024 + 32 * 2 + 5] == images[0, 1, 2, 5]


def test_cifar100_record_layout(tmp_path):
    images, fine = write_cifar100(tmp_path / "train.bin", per_class=1)
    read_images, coarse, read_fine = read_cifar100_file(tmp_path / "train.bin")
    np.testing.assert_array_equal(read_images, images)
    assert read_fine.tolist() == list(range(100)) and coarse.tolist() == [f // 5 for f in range(100)]


@pytest.mark.parametrize("layout", ["cifar-10-batches-bin", "."])
def test_cifar10_dataset_reads_the_batches_present(tmp_path, layout):
    written = write_cifar10(tmp_path / layout, {"data_batch_1.bin": 12, "data_batch_3.bin": 8, "test_batch.bin": 10})
    data = check_dataset(Cifar10, context(data_dir=tmp_path))
    assert data.x_train.shape == (20, 3, 32, 32) and data.x_test.shape == (10, 3, 32, 32)
    expected = np.concatenate([written["data_batch_1.bin"][0], written["data_batch_3.bin"][0]])
    torch.testing.assert_close(data.x_train * 255, torch.from_numpy(expected).float())
    assert data.y_test.tolist() == ((np.arange(10) + 2) % 10).tolist()
    assert "data_batch_1.bin, data_batch_3.bin (2 of the 5 official batches, 20 records)" in data.notes
    prefix = "" if layout == "." else f"{layout}/"
    assert data.files == {
        prefix + name: hashlib.sha256((tmp_path / layout / name).read_bytes()).hexdigest() for name in written
    }


def test_cifar10_subsets_are_stratified_and_seed_fixed(tmp_path):
    write_cifar10(tmp_path / "cifar-10-batches-bin", {"data_batch_1.bin": 40, "test_batch.bin": 30})
    options = {"n_train": 20, "n_test": 10}
    a = Cifar10.from_options(options).load(context(data_dir=tmp_path))
    b = Cifar10.from_options(options).load(context(data_dir=tmp_path, seed=3))
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.x_test, b.x_test)
    assert a.y_train.bincount().tolist() == [2] * 10 and a.y_test.bincount().tolist() == [1] * 10
    with pytest.raises(DataError, match=r"n_test=31, but test_batch.bin in .* holds only 30 examples"):
        Cifar10.from_options({"n_test": 31}).load(context(data_dir=tmp_path))


def test_cifar100_subset_is_split_per_class_and_says_so(tmp_path):
    images, fine = write_cifar100(tmp_path / "cifar-100-subset" / "train_subset.bin", per_class=5)
    data = Cifar100.from_options({"subset_test_per_class": 2}).load(context(data_dir=tmp_path))
    assert data.y_train.bincount().tolist() == [3] * 100 and data.y_test.bincount().tolist() == [2] * 100
    assert data.notes.startswith(
        "CIFAR-100 test split = 2 images per class held out of the 500-image training subset train_subset.bin"
    )
    assert "no official test images" in data.notes
    # train and test are disjoint and together are the whole file
    all_rows = torch.cat([data.x_train, data.x_test]).reshape(500, -1).mul(255).round().to(torch.uint8).numpy()
    assert sorted(map(bytes, all_rows)) == sorted(map(bytes, images.reshape(500, -1)))
    assert list(data.files) == ["cifar-100-subset/train_subset.bin"]
    again = Cifar100.from_options({"subset_test_per_class": 2}).load(context(data_dir=tmp_path, seed=8))
    assert torch.equal(data.x_test, again.x_test)


def test_cifar100_default_holds_out_20_of_each_class(tmp_path):
    write_cifar100(tmp_path / "cifar-100-subset" / "train_subset.bin", per_class=25)
    data = check_dataset(Cifar100, context(data_dir=tmp_path))
    assert data.y_train.bincount().tolist() == [5] * 100 and data.y_test.bincount().tolist() == [20] * 100
    with pytest.raises(DataError, match="subset_test_per_class=25 leaves no training images"):
        Cifar100.from_options({"subset_test_per_class": 25}).load(context(data_dir=tmp_path))


@pytest.mark.parametrize("layout", ["cifar-100-binary", "."])
def test_cifar100_official_files_win_over_the_subset(tmp_path, layout):
    write_cifar100(tmp_path / "cifar-100-subset" / "train_subset.bin", per_class=2)
    write_cifar100(tmp_path / layout / "train.bin", per_class=3, seed=1)
    test_images, _ = write_cifar100(tmp_path / layout / "test.bin", per_class=1, seed=2)
    data = Cifar100().load(context(data_dir=tmp_path))
    assert data.x_train.shape == (300, 3, 32, 32) and data.x_test.shape == (100, 3, 32, 32)
    torch.testing.assert_close(data.x_test * 255, torch.from_numpy(test_images).float())
    assert data.notes.startswith("CIFAR-100 official split")
    prefix = "" if layout == "." else f"{layout}/"
    assert set(data.files) == {f"{prefix}train.bin", f"{prefix}test.bin"}


def _corrupt_cases():
    """(id, dataset, file (relative to the data dir), bytes or None to leave it out, expected message)."""
    ten = cifar_bytes(random_images(4, 0), [1, 2, 3, 4])
    hundred = cifar_bytes(random_images(4, 0), [1, 2, 3, 4], [5, 10, 15, 20])
    return [
        ("cifar10-wrong-record-size", Cifar10, "cifar-10-batches-bin/data_batch_1.bin", ten[:-1],
         "not a whole number of 3073-byte records"),
        ("cifar10-cifar100-records", Cifar10, "cifar-10-batches-bin/test_batch.bin", hundred,
         "not a whole number of 3073-byte records"),
        ("cifar10-empty", Cifar10, "cifar-10-batches-bin/test_batch.bin", b"", "is empty"),
        ("cifar10-label-out-of-range", Cifar10, "cifar-10-batches-bin/data_batch_1.bin",
         cifar_bytes(random_images(2, 0), [3, 12]), "label 12 of record 1 is not a class below 10"),
        ("cifar10-missing-test", Cifar10, "cifar-10-batches-bin/test_batch.bin", None, "test_batch.bin not found"),
        ("cifar10-missing-train", Cifar10, "cifar-10-batches-bin/data_batch_1.bin", None,
         "data_batch_1.bin .. data_batch_5.bin: none found"),
        ("cifar100-wrong-record-size", Cifar100, "cifar-100-subset/train_subset.bin", ten,
         "not a whole number of 3074-byte records"),
        ("cifar100-empty", Cifar100, "cifar-100-subset/train_subset.bin", b"", "is empty"),
        ("cifar100-fine-out-of-range", Cifar100, "cifar-100-subset/train_subset.bin",
         cifar_bytes(random_images(1, 0), [0], [100]), "fine label 100 of record 0"),
        ("cifar100-missing", Cifar100, "cifar-100-subset/train_subset.bin", None, "train_subset.bin in"),
    ]


@pytest.mark.parametrize(
    "cls, relative, content, message", [c[1:] for c in _corrupt_cases()], ids=[c[0] for c in _corrupt_cases()]
)
def test_corrupt_or_missing_files_raise_data_error(tmp_path, cls, relative, content, message):
    write_cifar10(tmp_path / "cifar-10-batches-bin", {"data_batch_1.bin": 3, "test_batch.bin": 3})
    write_cifar100(tmp_path / "cifar-100-subset" / "train_subset.bin", per_class=1)
    path = tmp_path / relative
    if content is None:
        path.unlink()
    else:
        path.write_bytes(content)
    with pytest.raises(DataError) as info:
        cls().load(context(data_dir=tmp_path))
    text = str(info.value)
    assert message in text and path.name in text and str(path.parent) in text
    assert "\n" not in text


@pytest.mark.parametrize("cls", [Cifar10, Cifar100])
def test_no_data_dir_says_how_to_pass_one(cls):
    with pytest.raises(DataError, match="pass --data-dir or set QBENCH_DATA"):
        cls().load(context(data_dir=None))


@pytest.mark.parametrize(
    "cls, options",
    [(Cifar10, {"n_train": 0}), (Cifar10, {"n_test": -1}), (Cifar100, {"n_train": 0}),
     (Cifar100, {"subset_test_per_class": 0})],
)
def test_bad_config_values(cls, options):
    with pytest.raises(ConfigError):
        cls.from_options(options)


def test_modules_register_their_dataset():
    for module, cls in ((cifar10, Cifar10), (cifar100, Cifar100)):
        registered = []
        module.register_datasets(registered.append)
        assert registered == [cls]
