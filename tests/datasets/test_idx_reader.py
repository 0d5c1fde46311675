"""The IDX reader and the two MNIST datasets on small synthetic IDX files written in the exact format."""

from __future__ import annotations

import gzip
import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from qbench import DataError
from qbench.errors import ConfigError
from qbench.contract.testing import check_dataset, context
from qbench_plugins.datasets import mnist, mnist_1v9
from qbench_plugins.datasets.idx import find_mnist_file, load_mnist_split, read_idx_images, read_idx_labels
from qbench_plugins.datasets.mnist import Mnist
from qbench_plugins.datasets.mnist_1v9 import Mnist1v9

N_TRAIN, N_TEST = 30, 20
NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    """An IDX file's bytes: big-endian magic (0x0800 | ndim unless given), dimensions, then uint8 data."""
    array = np.asarray(array, dtype=np.uint8)
    magic = 0x0800 | array.ndim if magic is None else magic
    return struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def synthetic_mnist() -> dict[str, np.ndarray]:
    """Small MNIST-shaped arrays: labels cycle through 0..9, pixels are seed-fixed random bytes."""
    rng = np.random.default_rng(1234)
    return {
        "train_images": rng.integers(0, 256, (N_TRAIN, 28, 28), dtype=np.uint8),
        "train_labels": (np.arange(N_TRAIN) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, (N_TEST, 28, 28), dtype=np.uint8),
        "test_labels": ((np.arange(N_TEST) * 3) % 10).astype(np.uint8),
    }


