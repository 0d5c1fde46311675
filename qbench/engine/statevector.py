"""Executing a compiled plan on a batched state vector.

The state is a contiguous complex tensor of shape (B, 2**n) in the layout
tracked by the plan.  Every step is an ordinary differentiable torch operation,
so gradients with respect to gate parameters and inputs come from autograd.

Per call, all gate matrices are produced up front in a handful of vectorised
operations (one ``compute_matrix`` call per gate class, one batched product per
fusion depth, one broadcast product per Kronecker factor); the program loop then
only issues one GEMM per chunk and one gather per re-layout/permutation.
"""

from __future__ import annotations

import functools
from typing import Callable, Sequence

import pennylane as qml
import torch
import torch.nn.functional as F

from . import gates
from .circuit import ParamGroup
from .params import replicate, stack_broadcast, stack_scalars
from .plan import BMM, DYN, GATHER, GATHER_PHASE, JUMP, MM, PHASE, Plan


@functools.lru_cache(maxsize=64)
def _constant_block(classes: tuple[type, ...], cdtype: torch.dtype) -> torch.Tensor:
    mats = [gates.constant_matrix(c, cdtype) for c in classes]
    mats.append(torch.eye(2, dtype=cdtype))
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
    parts = [_constant_block(tuple(c.const_classes), cdtype)]
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
        fused: dict[bool, torch.Tensor] = {}

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


