"""The engine's entry point: dispatch an operator list to a simulation method."""

from __future__ import annotations

import contextlib
from typing import Sequence

import pennylane as qml
import torch

from . import density, gates, matrices, row_slices, statevector, trajectories
from .circuit import Channel, Dense, inspect_ops, op_batch_size, parse
from .pennylane_device import execute_on_device
from .plan import PlanCache, compile_plan
from .result import EngineResult
from .sampling import default_generator

METHODS = ("auto", "statevector", "density", "trajectories")

_PLANS = PlanCache()


def clear_plan_cache() -> None:
    """Forget every compiled plan (they are otherwise kept in a small LRU cache)."""
    _PLANS.clear()


def _compile(ops, n_wires, measure, method, rows, cdtype):
    """Parse, lower for ``method`` and compile ``ops`` (plan-cache miss)."""
    circuit = parse(ops, n_wires)
    points: list = []
    if method == "statevector":
        items = circuit.items
        if any(isinstance(it, Channel) for it in items):
            raise ValueError("the statevector method cannot apply channels; use 'trajectories' or 'density'")
        n = n_wires
        prep = circuit.prep[1] if circuit.prep else ()
        init = tuple(prep) + tuple(w for w in range(n) if w not in prep)
    elif method == "trajectories":
        items, points = trajectories.lower(circuit.items)
        n = n_wires
        prep = circuit.prep[1] if circuit.prep else ()
        init = tuple(prep) + tuple(w for w in range(n) if w not in prep)
    else:
        items = density.lower(circuit.items, n_wires)
        n = 2 * n_wires
        init = density.init_layout(circuit.prep[1] if circuit.prep else None, n_wires)
    dense_batched = {}
    for pos, it in enumerate(items):
        if isinstance(it, Dense):
            dense_batched[pos] = op_batch_size(ops[it.source[1]]) is not None
    plan = compile_plan(
        circuit,
        items,
        n,
        rows,
        cdtype,
        measure,
        init,
        density=method == "density",
        dense_batched=dense_batched,
        n_points=len(points),
    )
    plan.pauli_points = points
    return plan


def execute(
    ops: Sequence[qml.operation.Operator],
    n_wires: int,
    measure_wires: Sequence[int],
    *,
    method: str = "auto",
    batch_size: int | None = None,
    n_trajectories: int = 1,
    generator: torch.Generator | None = None,
    device: str | None = None,
) -> EngineResult:
    """Simulate ``ops`` on ``n_wires`` qubits and return probabilities of ``measure_wires``.

    Args:
        ops: PennyLane operators (gates, ``AngleEmbedding``, channels; a
            ``StatePrep``/``AmplitudeEmbedding`` only as the first operator).
            Wires must be integers in ``range(n_wires)``.  Parameters may be
            python numbers, 0-d tensors or per-example (B,) tensors (PennyLane
            broadcasting); embedding features may be (B, F).
        n_wires: number of qubits.
        measure_wires: wires whose joint computational-basis distribution is
            returned (first wire = most significant bit of the outcome index).
        method: ``"statevector"`` (pure circuits), ``"density"`` (exact, with
            channels), ``"trajectories"`` (Monte Carlo wave functions) or
            ``"auto"`` (statevector without channels, trajectories with).
        batch_size: number of examples; inferred from broadcast parameters when
            None (1 when nothing is broadcast).
        n_trajectories: trajectories per example for the trajectory method.
        generator: source of all randomness (trajectory sampling).  When None,
            a private generator is seeded with one draw from torch's global RNG,
            so runs are reproducible under ``torch.manual_seed``; no other use
            of the global RNG is made.
        device: None for this engine, otherwise a PennyLane device name
            (``"default.qubit"``, ``"default.mixed"``, ``"lightning.qubit"``...)
            on which the same operators run through a torch QNode.

    Returns:
        :class:`EngineResult` with ``probs`` of shape (B, 2**len(measure_wires)),
        differentiable by autograd, and ``stderr`` for trajectories.
    """
    ops = list(ops)
    measure = tuple(int(w) for w in measure_wires)
    if not measure or len(set(measure)) != len(measure) or not all(0 <= w < n_wires for w in measure):
        raise ValueError(f"measure_wires must be distinct wires in range({n_wires}), got {measure_wires!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if n_trajectories < 1:
        raise ValueError("n_trajectories must be >= 1")

    tdevice = tensor_device(ops)
    # off the CPU, every table and matrix the engine makes goes to the operators' device; on the CPU no
    # device mode is entered (it would cost a dispatch per torch call, and the CPU is torch's default)
    with contextlib.nullcontext() if tdevice.type == "cpu" else tdevice:
        return _execute(ops, n_wires, measure, batch_size, method, n_trajectories, generator, device, tdevice)


def tensor_device(ops: Sequence[qml.operation.Operator]) -> torch.device:
    """The device of the first tensor among the operators' parameters (torch's default device if none)."""
    for op in ops:
        for value in op.data:
            if isinstance(value, torch.Tensor):
                return value.device
    return torch.get_default_device()


def _execute(ops, n_wires, measure, batch_size, method, n_trajectories, generator, device, tdevice) -> EngineResult:
    sig, inferred, rdtype = inspect_ops(ops)
    if batch_size is not None and inferred is not None and batch_size != inferred:
        raise ValueError(f"batch_size={batch_size} but the operators broadcast over {inferred}")
    batch = batch_size or inferred or 1

    if device is not None:
        probs = execute_on_device(ops, n_wires, measure, device, batch)
        return EngineResult(probs=probs, stderr=None, method=f"device:{device}")

    has_channels = any(issubclass(s[0], qml.operation.Channel) for s in sig)
    if method == "auto":
        method = "trajectories" if has_channels else "statevector"
    copies = n_trajectories if method == "trajectories" else 1
    rdtype = rdtype or torch.get_default_dtype()
    cdtype = gates.complex_dtype(rdtype)
    rows = batch * copies

    key = (sig, n_wires, measure, method, rows, copies, cdtype, tdevice)
    plan = _PLANS.get(key)
    if plan is None:
        plan = _compile(ops, n_wires, measure, method, rows, cdtype)
        _PLANS.put(key, plan)

    if method == "trajectories" and (plan.dyn or plan.jumps) and generator is None:
        generator = default_generator(tdevice)

    sources = matrices.chunk_sources(plan, ops, rdtype, batch, copies)
    state = statevector.initial_state(plan, ops, copies)
    kinds = None
    if plan.dyn:
        kinds = trajectories.draw_paulis(plan, plan.pauli_points, ops, batch, copies, rdtype, generator)
    readout = statevector.density_probs if method == "density" else statevector.marginal_probs
    slices = row_slices.spans(plan, copies, sources, tdevice)
    if slices is not None:
        probs = row_slices.run_in_slices(plan, state, sources, kinds, slices, readout)
    else:
        dyn = trajectories.pauli_gathers(plan, kinds) if kinds is not None else None
        jump = trajectories.make_jump(plan, ops, batch, copies, generator) if plan.jumps else None
        probs = readout(plan, statevector.run_program(plan, state, sources, dyn, jump))

    if method == "trajectories":
        mean, stderr = trajectories.aggregate(probs, batch, copies)
        return EngineResult(probs=mean, stderr=stderr, method=method, n_trajectories=copies)
    return EngineResult(probs=probs, stderr=None, method=method)
