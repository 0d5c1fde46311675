"""Exact density-matrix simulation by vectorisation on a doubled register.

A density matrix rho on n wires, stored row-major, is a vector on 2n wires:
wires 0..n-1 index rows, wires n..2n-1 index columns.  Then

* a gate U on wires W acts as U on W and conj(U) on W + n (rho -> U rho U^dag);
* a channel with Kraus operators K_i acts as the "superoperator"
  sum_i K_i (x) conj(K_i) on W + (W + n).

So the state-vector planner and executor run unchanged on 2n wires (with
per-wire fusion, chunked GEMMs and merged permutations), and probabilities are
read from the diagonal.  Memory is B * 4**n complex numbers: meant for small
circuits and for verification.
"""

from __future__ import annotations

from typing import Any, Sequence

from .circuit import G1, Channel, Dense, Mono


def lower(items: Sequence[Any], n: int) -> list[Any]:
    """Double every item onto the 2n-wire register (channels become superoperators)."""
    out: list[Any] = []
    for item in items:
        if isinstance(item, G1):
            out.append(item)
            out.append(G1(item.wire + n, item.ref._replace(conj=True)))
        elif isinstance(item, Mono):
            out.append(item)
            out.append(Mono(tuple(w + n for w in item.wires), item.cols, tuple(v.conjugate() for v in item.vals)))
        elif isinstance(item, Dense):
            out.append(item)
            out.append(Dense(tuple(w + n for w in item.wires), (item.source[0], item.source[1], True)))
        elif isinstance(item, Channel):
            wires = item.wires + tuple(w + n for w in item.wires)
            out.append(Dense(wires, ("superop", item.op_index)))
        else:  # pragma: no cover
            raise TypeError(f"unexpected item {item!r}")
    return out


def init_layout(prep_wires: Sequence[int] | None, n: int) -> tuple[int, ...]:
    """Layout of the initial vectorised density matrix psi (x) conj(psi)."""
    first = tuple(prep_wires) if prep_wires else ()
    psi = first + tuple(w for w in range(n) if w not in first)
    return psi + tuple(w + n for w in psi)
