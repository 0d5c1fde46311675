"""Collecting gate parameters from operators into stacked tensors.

Models usually build their operators from one weight tensor, e.g.
``qml.Rot(W[l, q, 0], W[l, q, 1], W[l, q, 2], wires=q)``.  Stacking those
0-d views with ``torch.stack`` is correct but costly in the backward pass (one
``SelectBackward`` per scalar, each materialising a zero tensor of W's shape).
When every scalar of a group is a 0-d view of the same contiguous base tensor,
:func:`stack_scalars` instead gathers them from the base with a single index
operation: autograd then routes the gradient straight into the base (and from
there to whatever produced it), which is mathematically identical.
"""

from __future__ import annotations

import operator
from itertools import repeat
from typing import Any, Sequence

import torch


def _base_gather(values: Sequence[Any]) -> torch.Tensor | None:
    first = values[0]
    if not isinstance(first, torch.Tensor) or first.ndim != 0:
        return None
    base = first._base
    if base is None or not base.is_contiguous() or base.dtype != first.dtype:
        return None
    if first.requires_grad != base.requires_grad:
        return None  # view made under no_grad: keep its (absent) graph semantics
    dtype = first.dtype
    requires_grad = first.requires_grad
    try:
        # C-level maps: this runs for every scalar parameter on every call.
        if not all(map(operator.is_, map(_BASE, values), repeat(base))):
            return None
        if not all(map(operator.is_, map(_DTYPE, values), repeat(dtype))) or any(map(_NDIM, values)):
            return None
        if not all(map(operator.is_, map(_REQUIRES_GRAD, values), repeat(requires_grad))):
            return None
        offsets = list(map(torch.Tensor.storage_offset, values))
    except (AttributeError, TypeError):  # a python number among the values
        return None
    index = torch.tensor(offsets)
    if base.storage_offset():
        index -= base.storage_offset()
    return base.reshape(-1)[index]


_BASE = operator.attrgetter("_base")
_DTYPE = operator.attrgetter("dtype")
_NDIM = operator.attrgetter("ndim")
_REQUIRES_GRAD = operator.attrgetter("requires_grad")


def stack_scalars(values: Sequence[Any], dtype: torch.dtype) -> torch.Tensor:
    """Stack python numbers / 0-d tensors into a 1-D tensor of ``dtype``.

    Differentiable with respect to every tensor in ``values``.
    """
    gathered = _base_gather(values)
    if gathered is not None:
        return gathered.to(dtype)
    if not any(isinstance(v, torch.Tensor) for v in values):
        return torch.tensor(values, dtype=dtype)
    return torch.stack([torch.as_tensor(v).to(dtype) for v in values])


def stack_broadcast(values: Sequence[Any], batch: int, dtype: torch.dtype) -> torch.Tensor:
    """Stack scalars and (batch,) tensors into a (len(values), batch) tensor."""
    rows = []
    for v in values:
        v = torch.as_tensor(v).to(dtype)
        rows.append(v if v.ndim == 1 else v.expand(batch))
    return torch.stack(rows)


def replicate(x: torch.Tensor, times: int, dim: int = 0) -> torch.Tensor:
    """Repeat each entry along ``dim`` ``times`` times consecutively (trajectory copies)."""
    if times == 1:
        return x
    return x.repeat_interleave(times, dim=dim)
