"""Tests of qbench.engine against PennyLane's default.qubit / default.mixed (float64, tol 1e-6)."""

from __future__ import annotations

import math

import numpy as np
import pennylane as qml
import pytest
import torch

from qbench.engine import EngineResult, execute, sample_shots
from qbench.engine import statevector as sv_module

TOL = 1e-6


def _close(a: torch.Tensor, b: torch.Tensor, tol: float = TOL) -> None:
    assert a.shape == b.shape, (a.shape, b.shape)
    err = (a - b).abs().max().item()
    assert err <= tol, err


def _random_circuit(
    seed: int,
    n: int,
    depth: int,
    batch: int,
    *,
    channels: bool = False,
    embedding: str = "amplitude",
    dtype: torch.dtype = torch.float64,
):
    """A random circuit: returns (ops builder, tensors whose gradients are checked)."""
    rng = np.random.default_rng(seed)
    weights = torch.tensor(rng.normal(size=(depth, n, 3)), dtype=dtype, requires_grad=True)
    if embedding == "amplitude":
        inputs = torch.tensor(rng.normal(size=(batch, 2**n - 1)), dtype=dtype, requires_grad=True)
    else:
        inputs = torch.tensor(rng.normal(size=(batch, n)), dtype=dtype, requires_grad=True)
    plan = []
    for layer in range(depth):
        for q in range(n):
            plan.append(("gate", rng.choice(["Rot", "RX", "RY", "RZ"]), layer, q))
        for _ in range(n - 1):
            a, b = rng.choice(n, size=2, replace=False)
            plan.append(("ent", rng.choice(["CNOT", "CZ"]), int(a), int(b)))
        if channels:
            for q in range(n):
                kind = rng.choice(["DepolarizingChannel", "AmplitudeDamping", "BitFlip", "PhaseFlip", None])
                if kind is not None:
                    plan.append(("chan", kind, float(rng.uniform(0.02, 0.3)), q))
    rotation = str(rng.choice(["X", "Y", "Z"]))

    def build(weights=weights, inputs=inputs):
        if embedding == "amplitude":
            ops = [qml.AmplitudeEmbedding(inputs, wires=range(n), normalize=True, pad_with=0.3)]
        else:
            ops = [qml.AngleEmbedding(inputs, wires=range(n), rotation=rotation)]
        for item in plan:
            if item[0] == "gate":
                _, name, layer, q = item
                w = weights[layer, q]
                if name == "Rot":
                    ops.append(qml.Rot(w[0], w[1], w[2], wires=q))
                else:
                    ops.append(getattr(qml, name)(w[0], wires=q))
            elif item[0] == "ent":
                ops.append(getattr(qml, item[1])(wires=[item[2], item[3]]))
            else:
                ops.append(getattr(qml, item[1])(item[2], wires=item[3]))
        return ops

    return build, weights, inputs


def _grads(probs: torch.Tensor, tensors, seed: int = 0):
    """Gradients of a fixed random linear functional of the probabilities."""
    g = torch.Generator().manual_seed(seed)
    coeff = torch.randn(probs.shape, generator=g, dtype=probs.dtype)
    return torch.autograd.grad((probs * coeff).sum(), tensors)


# ----------------------------------------------------------------------------- exact, pure


@pytest.mark.parametrize("seed,n,embedding,measure", [
    (0, 3, "amplitude", [0, 1]),
    (1, 4, "angle", [2, 0]),
    (2, 4, "amplitude", [3]),
    (3, 5, "angle", [4, 1, 2]),
    (4, 6, "amplitude", [1, 5, 0, 3]),
])
def test_statevector_matches_default_qubit(seed, n, embedding, measure):
    build, w, x = _random_circuit(seed, n, depth=3, batch=3, embedding=embedding)
    ours = execute(build(), n, measure, method="statevector")
    assert isinstance(ours, EngineResult) and ours.stderr is None
    ref = execute(build(), n, measure, device="default.qubit")
    _close(ours.probs, ref.probs)
    _close(ours.probs.sum(1), torch.ones(3, dtype=torch.float64))
    for a, b in zip(_grads(ours.probs, [w, x]), _grads(ref.probs, [w, x])):
        _close(a, b)