def _chunk_views(plan: Plan, sources: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    return [sources[s] if r < 0 else sources[s][r] for s, r in plan.chunk_loc]


def initial_state(plan: Plan, ops: Sequence[qml.operation.Operator], copies: int) -> torch.Tensor:
    """The (B, 2**n) initial state (or vectorised density matrix) in the plan's layout."""
    c = plan.circuit
    if c.prep is None:
        return plan.zero_state
    rows = plan.batch
    x = torch.as_tensor(ops[c.prep[0]].data[0]).to(plan.cdtype)
    x = x.expand(rows, -1) if x.ndim == 1 else replicate(x, copies, dim=0)
    n_phys = c.n_wires
    k = len(c.prep[1])
    if k < n_phys:
        x = F.pad(x.unsqueeze(-1), (0, 2 ** (n_phys - k) - 1)).reshape(rows, -1)
    if plan.density:
        x = (x[:, :, None] * x.conj()[:, None, :]).reshape(rows, -1)
    return x


def _forward(plan: Plan, state: torch.Tensor, mats: Sequence[torch.Tensor], dyn, jump, saved: list | None):
    B = plan.batch
    N = 2**plan.n
    S = state
    for ins in plan.program:
        code = ins[0]
        if code == MM:
            if saved is not None:
                saved.append(S)
            S = torch.mm(S.view(-1, ins[2]), mats[ins[1]])
        elif code == GATHER:
            S = torch.gather(S.view(B, N), 1, ins[1])
        elif code == BMM:
            if saved is not None:
                saved.append(S)
            S = torch.bmm(S.view(B, -1, ins[2]), mats[ins[1]])
        elif code == DYN:
            S = torch.gather(S.view(B, N), 1, dyn[0][ins[1]]) * dyn[1][ins[1]]
        elif code == GATHER_PHASE:
            S = torch.gather(S.view(B, N), 1, ins[1]) * ins[2]
        elif code == PHASE:
            S = S.view(B, N) * ins[1]
        elif code == JUMP:
            S = jump(S.view(B, N), ins[1], ins[2])
    return S.view(B, N)


# Switch for A/B comparisons of the hand-written backward against plain autograd.
_USE_PROGRAM_NODE = True


class _Program(torch.autograd.Function):
    """The plan's instruction list as one autograd node with a hand-written backward.

    The backward walks the program in reverse: a GEMM ``out = S @ Gt`` gives
    ``dS = dout @ Gt^H`` and ``dGt = S^H @ dout``, a gather by a permutation is
    undone by the gather with the inverse permutation (instead of autograd's
    zero-fill + scatter-add), phases by their conjugates.  This avoids most of
    autograd's per-node overhead, which dominates for small states.

    If the backward itself is differentiated (``create_graph=True``), the
    program is recomputed with ordinary autograd ops from the saved inputs and
    differentiated with ``torch.autograd.grad``, so higher-order derivatives are
    exact.
    """

    @staticmethod
    def forward(ctx, plan, dyn, state, *sources):  # noqa: D401 - autograd signature
        mats = _chunk_views(plan, sources)
        saved: list[torch.Tensor] = []
        out = _forward(plan, state, mats, dyn, None, saved)
        ctx.plan = plan
        ctx.dyn = dyn
        ctx.saved_states = saved
        ctx.save_for_backward(state, *sources)
        return out

    @staticmethod
    def backward(ctx, grad):
        plan = ctx.plan
        dyn = ctx.dyn
        inputs = ctx.saved_tensors
        if torch.is_grad_enabled():
            state, sources = inputs[0], inputs[1:]
            out = _forward(plan, state, _chunk_views(plan, sources), dyn, None, None)
            wanted = [x for x, need in zip(inputs, ctx.needs_input_grad[2:]) if need]
            grads = iter(torch.autograd.grad(out, wanted, grad, create_graph=True, allow_unused=True))
            return (None, None) + tuple(next(grads) if need else None for need in ctx.needs_input_grad[2:])

        state, sources = inputs[0], inputs[1:]
        mats = _chunk_views(plan, sources)
        need_src = ctx.needs_input_grad[3:]
        mat_grads: list[torch.Tensor | None] = [None] * plan.n_chunks
        B = plan.batch
        N = 2**plan.n
        saved = ctx.saved_states
        k = len(saved)
        G = grad.contiguous()
        program = plan.program
        last = len(program) - 1
        for pos in range(last, -1, -1):
            ins = program[pos]
            code = ins[0]
            if code == MM or code == BMM:
                k -= 1
                cid, d = ins[1], ins[2]
                S_in = saved[k]
                want = need_src[plan.chunk_loc[cid][0]]
                if code == MM:
                    Gv = G.view(-1, d)
                    if want:
                        mat_grads[cid] = torch.mm(S_in.view(-1, d).mH, Gv)
                    G = torch.mm(Gv, mats[cid].mH)
                else:
                    Gv = G.view(B, -1, d)
                    if want:
                        mat_grads[cid] = torch.bmm(S_in.view(B, -1, d).mH, Gv)
                    G = torch.bmm(Gv, mats[cid].mH)
            elif code == GATHER:
                G = torch.gather(G.view(B, N), 1, ins[2])
            elif code == DYN:
                # the index is a permutation per row: scatter is its exact adjoint
                G = torch.empty(B, N, dtype=G.dtype).scatter_(1, dyn[0][ins[1]], G.view(B, N) * dyn[1][ins[1]].conj())
            elif code == GATHER_PHASE:
                G = torch.gather(G.view(B, N) * ins[4], 1, ins[3])
            elif code == PHASE:
                G = G.view(B, N) * ins[2]
        grad_state = G.view(B, N) if ctx.needs_input_grad[2] else None
        grad_sources: list[torch.Tensor | None] = []
        for si, src in enumerate(sources):
            if not need_src[si]:
                grad_sources.append(None)
                continue
            rows = [(r, cid) for cid, (s, r) in enumerate(plan.chunk_loc) if s == si]
            if len(rows) == 1 and rows[0][0] < 0:
                grad_sources.append(mat_grads[rows[0][1]])
            else:
                rows.sort()
                grad_sources.append(torch.stack([mat_grads[cid] for _, cid in rows]))
        return (None, None, grad_state, *grad_sources)


def run_program(
    plan: Plan,
    state: torch.Tensor,
    sources: Sequence[torch.Tensor],
    dyn: tuple[torch.Tensor, torch.Tensor] | None = None,
    jump: Callable[[torch.Tensor, int, int], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Apply the plan's instructions to ``state``; returns the final (B, 2**n) state.

    Uses the single-node :class:`_Program` when gradients are needed and the
    program has no quantum jumps (whose sampling depends on the state), plain
    autograd operations otherwise.
    """
    needs_grad = torch.is_grad_enabled() and (state.requires_grad or any(s.requires_grad for s in sources))
    if needs_grad and not plan.jumps and _USE_PROGRAM_NODE:
        return _Program.apply(plan, dyn, state, *sources)
    return _forward(plan, state, _chunk_views(plan, sources), dyn, jump, None)


def marginal_probs(plan: Plan, state: torch.Tensor) -> torch.Tensor:
    """Joint probabilities (B, 2**k) of the measured wires from a final state vector."""
    B = plan.batch
    probs = torch.view_as_real(state).square().sum(-1)
    layout = plan.final_layout
    measure = plan.measure
    k = len(measure)
    if layout[:k] == measure:
        return probs if k == plan.n else probs.view(B, 2**k, -1).sum(-1)
    full = probs.view((B,) + (2,) * plan.n)
    drop = tuple(1 + i for i, w in enumerate(layout) if w not in measure)
    kept = [w for w in layout if w in measure]
    if drop:
        full = full.sum(dim=drop)
    perm = (0,) + tuple(1 + kept.index(w) for w in measure)
    return full.permute(perm).reshape(B, 2**k)


def density_probs(plan: Plan, state: torch.Tensor) -> torch.Tensor:
    """Joint probabilities from a vectorised density matrix laid out for the diagonal."""
    B = plan.batch
    k = len(plan.measure)
    rest = plan.n // 2 - k
    rho = state.view(B, 2**k, 2**rest, 2**k, 2**rest)
    return torch.einsum("bijij->bi", rho).real
