"""Applying a characterisation at torch speed, and QNAD's crosstalk placement (hand-made characterisations)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import qbench
from qbench.errors import UsageError
from qbench.hardware import (
    Characterisation, ReadoutNoise, Topology, characterise, map_to_hardware, perturb, place_crosstalk,
    qnad_crosstalk, weight_importance, weight_offsets, weight_qubits,
)

LINE = ((0, 1), (1, 2))  # 0 - 1 - 2


def synthetic(
    grid=(-1.0, 0.0, 1.0), qubits=(0, 1, 2), edges=LINE, n_qubits=3, ks=(2,),
    bias=lambda q, v: 0.0 * v, sd=lambda q, v: 0.0 * v,
    crosstalk_bias=lambda q, n, k, v: 0.0 * v, crosstalk_sd=lambda q, n, k, v: 0.0 * v,
) -> Characterisation:
    """A characterisation with the given curves (functions of qubit and grid values), no Aer involved."""
    grid = np.asarray(grid, dtype=float)
    topology = Topology.from_edges(n_qubits, edges)
    pairs = tuple((q, n, h) for q in qubits for n, h in topology.within(q, 2))
    return Characterisation(
        backend="synthetic", fingerprint=None, n_qubits=n_qubits, edges=topology.edges, grid=grid, shots=1024,
        repeats=2, seed=0, qubits=qubits,
        intrinsic_bias=np.array([bias(q, grid) for q in qubits]),
        intrinsic_sd=np.array([sd(q, grid) for q in qubits]),
        pairs=pairs, ks=ks,
        crosstalk_bias=np.array([[crosstalk_bias(q, n, k, grid) for k in ks] for q, n, _ in pairs]),
        crosstalk_sd=np.array([[crosstalk_sd(q, n, k, grid) for k in ks] for q, n, _ in pairs]),
    )


def small_cnn() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 3, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(3 * 6 * 6, 5),
    )


# -- interpolation and the read-back ------------------------------------------------------------------------

def test_bias_and_sd_are_interpolated_per_qubit():
    char = synthetic(
        bias=lambda q, v: np.array([0.1, 0.0, -0.1]) if q == 0 else np.full(3, 0.2),
        sd=lambda q, v: np.array([0.01, 0.03, 0.01]) if q == 0 else np.full(3, 0.05),
    )
    noise = ReadoutNoise(char)
    v = torch.tensor([-1.0, -0.5, 0.0, 0.25, 1.0])
    bias, sd = noise.bias_sd(v, torch.zeros(5, dtype=torch.long))
    torch.testing.assert_close(bias, torch.tensor([0.1, 0.05, 0.0, -0.025, -0.1]))
    torch.testing.assert_close(sd, torch.tensor([0.01, 0.02, 0.03, 0.025, 0.01]))
    bias, sd = noise.bias_sd(v, torch.ones(5, dtype=torch.long))
    torch.testing.assert_close(bias, torch.full((5,), 0.2))
    torch.testing.assert_close(sd, torch.full((5,), 0.05))


def test_interpolation_on_an_uneven_grid_matches_numpy():
    grid = (-1.0, -0.2, 0.3, 1.0)
    curve = np.array([0.05, -0.02, 0.04, -0.07])
    char = synthetic(grid=grid, bias=lambda q, v: curve * (q + 1), sd=lambda q, v: np.abs(curve))
    noise = ReadoutNoise(char)
    v = torch.linspace(-1, 1, 41, dtype=torch.float64)
    for q in range(3):
        bias, sd = noise.bias_sd(v, torch.full((41,), q))
        np.testing.assert_allclose(bias.numpy(), np.interp(v.numpy(), grid, curve * (q + 1)), atol=1e-6)
        np.testing.assert_allclose(sd.numpy(), np.interp(v.numpy(), grid, np.abs(curve)), atol=1e-6)


def test_readback_distribution():
    char = synthetic(bias=lambda q, v: -0.1 * v, sd=lambda q, v: 0.02 + 0.0 * v)
    values = torch.full((200_000,), 0.5)
    read = perturb(values, 2, char, torch.Generator().manual_seed(0))
    assert read.mean().item() == pytest.approx(0.45, abs=5e-4)
    assert read.std().item() == pytest.approx(0.02, rel=0.02)
    with pytest.raises(KeyError):
        perturb(values, 5, char)


def test_fixed_generator_is_deterministic():
    char = synthetic(bias=lambda q, v: 0.05 * v, sd=lambda q, v: 0.03 + 0.0 * v)
    model = small_cnn()
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    a = map_to_hardware(model, char, generator=torch.Generator().manual_seed(5))
    b = map_to_hardware(model, char, generator=torch.Generator().manual_seed(5))
    first = a(x)
    torch.testing.assert_close(first, b(x), rtol=0, atol=0)
    assert not torch.equal(first, a(x))  # a fresh draw per forward
    a.generator = torch.Generator().manual_seed(5)
    torch.testing.assert_close(a(x), first, rtol=0, atol=0)
    torch.manual_seed(9)
    c = map_to_hardware(model, char)  # no generator: torch's global one
    out = c(x)
    torch.manual_seed(9)
    torch.testing.assert_close(c(x), out, rtol=0, atol=0)


# -- the mapped model ---------------------------------------------------------------------------------------

def test_mapped_model_is_a_stochastic_copy():
    char = synthetic(sd=lambda q, v: 0.01 + 0.0 * v)
    model = small_cnn()
    before = [p.detach().clone() for p in model.parameters()]
    mapped = map_to_hardware(model, char)
    assert mapped.stochastic is True and qbench.is_stochastic(mapped)
    assert not qbench.is_stochastic(model)
    assert isinstance(model[0], torch.nn.Conv2d)  # the original keeps its layers
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert all(p is not q for p, q in zip(model.parameters(), mapped.parameters()))


def test_noiseless_characterisation_leaves_the_model_exact():
    model = small_cnn()
    mapped = map_to_hardware(model, synthetic())
    x = torch.rand(3, 1, 8, 8, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    torch.testing.assert_close(mapped(x), model(x2))
    mapped(x).square().sum().backward()
    model(x2).square().sum().backward()
    torch.testing.assert_close(x.grad, x2.grad)


def test_gradients_pass_through_the_noise():
    char = synthetic(bias=lambda q, v: -0.05 * v, sd=lambda q, v: 0.03 + 0.0 * v)
    mapped = map_to_hardware(small_cnn(), char, generator=torch.Generator().manual_seed(0))
    x = torch.rand(2, 1, 8, 8, requires_grad=True)
    loss = torch.nn.functional.cross_entropy(mapped(x), torch.tensor([1, 3]))
    loss.backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for layer in (mapped.model[0].layer, mapped.model[3].layer):
        assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0


def test_weights_and_activations_scale_exactly():
    """With bias(v) = 0.1 v and no spread a read-back is 1.1 v, so each switch multiplies by exactly 1.1."""
    char = synthetic(bias=lambda q, v: 0.1 * v)
    torch.manual_seed(0)
    layer = torch.nn.Linear(4, 3)
    x = torch.randn(5, 4)
    weights_only = map_to_hardware(layer, char, activations=False)
    torch.testing.assert_close(weights_only(x), x @ (1.1 * layer.weight).T + layer.bias)
    activations_only = map_to_hardware(layer, char, weights=False)
    torch.testing.assert_close(activations_only(x), 1.1 * layer(x))


def test_round_robin_qubits_continue_across_layers():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2, bias=False))
    assert weight_offsets(model) == {"0": (0, 4), "1": (4, 4)}
    qubits = weight_qubits(model, (0, 1, 2))
    assert qubits["0"].tolist() == [[0, 1], [2, 0]]
    assert qubits["1"].tolist() == [[1, 2], [0, 1]]
    assert weight_qubits(model, (5, 3))["1"].tolist() == [[5, 3], [5, 3]]


def test_model_without_mac_layers_is_refused():
    with pytest.raises(UsageError, match="no Conv/Linear"):
        map_to_hardware(torch.nn.ReLU(), synthetic())


# -- QNAD crosstalk placement -------------------------------------------------------------------------------

def test_importance_is_the_absolute_gradient():
    model = small_cnn()
    x = torch.rand(6, 1, 8, 8)
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    importance = weight_importance(model, x, y, batch_size=4)
    assert all(p.grad is None for p in model.parameters())  # the model's .grad is left alone
    loss = torch.nn.functional.cross_entropy(model(x), y, reduction="sum")
    grads = torch.autograd.grad(loss, [model[0].weight, model[3].weight])
    torch.testing.assert_close(importance["0"], grads[0].abs())
    torch.testing.assert_close(importance["3"], grads[1].abs())


def test_selection_takes_the_largest_gradients():
    """One qubit with an always-idle neighbour: every selected weight is placed, most important first."""
    char = synthetic(qubits=(0,))
    model = torch.nn.Linear(10, 2, bias=False)
    importance = {"": torch.randn(2, 10, generator=torch.Generator().manual_seed(0)).abs()}
    plan = place_crosstalk(model, importance, char, level=0.25, k=2)
    top = torch.argsort(importance[""].reshape(-1), descending=True)[:5]
    assert plan.n_weights == 20 and plan.n_selected == 5 and plan.n_placed == 5 and plan.n_unplaced == 0
    assert plan.targets[""].tolist() == top.tolist()
    assert plan.neighbours[""].tolist() == [1] * 5 and plan.hops[""].tolist() == [1] * 5
    assert plan.affected_fraction == 0.25


def test_neighbour_availability_rule():
    """Qubits 0-1-2 in a line; weights 0,1,2 run in slot 0 on qubits 0,1,2, weights 3,4,5 in slot 1."""
    char = synthetic()
    model = torch.nn.Linear(3, 2, bias=False)

    def plan_for(scores, level):
        return place_crosstalk(model, {"": torch.tensor(scores, dtype=torch.float).reshape(2, 3)}, char, level, 2)

    only_first = plan_for([6, 1, 1, 1, 1, 1], 1 / 6)  # qubit 1 carries an unselected weight: available
    assert only_first.targets[""].tolist() == [0] and only_first.neighbours[""].tolist() == [1]

    two = plan_for([6, 5, 1, 1, 1, 1], 2 / 6)
    # weight 0 (qubit 0): qubit 1 carries selected weight 1, so the 2-hop qubit 2 is taken;
    # weight 1 (qubit 1): qubit 0 carries a selected weight and qubit 2 is already a partner in slot 0
    assert two.targets[""].tolist() == [0] and two.neighbours[""].tolist() == [2] and two.hops[""].tolist() == [2]
    assert two.n_unplaced == 1

    full_slot = plan_for([6, 5, 4, 1, 2, 3], 0.5)  # all of slot 0 selected: nobody is free
    assert full_slot.n_selected == 3 and full_slot.n_placed == 0 and full_slot.n_unplaced == 3

    # 1 hop only: weight 0 finds no partner, then weight 1 (qubit 1) takes the still free qubit 2
    one_hop = place_crosstalk(model, {"": torch.tensor([[6.0, 5, 1], [1, 1, 1]])}, char, 2 / 6, 2, max_hops=1)
    assert one_hop.targets[""].tolist() == [1] and one_hop.neighbours[""].tolist() == [2]


def test_crosstalk_weights_use_the_crosstalk_curves():
    """Intrinsic noise off, crosstalk halves the value: only the planned weights change, by exactly half."""
    char = synthetic(crosstalk_bias=lambda q, n, k, v: -0.5 * v)
    torch.manual_seed(0)
    layer = torch.nn.Linear(6, 2, bias=False)
    importance = torch.ones(12)
    importance[[0, 4, 8]] = 5.0  # one weight in each of slots 0, 1, 2, each with a free neighbour
    plan = place_crosstalk(layer, {"": importance.reshape(2, 6)}, char, level=3 / 12, k=2)
    mapped = map_to_hardware(layer, char, activations=False, crosstalk=plan)
    read = mapped(torch.eye(6)).T.reshape(-1)  # x = I reads the effective weights back
    expected = layer.weight.detach().reshape(-1).clone()
    expected[plan.targets[""]] *= 0.5
    assert sorted(plan.targets[""].tolist()) == [0, 4, 8]
    torch.testing.assert_close(read, expected)


def test_level_zero_is_intrinsic_only():
    char = synthetic(bias=lambda q, v: 0.05 * v, sd=lambda q, v: 0.02 + 0.0 * v,
                     crosstalk_bias=lambda q, n, k, v: -0.3 * v)
    model = small_cnn()
    x = torch.rand(3, 1, 8, 8)
    plan = qnad_crosstalk(model, x, torch.tensor([0, 1, 2]), char, level=0.0, k=2)
    assert plan.n_selected == plan.n_placed == 0 and plan.affected_fraction == 0.0
    with_plan = map_to_hardware(model, char, crosstalk=plan, generator=torch.Generator().manual_seed(3))
    without = map_to_hardware(model, char, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(with_plan(x), without(x), rtol=0, atol=0)


def test_plan_misuse_is_a_usage_error():
    char = synthetic()
    model = small_cnn()
    importance = weight_importance(model, torch.rand(2, 1, 8, 8), torch.tensor([0, 1]))
    with pytest.raises(UsageError, match="level"):
        place_crosstalk(model, importance, char, level=1.5, k=2)
    with pytest.raises(UsageError, match="k=3"):
        place_crosstalk(model, importance, char, level=0.1, k=3)
    plan = place_crosstalk(model, importance, char, level=0.1, k=2)
    with pytest.raises(UsageError, match="other Conv/Linear layers"):
        map_to_hardware(torch.nn.Linear(3, 3), char, crosstalk=plan)


def test_end_to_end_on_nairobi():
    """A real (coarse) characterisation of all 7 qubits: placement, mapping and a differentiable forward."""
    char = characterise("ibm_nairobi", grid=3, shots=64, repeats=2, ks=(1,))
    model = small_cnn()
    x = torch.rand(8, 1, 8, 8)
    y = torch.arange(8) % 5
    plan = qnad_crosstalk(model, x, y, char, level=0.1, k=1)
    assert plan.n_placed > 0 and plan.n_placed + plan.n_unplaced == plan.n_selected
    mapped = map_to_hardware(model, char, crosstalk=plan, generator=torch.Generator().manual_seed(0))
    xs = x.clone().requires_grad_(True)
    out = mapped(xs)
    out.sum().backward()
    assert out.shape == (8, 5) and torch.isfinite(xs.grad).all()
    assert (out - model(x)).abs().max() > 0
