"""Per-call construction of the chunk matrices of a plan.

All gate matrices are produced up front in a handful of vectorised operations:
one PennyLane ``compute_matrix`` call per gate class (on stacked parameters),
one batched product per fusion depth, and one broadcast product per Kronecker
factor, for every chunk of the circuit at once.  The results are returned
transposed (``G^T``) because the executor right-multiplies the state.
"""

from __future__ import annotations

import functools
from typing import Sequence

import pennylane as qml
import torch

from . import gates
from .circuit import ParamGroup
from .params import replicate, stack_broadcast, stack_scalars
from .plan import Plan


@functools.lru_cache(maxsize=64)
def _constant_block(classes: tuple[type, ...], cdtype: torch.dtype, device: torch.device) -> torch.Tensor:
    mats = [gates.constant_matrix(c, cdtype, device) for c in classes]
    mats.append(torch.eye(2, dtype=cdtype, device=device))
    return torch.stack(mats)


def group_matrices(
    g: ParamGroup,
    ops: Sequence[qml.operation.Operator],
    rdtype: torch.dtype,
    cdtype: torch.dtype,
    batch: int,
    copies: int,
) -> torch.Tensor:
    """Matrices of one parameter group: (size, 2, 2) or (size, batch*copies, 2, 2)."""
    cls = g.cls
    if g.kind == "embed":
        x = torch.as_tensor(ops[g.op_indices[0]].data[0]).to(rdtype)
        if not g.batched:
            return gates.vectorised_matrices(cls, [x]).to(cdtype)
        x = replicate(x, copies, dim=0)
        mats = gates.vectorised_matrices(cls, [x.t().reshape(-1)])
        return mats.reshape(g.size, -1, 2, 2).to(cdtype)
    if g.kind == "ops":
        n_par = len(ops[g.op_indices[0]].data)
        values = [p for i in g.op_indices for p in ops[i].data]
        if not g.batched:
            cols = stack_scalars(values, rdtype).view(g.size, n_par).unbind(1)
            return gates.vectorised_matrices(cls, cols).to(cdtype)
        stacked = stack_broadcast(values, batch, rdtype).view(g.size, n_par, batch)
        stacked = replicate(stacked, copies, dim=2)
        cols = [c.reshape(-1) for c in stacked.unbind(1)]
        return gates.vectorised_matrices(cls, cols).reshape(g.size, -1, 2, 2).to(cdtype)
    # "each": classes without a vectorised compute_matrix
    mats = torch.stack([torch.as_tensor(ops[i].matrix()).to(cdtype) for i in g.op_indices])
    if g.batched:
        mats = replicate(mats, copies, dim=1)
    return mats


def gate_tables(
    plan: Plan, ops: Sequence[qml.operation.Operator], rdtype: torch.dtype, batch: int, copies: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The shared (R, 2, 2) and batched (R', B, 2, 2) tables of single-qubit matrices."""
    c = plan.circuit
    cdtype = plan.cdtype
    parts = [_constant_block(tuple(c.const_classes), cdtype, torch.get_default_device())]
    parts += [group_matrices(g, ops, rdtype, cdtype, batch, copies) for g in c.shared_groups]
    shared = parts[0] if len(parts) == 1 else torch.cat(parts)
    batched = None
    if c.batched_groups:
        bparts = [group_matrices(g, ops, rdtype, cdtype, batch, copies) for g in c.batched_groups]
        batched = bparts[0] if len(bparts) == 1 else torch.cat(bparts)
    if plan.has_conj:
        shared = torch.cat([shared, shared.conj()])
        if batched is not None:
            batched = torch.cat([batched, batched.conj()])
    return shared, batched


def _fuse(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    # Product M_last @ ... @ M_first of every slot's gate sequence.
    fused = table[index[:, 0]]
    for m in range(1, index.shape[1]):
        fused = torch.matmul(table[index[:, m]], fused)
    return fused


def _kron_transposed(factors: torch.Tensor) -> torch.Tensor:
    """Kronecker products of transposed factors: (C, k, ..., 2, 2) -> (C, ..., d, d)."""
    x = factors.transpose(-1, -2)
    out = x[:, 0]
    for i in range(1, x.shape[1]):
        m = x[:, i]
        d = out.shape[-1]
        out = (out[..., :, None, :, None] * m[..., None, :, None, :]).reshape(*out.shape[:-2], 2 * d, 2 * d)
    return out


def _dense_matrix(plan: Plan, source: tuple, ops: Sequence[qml.operation.Operator], copies: int) -> torch.Tensor:
    cdtype = plan.cdtype
    op = ops[source[1]]
    if source[0] == "op":
        mat = torch.as_tensor(op.matrix()).to(cdtype)
        if source[2]:
            mat = mat.conj()
        if mat.ndim == 3:
            mat = replicate(mat, copies, dim=0)
        return mat
    # ("superop", i): sum_i K_i (x) conj(K_i) on (row wires, column wires)
    ks = gates.kraus_matrices(op, cdtype, None)
    d = ks.shape[-1]
    if ks.ndim == 3:
        return torch.einsum("iab,icd->acbd", ks, ks.conj()).reshape(d * d, d * d)
    return torch.einsum("ixab,ixcd->xacbd", ks, ks.conj()).reshape(-1, d * d, d * d)


def chunk_sources(
    plan: Plan, ops: Sequence[qml.operation.Operator], rdtype: torch.dtype, batch: int, copies: int
) -> list[torch.Tensor]:
    """Per-call chunk matrices (transposed, G^T), grouped as in ``plan.chunk_loc``.

    One (chunks, [B,] d, d) tensor per kron group, then one tensor per dense chunk.
    """
    sources: list[torch.Tensor] = []
    if plan.kron_groups:
        shared, batched = gate_tables(plan, ops, rdtype, batch, copies)
        fused: dict[tuple[bool, bool], torch.Tensor] = {}

        def table(is_batched: bool, direct: bool) -> torch.Tensor:
            if is_batched:
                parts = [shared.unsqueeze(1).expand(-1, plan.batch, -1, -1)]
                if batched is not None:
                    parts.append(batched)
                full = torch.cat(parts)
                return full if direct else _fuse(full, plan.batched_slot_index)
            return shared if direct else _fuse(shared, plan.shared_slot_index)

        for g in plan.kron_groups:
            direct = g.direct_index is not None
            key = (g.batched, direct)
            if key not in fused:
                fused[key] = table(g.batched, direct)
            factors = fused[key][g.direct_index if direct else g.index]
            sources.append(_kron_transposed(factors))
    for _, source, _ in plan.dense_chunks:
        sources.append(_dense_matrix(plan, source, ops, copies).transpose(-1, -2))
    return sources
