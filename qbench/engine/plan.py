"""Compiling the IR into an execution plan (done once per circuit structure).

After scheduling (:mod:`.schedule`), the emitter turns stages into a program
of GEMMs and gathers.  A chunk is applied as ``state.view(-1, d) @ G^T``, so
its wires must be the trailing axes of the state; they are brought there by a
per-example ``gather`` of the flattened state, and every such re-layout is
merged with the permutation of the neighbouring ``MONO`` stage.  A layer
"rotations on all wires + CNOT ring" on 8 qubits thus costs two GEMMs and two
gathers.  The plan tracks the layout of the state after every instruction, and
keeps everything that does not depend on parameter values (index tables,
inverse permutations, phases) precomputed.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from . import layout as lay
from .circuit import Circuit, Dense, Jump, Mono, Ref
from .schedule import Stage, partition, schedule

# Instruction opcodes of the plan program.
MM, BMM, GATHER, GATHER_PHASE, PHASE, DYN, JUMP = range(7)


@dataclass
class KronGroup:
    """Chunks with the same size and batchedness, built in one vectorised pass."""

    batched: bool
    k: int
    slots: list[list[int]] = field(default_factory=list)  # per chunk: slot index per wire
    chunk_ids: list[int] = field(default_factory=list)
    index: torch.Tensor | None = None  # (chunks, k) slot indices
    direct_index: torch.Tensor | None = None  # (chunks, k) gate-table rows when no fusion is needed


@dataclass
class DynGather:
    """A gather followed by sampled Pauli insertions (trajectories).

    All arrays are over output positions: the static part is
    ``tmp[p] = phase[p] * old[index[p]]``; a Pauli string with bit-flip mask
    ``x`` and phase mask ``z`` (in output-position bits) then gives
    ``new[p] = (-i)^{#Y} (-1)^{popcount(p & z)} tmp[p ^ x]``.
    """

    index: np.ndarray
    phase: np.ndarray | None  # None if trivial
    points: list[tuple[int, int]]  # (position-space bit weight, pauli point id)


@dataclass
class Plan:
    """Everything needed to run a circuit structure on new parameter values."""

    circuit: Circuit
    n: int  # register size (2 * n_wires for the density method)
    batch: int  # rows of the state (batch * trajectories)
    cdtype: torch.dtype
    density: bool
    measure: tuple[int, ...]
    init_layout: tuple[int, ...]
    final_layout: tuple[int, ...]
    program: list[tuple]
    n_chunks: int
    shared_slots: list[list[Ref]]
    batched_slots: list[list[Ref]]
    kron_groups: list[KronGroup]
    dense_chunks: list[tuple[int, tuple, tuple[int, ...]]]  # (chunk id, source, wires)
    has_conj: bool
    dyn: list[DynGather]
    n_points: int
    jumps: list[tuple[int, int]]  # (op index, wire)
    pauli_points: list[tuple[int, str]] = field(default_factory=list)  # (op index, channel name)
    # tensors prepared by ``finalize``
    shared_slot_index: torch.Tensor | None = None
    batched_slot_index: torch.Tensor | None = None
    dyn_tables: dict[str, torch.Tensor] | None = None
    zero_state: torch.Tensor | None = None
    chunk_loc: list[tuple[int, int]] = field(default_factory=list)  # chunk id -> (source, row or -1)
    # the same plan for fewer rows, by row count (row_slices.rebatched)
    rebatched: dict[int, "Plan"] = field(default_factory=dict)


class _Emitter:
    """Turns stages into a program, tracking the state layout."""

    def __init__(self, n: int, batch: int, init_layout: tuple[int, ...], identity_row: int):
        self.n = n
        self.batch = batch
        self.layout = init_layout
        self.program: list[tuple] = []
        self.pending: dict | None = None
        self.shared_slots: list[list[Ref]] = [[Ref(False, identity_row)]]
        self.batched_slots: list[list[Ref]] = [[Ref(False, identity_row)]]
        self.kron: dict[tuple[bool, int], KronGroup] = {}
        self.dense: list[tuple[int, tuple, tuple[int, ...]]] = []
        self.n_chunks = 0
        self.dyn: list[DynGather] = []
        self.jumps: list[tuple[int, int]] = []

    # -- gathers -----------------------------------------------------------
    def _open(self) -> dict:
        if self.pending is None:
            self.pending = {"lin": self.layout, "map": lay.identity_map(self.n), "points": None}
        return self.pending

    def gather_to(self, new_layout: tuple[int, ...]) -> None:
        """Request a re-layout (merged into the pending gather, if any)."""
        self._open()
        self.layout = new_layout

    def add_static(self, maps: Sequence[Mono]) -> None:
        """Compose parameter-free monomial gates into the pending gather."""
        if self.pending is not None and self.pending["points"]:
            self.flush()
        p = self._open()
        for m in maps:
            p["map"] = lay.compose(p["map"], lay.expand_monomial(m.wires, m.cols, m.vals, self.n))

    def add_paulis(self, points: dict[int, int]) -> None:
        """Attach sampled Pauli insertions (wire -> point id) to the pending gather."""
        if self.pending is not None and self.pending["points"]:
            self.flush()
        self._open()["points"] = sorted(points.items())

    def flush(self) -> None:
        """Emit the pending gather (static, phase-only, or dynamic) into the program."""
        p = self.pending
        if p is None:
            return
        self.pending = None
        n = self.n
        src, phase = p["map"]
        c2p_in = lay.canonical_to_pos(p["lin"], n)
        p2c_out = lay.pos_to_canonical(self.layout, n)
        trivial_phase = np.allclose(phase, 1.0)
        idx = c2p_in[src[p2c_out]]
        ph = phase[p2c_out]
        if p["points"]:
            weights = [(1 << (n - 1 - self.layout.index(w)), point) for w, point in p["points"]]
            self.dyn.append(DynGather(index=idx, phase=None if trivial_phase else ph, points=weights))
            self.program.append((DYN, len(self.dyn) - 1))
            return
        identity = np.array_equal(idx, np.arange(idx.size))
        if identity and trivial_phase:
            return
        if identity:
            self.program.append((PHASE, ph))
        elif trivial_phase:
            self.program.append((GATHER, idx))
        else:
            self.program.append((GATHER_PHASE, idx, ph))

    # -- chunks ------------------------------------------------------------
    def _make_trailing(self, wires: tuple[int, ...], exact_order: bool) -> tuple[int, ...]:
        k = len(wires)
        tail = self.layout[len(self.layout) - k :]
        if (tail == wires) if exact_order else (set(tail) == set(wires)):
            if self.pending is not None and not exact_order:
                # a gather is pending anyway: normalise the chunk order for free
                self.gather_to(tuple(w for w in self.layout if w not in wires) + wires)
            return self.layout[len(self.layout) - k :]
        self.gather_to(tuple(w for w in self.layout if w not in wires) + wires)
        return wires

    def apply_kron_chunk(self, wires: tuple[int, ...], slots: dict[int, list[Ref]]) -> None:
        """Emit the GEMM of one chunk (Kronecker product of fused per-wire matrices)."""
        order = self._make_trailing(wires, exact_order=False)
        self.flush()
        batched = any(r.batched for w in order for r in slots.get(w, ()))
        table = self.batched_slots if batched else self.shared_slots
        slot_ids = []
        for w in order:
            refs = slots.get(w)
            if refs is None:
                slot_ids.append(0)
            else:
                table.append(list(refs))
                slot_ids.append(len(table) - 1)
        key = (batched, len(order))
        group = self.kron.setdefault(key, KronGroup(batched=batched, k=len(order)))
        cid = self.n_chunks
        self.n_chunks += 1
        group.slots.append(slot_ids)
        group.chunk_ids.append(cid)
        self.program.append((BMM if batched else MM, cid, 2 ** len(order)))

    def apply_dense(self, wires: tuple[int, ...], source: tuple, batched: bool) -> None:
        """Emit the GEMM of an operator applied as a dense matrix on ``wires`` (in that order)."""
        self._make_trailing(wires, exact_order=True)
        self.flush()
        cid = self.n_chunks
        self.n_chunks += 1
        self.dense.append((cid, source, wires))
        self.program.append((BMM if batched else MM, cid, 2 ** len(wires)))

    def apply_jump(self, op_index: int, wire: int) -> None:
        """Emit a quantum-jump step on ``wire``."""
        self.flush()
        self.jumps.append((op_index, wire))
        self.program.append((JUMP, len(self.jumps) - 1, self.layout.index(wire)))

    def u1_stage(self, stage: Stage, amps: int) -> None:
        """Emit the chunks of a single-qubit stage."""
        gated = set(stage.slots)
        batched = {w for w, refs in stage.slots.items() if any(r.batched for r in refs)}
        chunks = partition(gated, batched, self.n, amps)
        if self.pending is None:
            # start with a chunk that is already trailing, if any (saves a gather)
            for i, c in enumerate(chunks):
                if set(self.layout[len(self.layout) - len(c) :]) == set(c):
                    chunks.insert(0, chunks.pop(i))
                    break
        for c in chunks:
            self.apply_kron_chunk(c, stage.slots)


def compile_plan(
    circuit: Circuit,
    items: Sequence[Any],
    n: int,
    batch: int,
    cdtype: torch.dtype,
    measure: Sequence[int],
    init_layout: tuple[int, ...],
    density: bool,
    dense_batched: dict[int, bool],
    n_points: int,
) -> Plan:
    """Schedule, chunk and lay out ``items`` on an ``n``-wire register.

    ``dense_batched`` tells, per item position of a ``Dense`` item, whether its
    matrix is per-example.  For the density method ``measure`` refers to the
    physical wires (0..n/2-1) and the final layout is arranged for diagonal
    extraction.
    """
    stages = schedule(items, n)
    em = _Emitter(n, batch, init_layout, circuit.identity_row)
    amps = batch * 2**n
    dense_pos = {id(it): pos for pos, it in enumerate(items) if isinstance(it, Dense)}
    for st in stages:
        if st.kind == "U1":
            em.u1_stage(st, amps)
        elif st.kind == "MONO":
            if st.maps:
                em.add_static(st.maps)
            if st.paulis:
                em.add_paulis(st.paulis)
        elif isinstance(st.item, Dense):
            em.apply_dense(st.item.wires, st.item.source, dense_batched[dense_pos[id(st.item)]])
        elif isinstance(st.item, Jump):
            em.apply_jump(st.item.op_index, st.item.wire)
        else:  # pragma: no cover
            raise TypeError(f"unexpected item {st.item!r}")

    measure = tuple(measure)
    if density:
        half = n // 2
        rest = tuple(w for w in range(half) if w not in measure)
        target = measure + rest + tuple(w + half for w in measure + rest)
        if em.layout != target:
            em.gather_to(target)
    elif em.pending is not None:
        em.gather_to(measure + tuple(w for w in em.layout if w not in measure))
    em.flush()

    has_conj = any(r.conj for slots in (em.shared_slots, em.batched_slots) for seq in slots for r in seq)
    plan = Plan(
        circuit=circuit,
        n=n,
        batch=batch,
        cdtype=cdtype,
        density=density,
        measure=measure,
        init_layout=init_layout,
        final_layout=em.layout,
        program=em.program,
        n_chunks=em.n_chunks,
        shared_slots=em.shared_slots,
        batched_slots=em.batched_slots,
        kron_groups=list(em.kron.values()),
        dense_chunks=em.dense,
        has_conj=has_conj,
        dyn=em.dyn,
        n_points=n_points,
        jumps=em.jumps,
    )
    finalize(plan)
    return plan


def _slot_rows(plan: Plan, slots: list[list[Ref]], batched_table: bool) -> torch.Tensor:
    """Row indices (padded with the identity) of every slot's gate sequence."""
    c = plan.circuit
    ns = c.n_shared_rows
    ns_full = ns * (2 if plan.has_conj else 1)
    nb = c.n_batched_rows

    def row(r: Ref) -> int:
        if not r.batched:
            return r.row + (ns if r.conj else 0)
        if not batched_table:  # pragma: no cover - guarded by construction
            raise AssertionError("batched gate in a shared slot")
        return ns_full + r.row + (nb if r.conj else 0)

    length = max(len(s) for s in slots)
    ident = c.identity_row
    rows = [[row(r) for r in s] + [ident] * (length - len(s)) for s in slots]
    return torch.tensor(rows, dtype=torch.long)


def _inverse(idx: np.ndarray) -> np.ndarray:
    inv = np.empty_like(idx)
    inv[idx] = np.arange(idx.size, dtype=idx.dtype)
    return inv


def finalize(plan: Plan) -> None:
    """Convert the numpy parts of a plan into tensors ready for execution.

    Gathers get their inverse permutation and conjugated phases (for the
    hand-written backward pass); chunk ids get their location in the per-call
    matrix sources; kron groups whose slots hold a single gate index the gate
    table directly (no fusion product needed).
    """
    N = 2**plan.n
    B = plan.batch
    cd = plan.cdtype
    program = []
    for ins in plan.program:
        if ins[0] == GATHER:
            idx = ins[1]
            program.append((GATHER, torch.as_tensor(idx).expand(B, N), torch.as_tensor(_inverse(idx)).expand(B, N)))
        elif ins[0] == GATHER_PHASE:
            idx, ph = ins[1], ins[2]
            program.append(
                (
                    GATHER_PHASE,
                    torch.as_tensor(idx).expand(B, N),
                    torch.as_tensor(ph, dtype=cd),
                    torch.as_tensor(_inverse(idx)).expand(B, N),
                    torch.as_tensor(np.conj(ph), dtype=cd),
                )
            )
        elif ins[0] == PHASE:
            program.append((PHASE, torch.as_tensor(ins[1], dtype=cd), torch.as_tensor(np.conj(ins[1]), dtype=cd)))
        else:
            program.append(ins)
    plan.program = program
    plan.shared_slot_index = _slot_rows(plan, plan.shared_slots, batched_table=False)
    if len(plan.batched_slots) > 1:
        plan.batched_slot_index = _slot_rows(plan, plan.batched_slots, batched_table=True)
    loc: list[tuple[int, int]] = [(-1, -1)] * plan.n_chunks
    for gi, g in enumerate(plan.kron_groups):
        g.index = torch.tensor(g.slots, dtype=torch.long)
        slot_index = plan.batched_slot_index if g.batched else plan.shared_slot_index
        if slot_index.shape[1] == 1:
            g.direct_index = slot_index[:, 0][g.index]
        for j, cid in enumerate(g.chunk_ids):
            loc[cid] = (gi, j)
    for di, (cid, _, _) in enumerate(plan.dense_chunks):
        loc[cid] = (len(plan.kron_groups) + di, -1)
    plan.chunk_loc = loc
    if plan.dyn:
        index = np.stack([d.index for d in plan.dyn])
        tables = {
            "index": torch.as_tensor(index),
            "inverse": torch.as_tensor(np.stack([_inverse(i) for i in index])),
            "arange": torch.arange(N),
        }
        if any(d.phase is not None for d in plan.dyn):
            ph = np.stack([d.phase if d.phase is not None else np.ones(N) for d in plan.dyn])
            tables["phase"] = torch.as_tensor(ph, dtype=cd)
        gather_of_point = np.zeros(plan.n_points, dtype=np.int64)
        weight_of_point = np.zeros(plan.n_points, dtype=np.int64)
        for g, d in enumerate(plan.dyn):
            for weight, point in d.points:
                gather_of_point[point] = g
                weight_of_point[point] = weight
        tables["gather_of_point"] = torch.as_tensor(gather_of_point)
        tables["weight_of_point"] = torch.as_tensor(weight_of_point)
        plan.dyn_tables = tables
    if plan.circuit.prep is None:
        zero = torch.zeros(B, N, dtype=cd)
        zero[:, 0] = 1
        plan.zero_state = zero


class PlanCache:
    """A small LRU cache of compiled plans keyed by circuit structure."""

    def __init__(self, maxsize: int = 128):
        self.maxsize = maxsize
        self._data: OrderedDict = OrderedDict()

    def get(self, key: Any) -> Plan | None:
        """Return the cached plan for ``key`` (and mark it recently used)."""
        plan = self._data.get(key)
        if plan is not None:
            self._data.move_to_end(key)
        return plan

    def put(self, key: Any, plan: Plan) -> None:
        """Store ``plan`` under ``key``, evicting the least recently used entry."""
        self._data[key] = plan
        if len(self._data) > self.maxsize:
            self._data.popitem(last=False)

    def clear(self) -> None:
        """Drop every cached plan."""
        self._data.clear()
