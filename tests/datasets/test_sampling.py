"""Seed-fixed stratified, balanced and held-out selections of examples."""

from __future__ import annotations

import numpy as np
import pytest

from qbench import DataError
from qbench_plugins.datasets.sampling import hold_out_per_class, optional_subset, per_class_indices, stratified_indices

LABELS = np.array([0] * 50 + [1] * 30 + [2] * 20)


def test_stratified_follows_the_class_proportions():
    idx = stratified_indices(LABELS, 10, seed=0)
    assert np.bincount(LABELS[idx]).tolist() == [5, 3, 2]
    assert np.all(np.diff(idx) > 0)


def test_stratified_rounds_by_largest_remainder():
    # exact shares of 7 are 3.5, 2.1, 1.4: floors 3, 2, 1 and the leftover goes to class 0
    assert np.bincount(LABELS[stratified_indices(LABELS, 7, seed=0)]).tolist() == [4, 2, 1]


def test_stratified_whole_set_and_bad_sizes():
    np.testing.assert_array_equal(stratified_indices(LABELS, 100, seed=5), np.arange(100))
    for n in (0, 101):
        with pytest.raises(ValueError):
            stratified_indices(LABELS, n, seed=0)


def test_selections_depend_only_on_the_seed():
    a, b = stratified_indices(LABELS, 10, seed=1), stratified_indices(LABELS, 10, seed=1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, stratified_indices(LABELS, 10, seed=2))


def test_per_class_quota_too_large():
    with pytest.raises(ValueError, match="class 2 has 20 examples, 21 requested"):
        per_class_indices(LABELS, {0: 1, 2: 21}, seed=0)


def test_hold_out_partitions_every_class():
    kept, held = hold_out_per_class(LABELS, 4, seed=0)
    assert np.bincount(LABELS[held]).tolist() == [4, 4, 4]
    assert np.bincount(LABELS[kept]).tolist() == [46, 26, 16]
    np.testing.assert_array_equal(np.sort(np.concatenate([kept, held])), np.arange(100))


def test_optional_subset():
    np.testing.assert_array_equal(optional_subset(LABELS, None, 0, "n_train", "f"), np.arange(100))
    assert optional_subset(LABELS, 10, 0, "n_train", "f").size == 10
    with pytest.raises(DataError, match="n_test=200, but labels.bin in /d holds only 100 examples"):
        optional_subset(LABELS, 200, 0, "n_test", "labels.bin in /d")
