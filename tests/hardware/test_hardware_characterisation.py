"""The Aer characterisation of ibm_nairobi, checked against direct Aer simulations (reduced grid and shots)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from qiskit import QuantumCircuit, transpile
from qiskit.quantum_info import SparsePauliOp, Statevector
from qiskit_aer import AerSimulator

from qbench.errors import UsageError
from qbench.hardware import backend_topology, characterise, encoding_circuit, load_backend, make_grid

QUBITS = (0, 1)
KS = (2, 8)


@pytest.fixture(scope="module")
def backend():
    return load_backend("ibm_nairobi")


@pytest.fixture(scope="module")
def small(backend):
    """Qubits 0 and 1 and their crosstalk pairs, 5 values, 512 shots x 8 batches (a few seconds)."""
    return characterise(backend, grid=5, shots=512, repeats=8, ks=(0, *KS), qubits=QUBITS, seed=7)


def _direct_mean(backend, qubit: int, value: float, shots: int, seed: int) -> float:
    """Mean read-back of RY(arccos v) on ``qubit`` from an independent Aer run (no scheduling, own layout)."""
    circuit = QuantumCircuit(1, 1)
    circuit.ry(math.acos(value), 0)
    circuit.measure(0, 0)
    compiled = transpile(circuit, backend, initial_layout=[qubit], optimization_level=0)
    counts = AerSimulator.from_backend(backend).run(compiled, shots=shots, seed_simulator=seed).result().get_counts()
    return (counts.get("0", 0) - counts.get("1", 0)) / shots


def test_shapes_and_metadata(small):
    assert small.backend == "ibm_nairobi" and small.n_qubits == 7
    assert small.qubits == QUBITS and small.ks == KS  # k=0 is the intrinsic circuit, not stored twice
    assert small.grid.tolist() == [-1.0, -0.5, 0.0, 0.5, 1.0]
    assert small.pairs == ((0, 1, 1), (0, 2, 2), (0, 3, 2), (1, 0, 1), (1, 2, 1), (1, 3, 1), (1, 5, 2))
    assert small.intrinsic_bias.shape == (2, 5) and small.crosstalk_sd.shape == (7, 2, 5)
    assert set(small.versions) == {"qiskit", "qiskit-aer", "qiskit-ibm-runtime"}
    assert small.fingerprint and small.key and small.seconds > 0


@pytest.mark.parametrize("qubit", QUBITS)
@pytest.mark.parametrize("value", [-0.8, -0.3, 0.0, 0.5, 0.9])  # on and between grid points
def test_matches_direct_aer_simulation(backend, small, qubit, value):
    shots = 8192
    direct = _direct_mean(backend, qubit, value, shots, seed=11)
    bias, sd = small.curve(qubit)
    predicted = value + float(np.interp(value, small.grid, bias))
    se_direct = math.sqrt(max(1.0 - direct**2, 1e-4) / shots)
    se_char = float(np.interp(value, small.grid, sd)) / math.sqrt(small.repeats)
    assert abs(direct - predicted) < 3 * math.hypot(se_direct, se_char)


def test_intrinsic_noise_is_readout_like(small):
    """Readout error pulls |Z| = 1 inwards; the spread is the binomial shot noise of 512 shots."""
    for i, _ in enumerate(small.qubits):
        bias, sd = small.intrinsic_bias[i], small.intrinsic_sd[i]
        assert bias[0] > 0.01 and bias[-1] < -0.01
        mean = small.grid + bias
        binomial = np.sqrt(np.clip(1 - mean**2, 0, None) / small.shots)
        assert 0.6 < sd[1:-1].mean() / binomial[1:-1].mean() < 1.4
        assert sd[2] > sd[0] and sd[2] > sd[-1]  # largest at v = 0, where p1 = 1/2


def test_zero_pairs_is_the_intrinsic_circuit(small):
    topology = small.topology
    for target, neighbour, _ in small.pairs:
        plain = encoding_circuit(7, target, 0.3)
        assert encoding_circuit(7, target, 0.3, neighbour=neighbour, pairs=0, topology=topology) == plain
        bias, sd = small.curve(target, neighbour, 0)
        np.testing.assert_array_equal(bias, small.curve(target)[0])
        np.testing.assert_array_equal(sd, small.curve(target)[1])


@pytest.mark.parametrize("neighbour", [1, 2])  # native CX, and the bridge through qubit 1
def test_cnot_pairs_are_identity_without_noise(backend, neighbour):
    topology = backend_topology(backend)
    z0 = SparsePauliOp.from_sparse_list([("Z", [0], 1.0)], num_qubits=7)
    for value in (-0.7, 0.2, 1.0):
        circuit = encoding_circuit(7, 0, math.acos(value), neighbour=neighbour, pairs=3, topology=topology)
        state = Statevector(circuit.remove_final_measurements(inplace=False))
        plain = Statevector(encoding_circuit(7, 0, math.acos(value)).remove_final_measurements(inplace=False))
        assert state.equiv(plain)
        assert state.expectation_value(z0).real == pytest.approx(value, abs=1e-9)
    counts = circuit.count_ops()
    assert counts["cx"] == 6 * (1 if neighbour == 1 else 4)


def test_crosstalk_increases_the_error(small):
    """More CNOT pairs, more error: mean |bias| grows with k and exceeds the intrinsic one."""
    targets = [small.qubits.index(t) for t, _, _ in small.pairs]
    intrinsic = np.abs(small.intrinsic_bias[targets]).mean()
    by_k = [np.abs(small.crosstalk_bias[:, kk]).mean() for kk in range(len(small.ks))]
    assert intrinsic < by_k[0] < by_k[1]
    # the error is a contraction towards |0> (relaxation) and towards 0 (depolarising): worst at v = -1
    assert np.all(small.crosstalk_bias[:, -1, 0] > small.intrinsic_bias[targets, 0])
    summary = small.summary()
    assert summary["crosstalk_by_k"]["8"]["mean_abs_bias"] > summary["crosstalk_by_k"]["0"]["mean_abs_bias"]


def test_same_arguments_same_numbers(backend, small):
    again = characterise(backend, grid=5, shots=512, repeats=8, ks=KS, qubits=QUBITS, seed=7, threads=1)
    assert again.key == small.key
    np.testing.assert_array_equal(again.intrinsic_bias, small.intrinsic_bias)
    np.testing.assert_array_equal(again.crosstalk_sd, small.crosstalk_sd)


def test_bad_arguments_are_usage_errors(backend):
    with pytest.raises(UsageError, match="did you mean"):
        characterise("nairobii", grid=3)
    with pytest.raises(UsageError, match="grid"):
        characterise(backend, grid=[0.5, 0.1])
    with pytest.raises(UsageError, match="max_hops"):
        characterise(backend, max_hops=3)
    with pytest.raises(UsageError, match="qubits"):
        characterise(backend, qubits=[9])
    assert make_grid(3).tolist() == [-1.0, 0.0, 1.0]
