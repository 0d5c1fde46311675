"""Large batches run in slices of rows (qbench/engine/row_slices.py): the same numbers, bit for bit."""

from __future__ import annotations

import numpy as np
import pennylane as qml
import pytest
import torch

from qbench.engine import execute
from qbench.engine import row_slices


def _circuit(seed: int, n: int, depth: int, batch: int, dtype: torch.dtype, kind: str, cz: bool = True):
    """Weights (frozen unless asked), per-example inputs, and an operator builder of the given kind:
    ``pauli`` (depolarizing, bit- and phase-flip channels, CZ phases: sampled trajectories), ``per_example``
    (per-example rotations as noise layers draw them: batched matrices), ``density`` (the exact channel, one of
    them per example),
    ``jump`` (amplitude damping: quantum jumps)."""
    rng = np.random.default_rng(seed)
    weights = torch.tensor(rng.normal(size=(depth, n, 3)), dtype=dtype)
    inputs = torch.tensor(rng.normal(size=(batch, 2**n)), dtype=dtype)
    noise = torch.tensor(rng.normal(size=(depth, n, batch)), dtype=dtype)

    def build(weights, inputs):
        ops = [qml.AmplitudeEmbedding(inputs, wires=range(n), normalize=True)]
        for layer in range(depth):
            for q in range(n):
                if kind == "per_example":
                    ops.append(qml.RY(noise[layer, q], wires=q))
                w = weights[layer, q]
                ops.append(qml.Rot(w[0], w[1], w[2], wires=q))
            for q in range(n):
                ops.append((qml.CZ if q % 2 and cz else qml.CNOT)(wires=[q, (q + 1) % n]))
            if kind in ("pauli", "density"):
                ops += [qml.DepolarizingChannel(0.1, wires=q) for q in range(n)]
            if kind == "density":  # a per-example channel: a batched dense superoperator
                ops.append(qml.AmplitudeDamping(noise[layer, 0].abs().clamp(max=0.9), wires=1))
                ops += [qml.BitFlip(0.05, wires=0), qml.PhaseFlip(0.05, wires=n - 1)]
            if kind == "jump":
                ops.append(qml.AmplitudeDamping(0.1, wires=0))
        return ops

    return build, weights, inputs


def _run(build, weights, inputs, n, kind, sliced: bool, monkeypatch):
    """Probabilities and d(random functional)/d inputs, with slicing on or off."""
    monkeypatch.setattr(row_slices, "spans", ORIGINAL_SPANS if sliced else (lambda *a, **k: None))
    x = inputs.clone().requires_grad_(True)
    method = {"pauli": "trajectories", "jump": "trajectories", "density": "density"}.get(kind, "statevector")
    result = execute(build(weights, x), n, [0, 1], method=method, n_trajectories=4 if method == "trajectories" else 1,
                     generator=torch.Generator().manual_seed(11))
    coeff = torch.randn(result.probs.shape, generator=torch.Generator().manual_seed(3), dtype=result.probs.dtype)
    (grad,) = torch.autograd.grad((result.probs * coeff).sum(), x)
    with torch.no_grad():  # the plain forward (predictions): no autograd node at all
        plain = execute(build(weights, inputs), n, [0, 1], method=method,
                        n_trajectories=4 if method == "trajectories" else 1, generator=torch.Generator().manual_seed(11))
    return result.probs.detach(), grad, plain.probs


ORIGINAL_SPANS = row_slices.spans


@pytest.mark.parametrize("kind,dtype", [
    ("pauli", torch.float32), ("pauli", torch.float64), ("per_example", torch.float32), ("density", torch.float64),
])
def test_a_sliced_run_equals_the_whole_run_bit_for_bit(kind, dtype, monkeypatch):
    monkeypatch.setattr(row_slices, "TARGET_BYTES", 2048)  # slices of MIN_ROWS rows on these small states
    n, batch = {"pauli": (5, 70), "per_example": (5, 200), "density": (3, 200)}[kind]
    build, weights, inputs = _circuit(7, n, 3, batch, dtype, kind)
    calls = []
    original_run = row_slices.run_in_slices
    monkeypatch.setattr(row_slices, "run_in_slices", lambda *a: calls.append(len(a[4])) or original_run(*a))
    sliced = _run(build, weights, inputs, n, kind, True, monkeypatch)
    assert calls and calls[0] >= 2  # it did run in slices
    whole = _run(build, weights, inputs, n, kind, False, monkeypatch)
    assert all(torch.equal(a, b) for a, b in zip(sliced, whole))
    assert torch.equal(sliced[0], sliced[2])  # with and without autograd, the same draws give the same numbers
    assert sliced[1].abs().sum() > 0


def test_shared_weights_that_need_a_gradient_and_quantum_jumps_run_whole(monkeypatch):
    monkeypatch.setattr(row_slices, "TARGET_BYTES", 2048)
    seen = []
    original = row_slices.spans
    monkeypatch.setattr(row_slices, "spans", lambda *a: seen.append(original(*a)) or seen[-1])
    build, weights, inputs = _circuit(8, 5, 2, 70, torch.float64, "pauli")
    execute(build(weights, inputs), 5, [0], method="trajectories", n_trajectories=4)
    assert seen[-1] is not None  # frozen weights: sliced
    trained = weights.clone().requires_grad_(True)
    execute(build(trained, inputs), 5, [0], method="trajectories", n_trajectories=4)
    assert seen[-1] is None  # a gradient of shared gate matrices sums over rows: whole
    with torch.no_grad():
        execute(build(trained, inputs), 5, [0], method="trajectories", n_trajectories=4)
    assert seen[-1] is not None  # no gradient at all: sliced
    build, weights, inputs = _circuit(9, 5, 2, 70, torch.float64, "jump")
    execute(build(weights, inputs), 5, [0], method="trajectories", n_trajectories=4)
    assert seen[-1] is None  # jumps sample from the evolving state: whole


