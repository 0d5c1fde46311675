"""The file-backed datasets on the real MNIST / CIFAR copies in ../shared/data (skipped where it is absent)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from qbench.contract.testing import context
from qbench_plugins.datasets.cifar10 import Cifar10
from qbench_plugins.datasets.cifar100 import Cifar100
from qbench_plugins.datasets.mnist import Mnist
from qbench_plugins.datasets.mnist_1v9 import Mnist1v9

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"

pytestmark = pytest.mark.skipif(
    not DATA.is_dir(), reason=f"no real data at {DATA} (a read-only copy of MNIST and CIFAR; unit tests use fixtures)"
)

#: md5 of each file, as published in the data folder's README (the MNIST ones are the official md5s)
MD5 = {
    "mnist/t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "mnist/t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    "mnist/train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "mnist/train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "cifar-10-batches-bin/data_batch_1.bin": "5dd7e06a14cb22eb9f671a540d1b7c25",
    "cifar-10-batches-bin/test_batch.bin": "803d5f7f4d78ea53de84dbe85f74fb6d",
    "cifar-100-subset/train_subset.bin": "9c9dec720b327b6c3e9fb1e94d865ac9",
}
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def load(cls, **options):
    """Load ``cls`` with ``options`` from the real data (the contract checks run on fixtures elsewhere)."""
    return cls.from_options(options).load(context(data_dir=DATA))


def assert_files_recorded(data, expected: set[str]) -> None:
    """The split names exactly ``expected`` and each digest is the file's SHA-256; each md5 is the published one."""
    assert set(data.files) == expected
    for relative, sha in data.files.items():
        content = (DATA / relative).read_bytes()
        assert sha == hashlib.sha256(content).hexdigest()
        assert hashlib.md5(content).hexdigest() == MD5[relative]


def assert_same(a, b) -> None:
    for name in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert a.files == b.files and a.notes == b.notes


@pytest.fixture(scope="module")
def mnist():
    return load(Mnist)


def test_mnist_full_split(mnist):
    assert mnist.x_train.shape == (60000, 1, 28, 28) and mnist.x_test.shape == (10000, 1, 28, 28)
    assert mnist.x_train.dtype == torch.float32
    assert mnist.y_train.bincount().tolist() == MNIST_TRAIN_COUNTS
    assert mnist.y_test.bincount().tolist() == MNIST_TEST_COUNTS
    assert mnist.y_train[:3].tolist() == [5, 0, 4] and mnist.y_test[:3].tolist() == [7, 2, 1]
    pixels = mnist.x_test * 255
    assert float(mnist.x_train.min()) == 0.0 and float(mnist.x_train.max()) == 1.0
    torch.testing.assert_close(pixels, pixels.round(), rtol=0, atol=1e-4)
    assert_files_recorded(mnist, {r for r in MD5 if r.startswith("mnist/")})


def test_mnist_stratified_subset():
    data = load(Mnist, n_train=1000, n_test=500)
    counts = data.y_train.bincount().numpy()
    np.testing.assert_allclose(counts, np.array(MNIST_TRAIN_COUNTS) / 60, atol=1)
    assert counts.sum() == 1000 and len(data.y_test) == 500
    assert_same(data, load(Mnist, n_train=1000, n_test=500))


def test_mnist_1v9_protocol():
    data = load(Mnist1v9)
    assert data.x_train.shape == (400, 16, 16) and data.x_test.shape == (1000, 16, 16)
    assert data.y_train.bincount().tolist() == [200, 200] and data.y_test.bincount().tolist() == [500, 500]
    assert float(data.x_train.min()) >= 0 and float(data.x_train.max()) <= 1
    assert float(data.x_test.max()) > 0.9  # strokes keep near-white pixels after antialiased resizing
    # a one covers fewer pixels than a nine
    ink = data.x_test.sum(dim=(1, 2))
    assert float(ink[data.y_test == 1].mean()) > 1.5 * float(ink[data.y_test == 0].mean())
    assert_files_recorded(data, {r for r in MD5 if r.startswith("mnist/")})
    assert_same(data, load(Mnist1v9))


def test_cifar10_partial_training_set():
    data = load(Cifar10)
    assert data.x_train.shape == (10000, 3, 32, 32) and data.x_test.shape == (10000, 3, 32, 32)
    assert data.y_train.bincount().tolist() == [1005, 974, 1032, 1016, 999, 937, 1030, 1001, 1025, 981]
    assert data.y_test.bincount().tolist() == [1000] * 10
    assert data.y_train[0] == 6 and data.y_test[0] == 3  # the well-known first images: a frog and a cat
    assert float(data.x_train.min()) == 0.0 and float(data.x_train.max()) == 1.0
    assert "data_batch_1.bin (1 of the 5 official batches, 10000 records)" in data.notes
    assert_files_recorded(data, {r for r in MD5 if r.startswith("cifar-10-batches-bin/")})
    assert_same(data, load(Cifar10))


def test_cifar100_subset_split():
    data = load(Cifar100)
    assert data.x_train.shape == (8000, 3, 32, 32) and data.x_test.shape == (2000, 3, 32, 32)
    assert data.y_train.bincount().tolist() == [80] * 100 and data.y_test.bincount().tolist() == [20] * 100
    assert data.notes.startswith(
        "CIFAR-100 test split = 20 images per class held out of the 10000-image training subset"
    )
    assert "no official test images" in data.notes
    assert_files_recorded(data, {"cifar-100-subset/train_subset.bin"})
    assert_same(data, load(Cifar100))
