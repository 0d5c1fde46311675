"""digits-1v9: scikit-learn's bundled digits, 1 vs 9, needing no data files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from qbench import DataError
from qbench.errors import ConfigError
from qbench.contract.testing import check_dataset, context
from qbench_plugins.datasets import digits_1v9
from qbench_plugins.datasets.digits_1v9 import Digits1v9, upsample


@pytest.fixture(scope="module")
def data():
    return check_dataset(Digits1v9, context(data_dir=None))


def test_needs_no_files_and_has_the_documented_split(data):
    assert data.files == {}
    assert data.x_train.shape == (240, 16, 16) and data.x_test.shape == (122, 16, 16)
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    assert data.y_train.bincount().tolist() == [120, 120] and data.y_test.bincount().tolist() == [62, 60]
    assert "62 ones, 60 nines" in data.notes


def test_pixels_and_labels_are_the_bundle_upsampled(data):
    x = torch.cat([data.x_train, data.x_test])
    y = torch.cat([data.y_train, data.y_test])
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    bundle = load_digits()
    keep = np.isin(bundle.target, (1, 9))
    expected = upsample(bundle.images[keep], 16).reshape(362, -1).numpy()
    digit_of = {}
    for row, digit in zip(map(bytes, expected), bundle.target[keep]):
        assert digit_of.setdefault(row, digit) == digit  # no image is both a one and a nine
    # every example is one bundle image upsampled, each used once, label 0 = digit 1 and 1 = digit 9
    rows = list(map(bytes, x.reshape(362, -1).numpy()))
    assert sorted(rows) == sorted(map(bytes, expected))
    assert [digit_of[r] for r in rows] == [9 if label else 1 for label in y.tolist()]


def test_upsampling_keeps_a_constant_image_and_the_range():
    out = upsample(np.full((1, 8, 8), 16.0), 16)
    torch.testing.assert_close(out, torch.ones(1, 16, 16))
    assert upsample(np.zeros((2, 8, 8)), 4).shape == (2, 4, 4)


def test_deterministic_and_seed_fixed(data):
    again = Digits1v9().load(context(seed=77))
    assert torch.equal(data.x_train, again.x_train) and torch.equal(data.y_test, again.y_test)
    other = Digits1v9.from_options({"split_seed": 3}).load(context())
    assert not torch.equal(data.x_train, other.x_train)


def test_sizes():
    with pytest.raises(DataError, match="182 ones and 180 nines"):
        Digits1v9.from_options({"n_train": 360}).load(context())
    assert len(Digits1v9.from_options({"n_train": 358}).load(context()).y_test) == 4
    for bad in ({"n_train": 7}, {"n_train": 0}, {"size": 0}):
        with pytest.raises(ConfigError):
            Digits1v9.from_options(bad)


def test_module_registers_the_dataset():
    registered = []
    digits_1v9.register_datasets(registered.append)
    assert registered == [Digits1v9]
