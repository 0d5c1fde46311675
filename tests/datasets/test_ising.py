"""The ising dataset: exact ground states of the 4-spin transverse-field Ising chain."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qbench.errors import ConfigError
from qbench.contract.testing import check_dataset, context
from qbench_plugins.datasets import ising
from qbench_plugins.datasets.ising import Ising, field_values, ground_state, ising_hamiltonian


@pytest.fixture(scope="module")
def data():
    return check_dataset(Ising, context())


def test_shapes_labels_and_domain(data):
    assert data.x_train.shape == (599, 16) and data.x_test.shape == (400, 16)
    assert data.x_train.dtype == torch.float32 and data.domain.kind == "sphere"
    assert data.y_train.bincount().tolist() == [300, 299] and data.y_test.bincount().tolist() == [200, 200]
    assert data.files == {} and "J_x = 1 labelled 0" in data.notes


def test_every_state_is_a_unit_vector_with_positive_amplitudes(data):
    x = torch.cat([data.x_train, data.x_test]).double()
    assert (x.norm(dim=1) - 1).abs().max() < 1e-6
    assert bool((x > 0).all())  # Perron-Frobenius: the unique ground state has one sign


def test_the_999_couplings():
    fields = field_values(999)
    assert fields.size == 999 and fields[0] == 0.002 and fields[-1] == 1.998
    np.testing.assert_allclose(np.diff(fields), 0.002, rtol=1e-9)
    assert fields[499] == 1.0  # the odd, symmetric grid holds the critical point exactly


def test_labels_follow_the_coupling(data):
    states = np.stack([ground_state(4, j)[1] for j in field_values(999)]).astype(np.float32)
    labels = (field_values(999) > 1).astype(np.int64)
    for x, y in ((data.x_train, data.y_train), (data.x_test, data.y_test)):
        rows = [int(np.flatnonzero((states == row).all(axis=1))[0]) for row in x.numpy()]
        assert y.tolist() == labels[rows].tolist()
    assert labels.sum() == 499 and labels[499] == 0


@pytest.mark.parametrize("j_x", [0.002, 0.5, 0.998, 1.0, 1.002, 1.5, 1.998])
def test_it_is_the_ground_state(j_x):
    h = ising_hamiltonian(4, j_x)
    energy, psi = ground_state(4, j_x)
    lowest = np.linalg.eigvalsh(h)[0]
    assert abs(psi @ h @ psi - lowest) < 1e-12 and abs(energy - lowest) < 1e-12
    assert np.linalg.norm(h @ psi - energy * psi) < 1e-8
    np.testing.assert_array_equal(psi, psi[::-1])  # spin-flip even: flipping every spin reverses the index


def test_hamiltonian_matrix_elements():
    h = ising_hamiltonian(4, 0.7)
    assert h[0, 0] == -3 and h[0b0101, 0b0101] == 3  # all aligned: 3 satisfied bonds; alternating: 3 broken
    assert h[0, 0b1000] == -0.7 and h[0, 0b0011] == 0  # one flip couples, two flips do not
    np.testing.assert_array_equal(h, h.T)


def test_limits_ghz_and_uniform():
    _, small = ground_state(4, 0.002)
    expected = np.zeros(16)
    expected[[0, 15]] = 2**-0.5
    np.testing.assert_allclose(small, expected, atol=1e-2)
    _, large = ground_state(4, 100.0)
    np.testing.assert_allclose(large, np.full(16, 0.25), atol=1e-2)


def test_the_gap_below_1e_10_is_only_at_the_smallest_coupling():
    gaps = np.array([np.diff(np.linalg.eigvalsh(ising_hamiltonian(4, j))[:2])[0] for j in field_values(999)])
    assert np.flatnonzero(gaps < 1e-10).tolist() == [0]
    assert gaps[0] == pytest.approx(2 * 0.002**4, rel=1e-3)  # the near-degeneracy the even sector avoids


def test_deterministic_and_independent_of_the_cell_seed(data):
    other = Ising().load(context(seed=12345))
    assert torch.equal(data.x_train, other.x_train) and torch.equal(data.y_test, other.y_test)
    reseeded = Ising.from_options({"split_seed": 1}).load(context())
    assert not torch.equal(data.x_train, reseeded.x_train)


def test_config_options():
    small = Ising.from_options({"n_spins": "3", "n_points": "20"}).load(context())
    assert small.x_train.shape[1] == 8 and len(small.y_train) + len(small.y_test) == 20
    assert "J_x = 1 labelled 0" not in small.notes
    for bad in ({"n_spins": 1}, {"n_points": 5}, {"test_fraction": 1.0}):
        with pytest.raises(ConfigError):
            Ising.from_options(bad)


def test_module_registers_the_dataset():
    registered = []
    ising.register_datasets(registered.append)
    assert registered == [Ising]
