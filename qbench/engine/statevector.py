"""Executing a compiled plan on a batched state vector.

The state is a contiguous complex tensor of shape (B, 2**n) in the layout
tracked by the plan.  The program loop issues one GEMM per chunk and one gather
per re-layout/permutation.  With gradients enabled, the whole program is one
autograd node (:class:`_Program`) whose backward walks the instructions in
reverse; gradients then flow on through the matrix construction
(:mod:`.matrices`) to the gate parameters and inputs by ordinary autograd.
"""

from __future__ import annotations

from typing import Callable, Sequence

import pennylane as qml
import torch
import torch.nn.functional as F

from .params import replicate
from .plan import BMM, DYN, GATHER, GATHER_PHASE, JUMP, MM, PHASE, Plan


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