def test_statevector_gradient_matches_plain_autograd_and_double_backward():
    build, w, x = _random_circuit(7, 4, depth=4, batch=2)
    try:
        sv_module._USE_PROGRAM_NODE = False
        plain = execute(build(), 4, [0, 1]).probs
        g_plain = torch.autograd.grad(plain[:, 1].sum(), [x], create_graph=True)[0]
        gg_plain = torch.autograd.grad((g_plain**2).sum(), [w])[0]
    finally:
        sv_module._USE_PROGRAM_NODE = True
    fast = execute(build(), 4, [0, 1]).probs
    g_fast = torch.autograd.grad(fast[:, 1].sum(), [x], create_graph=True)[0]
    gg_fast = torch.autograd.grad((g_fast**2).sum(), [w])[0]
    _close(g_fast, g_plain, 1e-10)
    _close(gg_fast, gg_plain, 1e-10)


def test_per_example_parameters_match_loop_of_single_examples():
    n, batch = 3, 4
    rng = np.random.default_rng(5)
    theta = torch.tensor(rng.normal(size=batch), requires_grad=True)  # per example
    shared = torch.tensor(rng.normal(size=3), requires_grad=True)
    feats = torch.tensor(rng.normal(size=(batch, n)))

    def ops_for(th, ft):
        return [
            qml.AngleEmbedding(ft, wires=range(n), rotation="Y"),
            qml.RX(th, wires=1),
            qml.Rot(shared[0], th, shared[2], wires=2),
            qml.CNOT([1, 2]), qml.CZ([0, 2]), qml.RY(shared[1], wires=0),
        ]

    batched = execute(ops_for(theta, feats), n, [0, 2]).probs
    looped = torch.cat([execute(ops_for(theta[b], feats[b]), n, [0, 2]).probs for b in range(batch)])
    _close(batched, looped)
    g_b = torch.autograd.grad(batched.sum(0)[1], [theta, shared])
    g_l = torch.autograd.grad(looped.sum(0)[1], [theta, shared])
    for a, b in zip(g_b, g_l):
        _close(a, b)


def test_float32_runs_in_complex64_and_matches_float64():
    build64, w, x = _random_circuit(11, 4, depth=3, batch=2)
    p64 = execute(build64(), 4, [0, 1]).probs
    p32 = execute(build64(w.detach().float(), x.detach().float()), 4, [0, 1]).probs
    assert p32.dtype == torch.float32 and p64.dtype == torch.float64
    _close(p32.double(), p64, 1e-5)


def test_plan_cache_uses_new_parameter_values_and_constant_gates():
    def ops(a):
        return [qml.Hadamard(0), qml.RY(a, wires=1), qml.CNOT([0, 1]), qml.S(1), qml.RX(a * 2, wires=0)]

    for a in (0.3, 1.1):
        t = torch.tensor(a, dtype=torch.float64)
        _close(execute(ops(t), 2, [0, 1]).probs, execute(ops(t), 2, [0, 1], device="default.qubit").probs)


def test_state_prep_on_subset_of_wires_and_unbatched_inputs():
    vec = torch.tensor([0.1, 0.5, -0.3, 0.7], dtype=torch.float64)
    ops = [qml.StatePrep(vec / vec.norm(), wires=[2, 0]), qml.RY(0.4, wires=1), qml.CNOT([1, 2])]
    ours = execute(ops, 3, [0, 1, 2], batch_size=2)
    ref = execute(ops, 3, [0, 1, 2], device="default.qubit", batch_size=2)
    assert ours.probs.shape == (2, 8)
    _close(ours.probs, ref.probs)


def test_dense_fallback_for_other_gates():
    a = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    ops = [qml.Hadamard(0), qml.Hadamard(1), qml.CRX(a, wires=[0, 2]), qml.IsingZZ(a, wires=[2, 1]), qml.Toffoli([0, 1, 2])]
    ours = execute(ops, 3, [2, 1]).probs
    ref = execute(ops, 3, [2, 1], device="default.qubit").probs
    _close(ours, ref)
    _close(torch.autograd.grad(ours[0, 1], a)[0], torch.autograd.grad(ref[0, 1], a)[0])


