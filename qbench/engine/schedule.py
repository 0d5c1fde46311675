"""Scheduling IR items into stages and partitioning single-qubit stages into chunks.

Items are placed "as soon as possible" into *stages* of three kinds: ``U1``
(single-qubit gates on distinct wires, fused per wire), ``MONO``
(parameter-free signed permutations such as CNOT/CZ/SWAP, composed into one
map, optionally followed by sampled Pauli insertions) and ``OTHER`` (dense
multi-qubit matrices, quantum jumps).  An item may move earlier past stages
that do not touch its wires (they commute), which is what lets a whole layer
of rotations share one stage even when interleaved with entanglers on other
wires.

A ``U1`` stage is applied as a few dense *chunk* matrices, each the Kronecker
product of the fused 2x2 matrices of adjacent wires (identity where a wire has
no gate).  One chunk costs a single GEMM over the state, far cheaper on CPU
than k separate 2x2 contractions (a GEMM with inner dimension 2 runs at a few
percent of peak).  :func:`partition` picks the chunks with a small dynamic
program over a measured cost model.
"""

from __future__ import annotations

from typing import Any, Sequence

from .circuit import G1, Dense, Mono, Pauli, Ref

# Relative cost (forward, microseconds per 16k complex amplitudes) of a
# trailing GEMM with inner dimension d, measured with torch on a 2-core x86 VM;
# only the ratios matter for the partition choice.
GEMM_COST = {2: 110.0, 4: 36.0, 8: 30.0, 16: 40.0, 32: 70.0, 64: 160.0, 128: 320.0}
GATHER_COST = 20.0
OP_OVERHEAD = 10.0
# A chunk with per-example gates (noise drawn per example, batched inputs) also builds one d x d Kronecker
# product per example, and differentiates through it in training: cost per 16k built entries, measured
# like GEMM_COST (forward + backward). Without this term the partition picks d = 16 chunks whose
# per-example products cost more than the GEMMs they save (noise-layer training was 1.8x slower).
KRON_COST = 150.0
MAX_CHUNK = 7


class Stage:
    """Items applied together: single-qubit gates on distinct wires (``U1``), a composed
    signed permutation followed by Pauli insertions (``MONO``), or one other item (``OTHER``)."""

    __slots__ = ("kind", "slots", "maps", "paulis", "item")

    def __init__(self, kind: str):
        self.kind = kind
        self.slots: dict[int, list[Ref]] = {}
        self.maps: list[Mono] = []
        self.paulis: dict[int, int] = {}
        self.item: Any = None


def schedule(items: Sequence[Any], n: int) -> list[Stage]:
    """Place IR items into stages, as early as commutation allows."""
    stages: list[Stage] = []
    last = [-1] * n

    def first_after(t: int, kind: str) -> int:
        for s in range(t + 1, len(stages)):
            if stages[s].kind == kind:
                return s
        stages.append(Stage(kind))
        return len(stages) - 1

    for item in items:
        if isinstance(item, G1):
            t = last[item.wire]
            s = t if t >= 0 and stages[t].kind == "U1" else first_after(t, "U1")
            stages[s].slots.setdefault(item.wire, []).append(item.ref)
            last[item.wire] = s
        elif isinstance(item, Mono):
            t = max(last[w] for w in item.wires)
            if t >= 0 and stages[t].kind == "MONO" and not set(stages[t].paulis) & set(item.wires):
                s = t
            else:
                s = first_after(t, "MONO")
            stages[s].maps.append(item)
            for w in item.wires:
                last[w] = s
        elif isinstance(item, Pauli):
            t = last[item.wire]
            if t >= 0 and stages[t].kind == "MONO" and item.wire not in stages[t].paulis:
                s = t
            else:
                s = first_after(t, "MONO")
            stages[s].paulis[item.wire] = item.point
            last[item.wire] = s
        else:
            stage = Stage("OTHER")
            stage.item = item
            stages.append(stage)
            wires = item.wires if isinstance(item, Dense) else (item.wire,)
            for w in wires:
                last[w] = len(stages) - 1
    return stages


def partition(gated: set[int], batched: set[int], n: int, amps: int) -> list[tuple[int, ...]]:
    """Split wires 0..n-1 into contiguous chunks minimising the modelled cost.

    Chunks without gated wires are dropped (not applied).
    """
    scale = amps / 16384.0
    best = [0.0] + [float("inf")] * n
    choice = [0] * (n + 1)
    for i in range(1, n + 1):
        for k in range(1, min(MAX_CHUNK, i) + 1):
            seg = range(i - k, i)
            if any(w in gated for w in seg):
                gemm = GEMM_COST.get(2**k, 2.0 ** k * 2.0)
                kron = 0.0
                if any(w in batched for w in seg):
                    gemm *= 1.3
                    kron = KRON_COST * 4.0**k / 2.0**n
                cost = 2 * OP_OVERHEAD + scale * (gemm + GATHER_COST + kron)
            else:
                cost = 0.0
            if best[i - k] + cost < best[i]:
                best[i] = best[i - k] + cost
                choice[i] = k
    chunks = []
    i = n
    while i > 0:
        k = choice[i]
        seg = tuple(range(i - k, i))
        if any(w in gated for w in seg):
            chunks.append(seg)
        i -= k
    return chunks[::-1]
