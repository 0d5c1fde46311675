"""Index arithmetic for state layouts and monomial (signed-permutation) maps.

The state is a contiguous tensor of shape (B, 2**n) whose trailing 2**n index
enumerates the wires in some order, the *layout* (a tuple of wire labels, most
significant first).  The *canonical* index of a basis state uses wire 0 as the
most significant bit (PennyLane's convention).  A monomial map is stored as two
arrays over canonical indices, ``new[j] = phase[j] * old[src[j]]``.
"""

from __future__ import annotations

import functools
from typing import Sequence

import numpy as np


@functools.lru_cache(maxsize=256)
def pos_to_canonical(layout: tuple[int, ...], n: int) -> np.ndarray:
    """Canonical index of every position of a state stored in ``layout`` order."""
    pos = np.arange(2**n, dtype=np.int64)
    can = np.zeros_like(pos)
    for k, w in enumerate(layout):
        can |= ((pos >> (n - 1 - k)) & 1) << (n - 1 - w)
    return can


@functools.lru_cache(maxsize=256)
def canonical_to_pos(layout: tuple[int, ...], n: int) -> np.ndarray:
    """Position in ``layout`` order of every canonical index (inverse of the above)."""
    p2c = pos_to_canonical(layout, n)
    inv = np.empty_like(p2c)
    inv[p2c] = np.arange(p2c.size, dtype=np.int64)
    return inv


def identity_map(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The identity monomial map on ``n`` wires."""
    return np.arange(2**n, dtype=np.int64), np.ones(2**n, dtype=np.complex128)


def expand_monomial(
    wires: Sequence[int], cols: Sequence[int], vals: Sequence[complex], n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Lift a k-qubit monomial gate (``new[r] = vals[r] old[cols[r]]``) to ``n`` wires."""
    k = len(wires)
    j = np.arange(2**n, dtype=np.int64)
    local = np.zeros_like(j)
    mask = 0
    for i, w in enumerate(wires):
        local |= ((j >> (n - 1 - w)) & 1) << (k - 1 - i)
        mask |= 1 << (n - 1 - w)
    cols = np.asarray(cols, dtype=np.int64)[local]
    src = j & ~mask
    for i, w in enumerate(wires):
        src |= ((cols >> (k - 1 - i)) & 1) << (n - 1 - w)
    phase = np.asarray(vals, dtype=np.complex128)[local]
    return src, phase


def compose(
    first: tuple[np.ndarray, np.ndarray], second: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Monomial map of applying ``first`` then ``second``."""
    src1, ph1 = first
    src2, ph2 = second
    return src1[src2], ph2 * ph1[src2]


def wire_bit(w: int, n: int) -> int:
    """Bit weight of wire ``w`` in a canonical index."""
    return 1 << (n - 1 - w)