def test_parameters_gathered_from_a_shared_base_keep_their_gradient():
    w = torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]], dtype=torch.float64, requires_grad=True)
    scaled = w * 2  # non-leaf base: gradient must flow through it
    ops = [qml.Rot(scaled[0, 0], scaled[0, 1], scaled[1, 2], wires=0), qml.RX(w[1, 0], wires=1), qml.CNOT([0, 1])]
    ours = execute(ops, 2, [1]).probs
    ref = execute(ops, 2, [1], device="default.qubit").probs
    _close(ours, ref)
    _close(torch.autograd.grad(ours[0, 0], w, retain_graph=True)[0], torch.autograd.grad(ref[0, 0], w)[0])


def test_device_path_equals_engine():
    build, w, x = _random_circuit(13, 3, depth=2, batch=2, embedding="angle")
    dev = execute(build(), 3, [1, 2], device="default.qubit")
    assert dev.method == "device:default.qubit"
    _close(dev.probs, execute(build(), 3, [1, 2]).probs)


def test_invalid_use_raises():
    with pytest.raises(ValueError):
        execute([qml.RX(0.1, wires=0), qml.StatePrep(torch.tensor([1.0, 0.0]), wires=0)], 1, [0])
    with pytest.raises(ValueError):
        execute([qml.DepolarizingChannel(0.1, wires=0)], 1, [0], method="statevector")
    with pytest.raises(ValueError):
        execute([qml.RX(0.1, wires=0)], 1, [1])


# ----------------------------------------------------------------------------- exact, noisy


@pytest.mark.parametrize("seed,n,embedding", [(21, 3, "amplitude"), (22, 4, "angle")])
def test_density_matches_default_mixed(seed, n, embedding):
    build, w, x = _random_circuit(seed, n, depth=2, batch=2, channels=True, embedding=embedding)
    ours = execute(build(), n, [0, n - 1], method="density")
    ref = execute(build(), n, [0, n - 1], device="default.mixed")
    _close(ours.probs, ref.probs)
    for a, b in zip(_grads(ours.probs, [w, x]), _grads(ref.probs, [w, x])):
        _close(a, b)


def test_density_without_channels_equals_statevector():
    build, w, x = _random_circuit(23, 3, depth=3, batch=2)
    _close(execute(build(), 3, [2, 0], method="density").probs, execute(build(), 3, [2, 0]).probs)


def test_density_per_example_channel_parameter():
    p = torch.tensor([0.0, 0.2, 0.5], dtype=torch.float64)
    ops = [qml.RY(0.9, wires=0), qml.CNOT([0, 1]), qml.DepolarizingChannel(p, wires=1), qml.AmplitudeDamping(0.3, wires=0)]
    ours = execute(ops, 2, [0, 1], method="density").probs
    looped = torch.cat([
        execute([qml.RY(0.9, wires=0), qml.CNOT([0, 1]), qml.DepolarizingChannel(p[b], wires=1),
                 qml.AmplitudeDamping(0.3, wires=0)], 2, [0, 1], device="default.mixed").probs
        for b in range(3)
    ])
    _close(ours, looped)


# ----------------------------------------------------------------------------- trajectories


def test_trajectories_converge_to_density_matrix():
    build, w, x = _random_circuit(31, 3, depth=2, batch=2, channels=True)
    exact = execute(build(), 3, [0, 2], method="density").probs
    gen = torch.Generator().manual_seed(1234)
    est = execute(build(), 3, [0, 2], method="trajectories", n_trajectories=4000, generator=gen)
    assert est.stderr is not None and est.stderr.shape == exact.shape and not est.stderr.requires_grad
    z = ((est.probs - exact) / est.stderr.clamp_min(1e-12)).abs()
    assert z.max().item() < 3.0, z
    assert est.stderr.max().item() < 0.02


def test_depolarizing_trajectories_converge_and_auto_method():
    n = 4
    ops = [qml.Hadamard(0)]
    for q in range(n - 1):
        ops += [qml.CNOT([q, q + 1]), qml.RY(0.3 * (q + 1), wires=q), qml.DepolarizingChannel(0.2, wires=q)]
    ops += [qml.CZ([0, 3]), qml.RX(0.4, wires=3), qml.DepolarizingChannel(0.1, wires=3)]
    exact = execute(ops, n, [0, 3], method="density").probs
    gen = torch.Generator().manual_seed(99)
    est = execute(ops, n, [0, 3], n_trajectories=20000, generator=gen)  # auto -> trajectories
    assert est.method == "trajectories"
    assert (((est.probs - exact) / est.stderr).abs() < 3).all()