def write_mnist(folder: Path, arrays: dict[str, np.ndarray], gz: bool) -> dict[str, Path]:
    """Write the four files into ``folder`` (gzip-compressed when ``gz``); returns their paths by key."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for key, array in arrays.items():
        data = idx_bytes(array)
        path = folder / (NAMES[key] + (".gz" if gz else ""))
        path.write_bytes(gzip.compress(data) if gz else data)
        paths[key] = path
    return paths


@pytest.fixture
def arrays() -> dict[str, np.ndarray]:
    return synthetic_mnist()


@pytest.mark.parametrize("layout", ["MNIST/raw", "mnist", "."])
@pytest.mark.parametrize("gz", [True, False], ids=["gz", "plain"])
def test_reads_every_layout_and_compression(tmp_path, arrays, layout, gz):
    write_mnist(tmp_path / layout, arrays, gz)
    train = load_mnist_split(tmp_path, "train")
    test = load_mnist_split(tmp_path, "test")
    np.testing.assert_array_equal(train.images, arrays["train_images"])
    np.testing.assert_array_equal(train.labels, arrays["train_labels"])
    np.testing.assert_array_equal(test.images, arrays["test_images"])
    np.testing.assert_array_equal(test.labels, arrays["test_labels"])
    suffix = ".gz" if gz else ""
    assert train.paths == (
        tmp_path / layout / (NAMES["train_images"] + suffix), tmp_path / layout / (NAMES["train_labels"] + suffix)
    )


def test_torchvision_layout_wins_and_plain_before_gz(tmp_path, arrays):
    write_mnist(tmp_path, arrays, gz=True)
    write_mnist(tmp_path / "MNIST" / "raw", arrays, gz=True)
    write_mnist(tmp_path / "MNIST" / "raw", arrays, gz=False)
    assert find_mnist_file(tmp_path, NAMES["train_images"]) == tmp_path / "MNIST" / "raw" / NAMES["train_images"]


def test_gzip_is_recognised_by_content_not_name(tmp_path, arrays):
    path = tmp_path / "images"
    path.write_bytes(gzip.compress(idx_bytes(arrays["test_images"])))
    np.testing.assert_array_equal(read_idx_images(path, (28, 28)), arrays["test_images"])


def _corrupt_cases():
    """(id, key of the file to damage, damage(original bytes) -> new bytes)."""
    images = synthetic_mnist()["train_images"]
    labels = synthetic_mnist()["train_labels"]
    return [
        ("truncated", "train_images", lambda b: b[:-100], "truncated"),
        ("truncated-header", "train_images", lambda b: b[:10], "truncated inside its header"),
        ("trailing-bytes", "train_labels", lambda b: b + b"\0\0\0", "3 bytes after"),
        ("wrong-magic", "train_images", lambda b: struct.pack(">I", 0x12345678) + b[4:], "magic number 305419896"),
        ("labels-magic-for-images", "train_images", lambda b: idx_bytes(labels), "1 dimension, expected 3"),
        ("wrong-dimension-count", "train_labels", lambda b: idx_bytes(labels.reshape(3, 10)), "2 dimensions, expected 1"),
        ("wrong-image-size", "train_images", lambda b: idx_bytes(images[:, :27, :]), "27x28 images, expected 28x28"),
        ("zero-dimension", "train_images", lambda b: idx_bytes(np.zeros((0, 28, 28))), "empty dimension"),
        ("empty", "test_labels", lambda b: b"", "is empty"),
        ("short", "test_labels", lambda b: b"\0\0", "too short for an IDX header"),
        ("label-out-of-range", "train_labels", lambda b: idx_bytes(np.full(N_TRAIN, 10)), "label 10 at index 0"),
        ("count-mismatch", "train_labels", lambda b: idx_bytes(labels[:-1]), "holds 30 images but"),
        ("bad-gzip", "train_images", lambda b: gzip.compress(b)[:-20], "not a readable gzip file"),
    ]


@pytest.mark.parametrize(
    "key, damage, message", [c[1:] for c in _corrupt_cases()], ids=[c[0] for c in _corrupt_cases()]
)
def test_corrupt_files_raise_data_error_naming_file_and_folder(tmp_path, arrays, key, damage, message):
    paths = write_mnist(tmp_path / "mnist", arrays, gz=False)
    paths[key].write_bytes(damage(paths[key].read_bytes()))
    with pytest.raises(DataError) as info:
        Mnist().load(context(data_dir=tmp_path))
    text = str(info.value)
    assert message in text
    assert paths[key].name in text and str(tmp_path / "mnist") in text
    assert "\n" not in text


def test_missing_file_names_file_and_every_folder_looked_in(tmp_path, arrays):
    write_mnist(tmp_path / "mnist", arrays, gz=True)
    (tmp_path / "mnist" / (NAMES["test_labels"] + ".gz")).unlink()
    with pytest.raises(DataError) as info:
        Mnist1v9().load(context(data_dir=tmp_path))
    text = str(info.value)
    assert "t10k-labels-idx1-ubyte[.gz] not found" in text
    for folder in (tmp_path, tmp_path / "MNIST" / "raw", tmp_path / "mnist"):
        assert str(folder) in text


@pytest.mark.parametrize("cls", [Mnist, Mnist1v9])
def test_no_data_dir_says_how_to_pass_one(cls):
    with pytest.raises(DataError, match="pass --data-dir or set QBENCH_DATA") as info:
        cls().load(context(data_dir=None))
    assert "train-images-idx3-ubyte[.gz]" in str(info.value) and "MNIST/raw/" in str(info.value)


def test_nonexistent_data_dir(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        Mnist().load(context(data_dir=tmp_path / "nowhere"))


def test_mnist_values_shapes_and_provenance(tmp_path, arrays):
    paths = write_mnist(tmp_path / "MNIST" / "raw", arrays, gz=True)
    data = check_dataset(Mnist, context(data_dir=tmp_path))
    assert data.x_train.shape == (N_TRAIN, 1, 28, 28) and data.x_train.dtype == torch.float32
    assert data.x_test.shape == (N_TEST, 1, 28, 28)
    torch.testing.assert_close(data.x_train[:, 0] * 255, torch.from_numpy(arrays["train_images"]).float())
    assert data.y_train.tolist() == arrays["train_labels"].tolist()
    assert data.n_classes == 10 and data.domain.to_dict() == {"kind": "box", "low": 0.0, "high": 1.0}
    assert data.files == {
        f"MNIST/raw/{p.name}": hashlib.sha256(p.read_bytes()).hexdigest() for p in paths.values()
    }


def test_mnist_stratified_subset_is_seed_fixed(tmp_path, arrays):
    write_mnist(tmp_path, arrays, gz=False)
    ctx = context(data_dir=tmp_path)
    a = Mnist.from_options({"n_train": "20", "n_test": "10"}).load(ctx)
    b = Mnist.from_options({"n_train": "20", "n_test": "10"}).load(context(data_dir=tmp_path, seed=99))
    other = Mnist.from_options({"n_train": "20", "n_test": "10", "split_seed": "1"}).load(ctx)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.x_train, other.x_train)
    assert a.y_train.bincount(minlength=10).tolist() == [2] * 10  # 3 per class available, proportional 2 each
    assert a.y_test.bincount(minlength=10).tolist() == [1] * 10
    assert "stratified subsets, split_seed=0" in a.notes


def test_mnist_subset_larger_than_the_files(tmp_path, arrays):
    write_mnist(tmp_path, arrays, gz=False)
    with pytest.raises(DataError, match=r"n_train=31, but train-labels-idx1-ubyte in .* holds only 30 examples"):
        Mnist.from_options({"n_train": 31}).load(context(data_dir=tmp_path))


def test_mnist_1v9_on_synthetic_files(tmp_path, arrays):
    write_mnist(tmp_path / "mnist", arrays, gz=True)
    options = {"n_train": 6, "n_test": 4}
    data = Mnist1v9.from_options(options).load(context(data_dir=tmp_path))
    again = Mnist1v9.from_options(options).load(context(data_dir=tmp_path, seed=5))
    assert data.x_train.shape == (6, 16, 16) and data.x_test.shape == (4, 16, 16)
    assert data.y_train.bincount().tolist() == [3, 3] and data.y_test.bincount().tolist() == [2, 2]
    assert torch.equal(data.x_train, again.x_train) and torch.equal(data.x_test, again.x_test)
    assert 0 <= float(data.x_train.min()) and float(data.x_train.max()) <= 1
    assert set(data.files) == {f"mnist/{name}.gz" for name in NAMES.values()}
    # the 3 ones and 3 nines of the synthetic train file are exactly the training set
    ones_and_nines = np.flatnonzero(np.isin(arrays["train_labels"], (1, 9)))
    expected = mnist_1v9.resize_images(arrays["train_images"][ones_and_nines], 16)
    torch.testing.assert_close(data.x_train, expected)
    assert data.y_train.tolist() == (arrays["train_labels"][ones_and_nines] == 9).astype(int).tolist()


def test_mnist_1v9_asks_for_more_than_exist(tmp_path, arrays):
    write_mnist(tmp_path, arrays, gz=True)
    with pytest.raises(DataError, match="n_test=8 needs 4 of each digit, but t10k-labels-idx1-ubyte.gz in .* holds"):
        Mnist1v9.from_options({"n_train": 2, "n_test": 8}).load(context(data_dir=tmp_path))


def test_resize_keeps_a_constant_image_constant():
    flat = np.full((2, 28, 28), 255, dtype=np.uint8)
    out = mnist_1v9.resize_images(flat, 16)
    assert out.shape == (2, 16, 16)
    torch.testing.assert_close(out, torch.ones(2, 16, 16))


@pytest.mark.parametrize(
    "cls, options",
    [(Mnist, {"n_train": 0}), (Mnist, {"n_test": -5}), (Mnist1v9, {"n_train": 3}),
     (Mnist1v9, {"n_test": 0}), (Mnist1v9, {"size": 29}), (Mnist1v9, {"size": 0})],
)
def test_bad_config_values(cls, options):
    with pytest.raises(ConfigError):
        cls.from_options(options)


def test_modules_register_their_dataset():
    for module, cls in ((mnist, Mnist), (mnist_1v9, Mnist1v9)):
        registered = []
        module.register_datasets(registered.append)
        assert registered == [cls]


def test_read_labels_directly(tmp_path):
    path = tmp_path / "labels"
    path.write_bytes(idx_bytes(np.array([3, 1, 4, 1, 5])))
    assert read_idx_labels(path, n_classes=10).tolist() == [3, 1, 4, 1, 5]