@pytest.mark.parametrize("rows,copies", [(1000 * 10, 10), (50_000, 1), (4096, 1), (130 * 7, 7)])
def test_slices_are_whole_examples_of_at_least_min_rows_covering_every_row(rows, copies, monkeypatch):
    monkeypatch.setattr(row_slices, "TARGET_BYTES", 2**16)

    class Plan:  # the fields spans() reads
        batch, n, cdtype, jumps, kron_groups = rows, 8, torch.complex64, [], []

    spans = row_slices.spans(Plan, copies, [], torch.device("cpu"))
    assert spans is not None and len(spans) >= 2
    assert spans[0][0] == 0 and spans[-1][1] == rows
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
    sizes = [stop - start for start, stop in spans]
    assert all(s % copies == 0 and s >= row_slices.MIN_ROWS for s in sizes)
    assert max(sizes) - min(sizes) <= copies  # balanced: at most two re-batched plans
    # a state that fits twice in the target, or a device other than the CPU, runs whole
    Plan.batch = 2 * (2**16 // (2**8 * 8))
    assert row_slices.spans(Plan, 1, [], torch.device("cpu")) is None
    Plan.batch = rows
    assert row_slices.spans(Plan, copies, [], torch.device("meta")) is None


@pytest.mark.parametrize("cz", [True, False])
def test_pauli_gathers_from_the_mask_tables_equal_the_per_entry_computation(cz, monkeypatch):
    """Each row's Pauli gather index and phase copied from a table row by its masks (trajectories.py) equal
    those computed entry by entry, with and without static phases (CZ) in the gathers."""
    from qbench.engine import trajectories

    seen = []
    original = trajectories.pauli_gathers
    monkeypatch.setattr(trajectories, "pauli_gathers", lambda plan, kind: seen.append((plan, kind)) or original(plan, kind))
    build, weights, inputs = _circuit(10, 5, 3, 40, torch.float32, "pauli", cz=cz)
    execute(build(weights, inputs), 5, [0, 1], method="trajectories", n_trajectories=4)
    plan, kind = seen[-1]
    assert ("phase" in plan.dyn_tables) == cz  # the CZs' static phases are part of the gathers
    try:
        tabled = original(plan, kind)
        assert plan.dyn_tables["flip_index"] is not None
        assert (plan.dyn_tables["flip_phase"] is not None) == cz
        monkeypatch.setattr(trajectories, "BY_MASK_BYTES", 0)
        for key in ("flip_index", "sign_phase", "flip_phase"):
            plan.dyn_tables.pop(key, None)
        computed = original(plan, kind)
        assert plan.dyn_tables["flip_index"] is None  # too large now: per entry
    finally:
        for key in ("flip_index", "sign_phase", "flip_phase"):
            plan.dyn_tables.pop(key, None)  # the cached plan builds its tables again in the next test
    assert all(hasattr(t, "dense") for t in tabled)  # made one gather at a time (trajectories._TableRows)
    tabled = tuple(t.dense() for t in tabled)
    assert torch.equal(tabled[0], computed[0]) and torch.equal(tabled[1], computed[1])
    assert (kind == 2).any() and not torch.equal(computed[1], torch.ones_like(computed[1]))


@pytest.mark.parametrize("cz", [True, False])
def test_table_rows_made_per_gather_give_the_states_and_gradients_of_the_whole_tables_bit_for_bit(cz, monkeypatch):
    """Each gather's rows copied from the by-mask tables when the program reaches it (ROW_COPIES) change no
    bit of a trajectory run against the (G, rows, 2**n) tensors of advanced indexing: the probabilities of a
    no-grad forward, and the input and weight gradients through the hand-written backward."""
    from qbench.engine import trajectories

    def run(row_copies: bool):
        monkeypatch.setattr(trajectories, "ROW_COPIES", row_copies)
        build, weights, inputs = _circuit(10, 5, 3, 40, torch.float32, "pauli", cz=cz)
        weights, inputs = weights.detach().requires_grad_(True), inputs.detach().requires_grad_(True)
        with torch.no_grad():
            plain = execute(build(weights, inputs), 5, [0, 1], method="trajectories", n_trajectories=4,
                            generator=torch.Generator().manual_seed(3)).probs
        probs = execute(build(weights, inputs), 5, [0, 1], method="trajectories", n_trajectories=4,
                        generator=torch.Generator().manual_seed(3)).probs
        weighting = torch.linspace(-1, 1, probs.numel()).view_as(probs)
        grads = torch.autograd.grad((probs * weighting).sum(), [weights, inputs])
        return plain, probs.detach(), grads

    copies, indexed = run(True), run(False)
    assert torch.equal(copies[0], indexed[0]) and torch.equal(copies[1], indexed[1])
    assert all(torch.equal(a, b) for a, b in zip(copies[2], indexed[2]))
    assert copies[2][0].abs().sum() > 0 and copies[2][1].abs().sum() > 0