def test_trajectories_reproducible_and_single_trajectory_has_no_stderr():
    build, w, x = _random_circuit(32, 3, depth=2, batch=3, channels=True)
    a = execute(build(), 3, [0], method="trajectories", generator=torch.Generator().manual_seed(5))
    b = execute(build(), 3, [0], method="trajectories", generator=torch.Generator().manual_seed(5))
    assert a.stderr is None and a.n_trajectories == 1
    _close(a.probs, b.probs, 0.0)
    torch.manual_seed(3)
    c = execute(build(), 3, [0], method="trajectories")
    torch.manual_seed(3)
    d = execute(build(), 3, [0], method="trajectories")
    _close(c.probs, d.probs, 0.0)


def test_pauli_trajectory_gradient_is_the_gradient_of_the_sampled_circuit():
    build, w, x = _random_circuit(33, 4, depth=3, batch=2, channels=False)

    def noisy():
        out = []
        for op in build():
            out.append(op)
            if op.name == "CNOT":
                out.append(qml.DepolarizingChannel(0.3, wires=op.wires[1]))
                out.append(qml.PhaseFlip(0.2, wires=op.wires[0]))
        return out

    seeds = dict(method="trajectories", n_trajectories=3)
    fast = execute(noisy(), 4, [0, 1], generator=torch.Generator().manual_seed(8), **seeds).probs
    try:
        sv_module._USE_PROGRAM_NODE = False
        plain = execute(noisy(), 4, [0, 1], generator=torch.Generator().manual_seed(8), **seeds).probs
    finally:
        sv_module._USE_PROGRAM_NODE = True
    _close(fast, plain, 1e-12)
    for a, b in zip(_grads(fast, [w, x]), _grads(plain, [w, x])):
        _close(a, b, 1e-10)


def test_amplitude_damping_jump_gradient_is_finite_and_estimate_converges():
    g = torch.tensor(0.4, dtype=torch.float64, requires_grad=True)
    a = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
    ops = [qml.RY(a, wires=0), qml.AmplitudeDamping(g, wires=0), qml.RX(0.3, wires=0), qml.CNOT([0, 1])]
    exact = execute(ops, 2, [0, 1], method="density").probs
    est = execute(ops, 2, [0, 1], method="trajectories", n_trajectories=8000, generator=torch.Generator().manual_seed(2))
    assert (((est.probs - exact) / est.stderr.clamp_min(1e-12)).abs() < 3).all()
    grad_a, grad_g = torch.autograd.grad(est.probs[0, 0], [a, g])
    assert torch.isfinite(grad_a) and torch.isfinite(grad_g)


# ----------------------------------------------------------------------------- sampling


def test_sample_shots_distribution():
    probs = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.7, 0.0, 0.2, 0.1]], dtype=torch.float64)
    shots = 20000
    counts = sample_shots(probs, shots, torch.Generator().manual_seed(0))
    assert counts.dtype == torch.int64 and counts.shape == probs.shape
    assert (counts.sum(1) == shots).all() and counts[1, 1] == 0
    expected = probs * shots
    mask = expected > 0
    chi2 = (((counts - expected) ** 2)[mask] / expected[mask]).sum().item()
    assert chi2 < 25.0  # 6 degrees of freedom: p(chi2 > 25) < 1e-3
    again = sample_shots(probs, shots, torch.Generator().manual_seed(0))
    assert torch.equal(counts, again)


def test_sample_shots_many_shots_uses_binomial_chain():
    probs = torch.tensor([0.25, 0.25, 0.5], dtype=torch.float64)
    shots = 10_000_000
    counts = sample_shots(probs, shots, torch.Generator().manual_seed(1))
    assert counts.shape == (3,) and counts.sum().item() == shots
    sd = math.sqrt(shots * 0.25 * 0.75)
    assert abs(counts[0].item() - shots * 0.25) < 5 * sd
