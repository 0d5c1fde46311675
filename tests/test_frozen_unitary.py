"""The cached layer unitary of a circuit classifier during attacks (issue 17): exact, and only where exact."""

from __future__ import annotations

import json

import pytest
import torch

from qbench.contract.circuit_model import reusing_unitaries
from qbench_plugins.defenses.noise_layer import NoiseLayer
from qbench_plugins.models.qcnn import QCNNConfig, QuantumCNN
from qbench_plugins.models.qnn import LayeredQNN, QNNConfig


def frozen(model: torch.nn.Module) -> torch.nn.Module:
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def probabilities_and_gradient(model, x):
    x = x.clone().requires_grad_()
    probs = model.class_probabilities(x)
    (grad,) = torch.autograd.grad((probs[:, 0] * torch.arange(1, len(x) + 1)).sum(), x)
    return probs.detach(), grad


CASES = [
    ("amplitude qnn", lambda g: LayeredQNN(5, 2, QNNConfig(encoding="amplitude", n_layers=4, dtype="float64"), g), 5),
    ("angle qnn", lambda g: LayeredQNN(3, 4, QNNConfig(encoding="angle", n_layers=3, dtype="float64"), g), 3),
    ("amplitude qcnn", lambda g: QuantumCNN(16, 2, QCNNConfig(encoding="amplitude"), g).double(), 16),
]


@pytest.mark.parametrize("name,build,features", CASES, ids=[c[0] for c in CASES])
def test_the_cached_unitary_equals_the_engine(name, build, features):
    model = frozen(build(torch.Generator().manual_seed(0)))
    x = torch.rand(7, features, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    x[3] = 0  # the all-zero input (encoded as |0...0>) takes the same path
    engine = probabilities_and_gradient(model, x)
    with reusing_unitaries(model):
        cached = probabilities_and_gradient(model, x)
        assert model._unitary is not None
    assert torch.allclose(cached[0], engine[0], atol=1e-12, rtol=0)
    assert torch.allclose(cached[1], engine[1], atol=1e-10, rtol=0)
    assert not model.reuse_unitary  # restored after the block


def test_a_weight_update_rebuilds_the_unitary():
    model = frozen(LayeredQNN(4, 2, QNNConfig(encoding="amplitude", n_layers=2, dtype="float64"),
                              torch.Generator().manual_seed(0)))
    x = torch.rand(5, 4, dtype=torch.float64)
    with reusing_unitaries(model):
        before = model.class_probabilities(x)
        first = model._unitary[1]
        assert model.class_probabilities(x) is not None and model._unitary[1] is first  # reused
        with torch.no_grad():
            model.weights.add_(0.3)
        after = model.class_probabilities(x)
        assert model._unitary[1] is not first
    model.reuse_unitary = False
    assert torch.allclose(after, model.class_probabilities(x), atol=1e-12)
    assert not torch.allclose(before, after, atol=1e-3)


def test_not_used_where_it_would_not_be_exact():
    g = torch.Generator().manual_seed(0)
    model = LayeredQNN(4, 2, QNNConfig(encoding="amplitude", n_layers=2, dtype="float64"), g)
    with reusing_unitaries(model):
        assert model.frozen_unitary() is None  # trainable weights need the engine's weight gradient
        with torch.no_grad():
            assert model.frozen_unitary() is not None  # no gradient at all: exact
    frozen(model)
    assert model.frozen_unitary() is None  # off unless asked for
    noisy = frozen(NoiseLayer().prepare(LayeredQNN(4, 2, QNNConfig(n_layers=2), g), ctx=None))
    with reusing_unitaries(noisy):
        assert noisy.frozen_unitary() is None  # inserts add per-example operations
    device = frozen(LayeredQNN(4, 2, QNNConfig(n_layers=2), g))
    device.device_name = "default.qubit"
    with reusing_unitaries(device):
        assert device.frozen_unitary() is None  # a named PennyLane device runs as asked


def test_committed_attack_cells_are_unchanged_by_the_cached_unitary(cli):
    """Re-run the ranking-epsilon cells of one seed of a committed board (amplitude encoding, the suite's
    gradient, gradient-free and transfer attacks) with today's attack path: bit for bit the committed bits
    where the platform matches (qbench verify says which), within the interval otherwise."""
    result = cli("verify", "leaderboards/qnn/ising-qnn/none.json", "--sample", "0", "--seed", "1", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] and report["recomputed"]
    attacked = [c for c in report["cells"] if c["kind"] != "clean"]
    assert len(attacked) >= 10 and all(c["agrees"] for c in attacked)
    assert all(c["bits_equal"] for c in report["cells"] if c["exact"])


@pytest.mark.parametrize("name,build,features", CASES, ids=[c[0] for c in CASES])
def test_weights_swapped_in_without_an_in_place_update_rebuild_the_unitary(name, build, features):
    """``param.data = ...`` (what ``module.to(device)`` does) keeps the parameter's id and version: the cache
    must still see new weights (a review found the unitary, and the QNN's per-forward views, stale)."""
    model = frozen(build(torch.Generator().manual_seed(0)))
    x = torch.rand(6, features, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with reusing_unitaries(model):
        model.class_probabilities(x)
        for p in model.parameters():
            p.data = p.data + 0.4
        cached = model.class_probabilities(x)
    engine = model.class_probabilities(x)
    assert torch.allclose(cached, engine, atol=1e-12, rtol=0)
