"""Parsing a list of PennyLane operators into the engine's intermediate representation.

Two passes exist.  :func:`inspect_ops` runs on every call; it is a cheap scan
that produces a hashable *structure signature* (operator classes, wires,
broadcast sizes) plus the inferred batch size and dtype, used as the key of the
compiled-plan cache.  :func:`parse` only runs on a cache miss; it turns the
operators into :class:`Circuit`, a method-independent list of IR items whose
numeric values are later fetched from the operators by index.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Sequence

import numpy as np
import pennylane as qml
import torch
from pennylane.ops.op_math import CompositeOp, Controlled, SymbolicOp

from . import gates

_STATE_PREP_TYPES = (qml.StatePrep,)  # AmplitudeEmbedding subclasses StatePrep


class Ref(NamedTuple):
    """Reference to a 2x2 matrix row in the shared (batched=False) or batched table."""

    batched: bool
    row: int
    conj: bool = False


class G1(NamedTuple):
    """A single-qubit gate on ``wire`` whose matrix is ``ref``."""

    wire: int
    ref: Ref


class Mono(NamedTuple):
    """A parameter-free monomial gate: ``new[r] = vals[r] * old[cols[r]]`` on ``wires``."""

    wires: tuple[int, ...]
    cols: tuple[int, ...]
    vals: tuple[complex, ...]


class Dense(NamedTuple):
    """A multi-qubit operator applied as a dense matrix, fetched at run time.

    ``source`` is ``("op", op_index, conj)`` for a gate or ``("superop", op_index)``
    for a channel in the doubled (density-matrix) register.
    """

    wires: tuple[int, ...]
    source: tuple


class Channel(NamedTuple):
    """A noise channel (lowered differently by the density and trajectory methods)."""

    wires: tuple[int, ...]
    op_index: int
    name: str


class Pauli(NamedTuple):
    """A sampled Pauli insertion (trajectory unravelling of a Pauli channel)."""

    wire: int
    point: int


class Jump(NamedTuple):
    """A quantum-jump (Kraus branch sampling) step of a general channel."""

    wire: int
    op_index: int


@dataclass
class ParamGroup:
    """Single-qubit gates of one class whose matrices come from one PennyLane call.

    ``kind`` is ``"ops"`` (one gate per operator, parameters ``op.data``),
    ``"embed"`` (an ``AngleEmbedding``: one gate per feature column) or
    ``"each"`` (classes without vectorised ``compute_matrix``: ``op.matrix()``
    per operator, stacked).
    """

    cls: type
    batched: bool
    kind: str
    op_indices: list[int] = field(default_factory=list)
    size: int = 0
    offset: int = 0  # first row in its table


@dataclass
class Circuit:
    """Method-independent IR of an operator list (built once per structure)."""

    n_wires: int
    batch: int | None
    prep: tuple[int, tuple[int, ...]] | None  # (op index, wires)
    const_classes: list[type]  # rows 0..len-1 of the shared table; identity follows
    shared_groups: list[ParamGroup]
    batched_groups: list[ParamGroup]
    items: list[Any]
    n_shared_rows: int = 0
    n_batched_rows: int = 0

    @property
    def identity_row(self) -> int:
        """Row of the identity matrix in the shared table."""
        return len(self.const_classes)


def _wires_of(op: qml.operation.Operator) -> tuple:
    """``op.wires`` as a tuple of labels (public API; used outside the hot path)."""
    return tuple(op.wires.labels)


# Per operator class: (wire access kind, parameter-free constant gate, expected
# parameter dimensions or None).  Wire access kinds: 0 = public ``op.wires``;
# 1 = the operator's own ``_wires``; 2 = control wires + base wires.
# ``Controlled.wires`` concatenates two Wires objects on every access (~10 us
# for a CNOT), so the fast kinds read the underlying tuples; each fast kind is
# verified against the public property on the first instance of the class.
# Likewise ``op.batch_size`` runs PennyLane's ``_check_batching`` (tens of us)
# on every fresh operator, so the broadcast size is read from the parameter
# shapes and the class's declared ``ndim_params`` when it is a plain tuple.
_CLASS_INFO: dict[type, tuple[int, bool, tuple | None]] = {}


def _fast_wires(op: qml.operation.Operator, kind: int) -> tuple:
    if kind == 1:
        return op._wires._labels
    return op._hyperparameters["control_wires"]._labels + op._wires._labels


def _class_info(op: qml.operation.Operator) -> tuple[int, bool, tuple | None]:
    cls = type(op)
    info = _CLASS_INFO.get(cls)
    if info is not None:
        return info
    reference = tuple(op.wires.labels)
    kind = 0
    if isinstance(op, Controlled):
        candidates = (2,)
    elif isinstance(op, (SymbolicOp, CompositeOp)):
        candidates = ()
    else:
        candidates = (1,)
    for cand in candidates:
        try:
            if _fast_wires(op, cand) == reference:
                kind = cand
        except (AttributeError, KeyError, TypeError):
            pass
    const = gates.is_constant_gate(op)
    ndims = getattr(cls, "ndim_params", None)
    if isinstance(op, qml.AngleEmbedding):
        ndims = (1,)
    elif isinstance(op, qml.operation.Channel):
        ndims = (0,) * len(op.data)
    elif not isinstance(ndims, tuple):
        ndims = None
    info = _CLASS_INFO[cls] = (kind, const, ndims)
    return info


def op_batch_size(op: qml.operation.Operator) -> int | None:
    """Broadcast size of an operator (parameters with one more dimension than declared).

    Channels do not report a broadcast size in PennyLane; here a channel with
    (B,) parameters is treated as broadcast over B.
    """
    ndims = (_CLASS_INFO.get(type(op)) or _class_info(op))[2]
    if ndims is None or len(ndims) != len(op.data):
        return op.batch_size
    for p, nd in zip(op.data, ndims):
        shape = getattr(p, "shape", None)
        if shape is not None and len(shape) > nd:
            return shape[0]
    return None


def inspect_ops(ops: Sequence[qml.operation.Operator]) -> tuple[tuple, int | None, torch.dtype | None]:
    """Cheap per-call scan: structure signature, broadcast batch size, real dtype.

    The signature captures everything the compiled plan depends on except the
    numeric parameter values.  Raises if operators disagree on the batch size.
    """
    sig = []
    batch = None
    dtype = None
    class_info = _CLASS_INFO
    for op in ops:
        cls = type(op)
        info = class_info.get(cls) or _class_info(op)
        kind = info[0]
        wires = _fast_wires(op, kind) if kind else tuple(op.wires.labels)
        if info[1]:
            sig.append((cls, wires))
            continue
        bs = op_batch_size(op)
        if bs is not None:
            if batch is None:
                batch = bs
            elif bs != batch:
                raise ValueError(f"inconsistent broadcast sizes: {batch} and {bs} ({op.name})")
        for p in op.data:
            if isinstance(p, torch.Tensor):
                dt = p.dtype
                if dt is torch.float64 or dt is torch.complex128:
                    dtype = torch.float64
                elif dtype is None and (dt is torch.float32 or dt is torch.complex64):
                    dtype = torch.float32
            elif isinstance(p, (np.ndarray, np.generic)) and p.dtype.itemsize >= 8 and p.dtype.kind in "fc":
                dtype = torch.float64  # numpy float64 / complex128 inputs keep their precision
        if cls is qml.AngleEmbedding:
            sig.append((cls, wires, bs, op.hyperparameters["rotation"], op.data[0].shape[-1]))
        else:
            sig.append((cls, wires, bs))
    return tuple(sig), batch, dtype


def _is_channel(op: qml.operation.Operator) -> bool:
    return isinstance(op, qml.operation.Channel)


def parse(ops: Sequence[qml.operation.Operator], n_wires: int) -> Circuit:
    """Build the IR of ``ops`` (called on plan-cache misses only)."""
    const_classes: list[type] = []
    const_rows: dict[type, int] = {}
    groups: dict[tuple, ParamGroup] = {}
    group_order: list[ParamGroup] = []
    items: list[Any] = []
    prep = None
    batch = None

    def const_row(cls: type) -> int:
        if cls not in const_rows:
            const_rows[cls] = len(const_classes)
            const_classes.append(cls)
        return const_rows[cls]

    pending: list[tuple[ParamGroup, int, int]] = []  # (group, index within group, wire)

    for i, op in enumerate(ops):
        wires = _wires_of(op)
        for w in wires:
            if not isinstance(w, numbers.Integral) or not 0 <= w < n_wires:
                raise ValueError(f"wire {w!r} of {op.name} is not an integer in range({n_wires})")
        wires = tuple(int(w) for w in wires)
        if op_batch_size(op) is not None:
            batch = op_batch_size(op)
        if isinstance(op, _STATE_PREP_TYPES):
            if i != 0:
                raise ValueError(f"{op.name} is only supported as the first operation")
            prep = (i, wires)
            continue
        if isinstance(op, qml.AngleEmbedding):
            rot = op.hyperparameters["rotation"]
            n_feat = op.data[0].shape[-1]
            g = ParamGroup(cls=rot, batched=op.batch_size is not None, kind="embed", op_indices=[i], size=n_feat)
            group_order.append(g)
            for f in range(n_feat):
                pending.append((g, f, wires[f]))
                items.append(None)  # filled in below, once the parameter rows are known
            continue
        if _is_channel(op):
            items.append(Channel(wires, i, op.name))
            continue
        if len(wires) == 1:
            if op.num_params == 0 and gates.is_constant_gate(op):
                items.append(G1(wires[0], Ref(False, const_row(type(op)))))
                continue
            batched = op.batch_size is not None
            kind = "ops" if op.name in gates.VECTORISED_1Q else "each"
            key = (type(op), batched, kind)
            g = groups.get(key)
            if g is None:
                g = ParamGroup(cls=type(op), batched=batched, kind=kind)
                groups[key] = g
                group_order.append(g)
            g.op_indices.append(i)
            pending.append((g, g.size, wires[0]))
            g.size += 1
            items.append(None)
            continue
        if op.num_params == 0 and gates.is_constant_gate(op):
            mono = gates.monomial_structure(gates.constant_matrix_np(type(op)))
            if mono is not None:
                items.append(Mono(wires, tuple(int(c) for c in mono[0]), tuple(complex(v) for v in mono[1])))
                continue
        items.append(Dense(wires, ("op", i, False)))

    # Assign table rows: shared table = constants, identity, shared groups;
    # batched table = batched groups.
    shared_groups = [g for g in group_order if not g.batched]
    batched_groups = [g for g in group_order if g.batched]
    row = len(const_classes) + 1
    for g in shared_groups:
        g.offset = row
        row += g.size
    n_shared = row
    row = 0
    for g in batched_groups:
        g.offset = row
        row += g.size
    n_batched = row

    it = iter(pending)
    for k, item in enumerate(items):
        if item is None:
            g, j, w = next(it)
            items[k] = G1(w, Ref(g.batched, g.offset + j))

    return Circuit(
        n_wires=n_wires,
        batch=batch,
        prep=prep,
        const_classes=const_classes,
        shared_groups=shared_groups,
        batched_groups=batched_groups,
        items=items,
        n_shared_rows=n_shared,
        n_batched_rows=n_batched,
    )
