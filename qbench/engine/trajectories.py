"""Monte Carlo wave-function (quantum trajectory) simulation of noisy circuits.

Every example is replicated ``n_trajectories`` times and the whole batch goes
through one state-vector pass.  Channels are unravelled as follows.

* Pauli channels (``DepolarizingChannel``, ``BitFlip``, ``PhaseFlip``) are
  mixed-unitary: for each copy a Pauli I/X/Y/Z is drawn with the channel's
  probabilities (e.g. 1-p, p/3, p/3, p/3) and inserted.  A Pauli string is a
  signed permutation, so a whole layer of insertions is merged into the gather
  the plan already performs for the layer's CNOTs: the per-copy gather index and
  phase are computed in a few vectorised integer operations for all layers at
  once, and the chunk matrices stay shared (no per-copy GEMMs).  The estimate is
  unbiased and its gradient is the exact gradient of each sampled circuit.
* Other channels (e.g. ``AmplitudeDamping``) use the quantum-jump unravelling:
  Kraus operator K_i is chosen with probability ||K_i psi||^2 and the state is
  renormalised.  The branch choice is not differentiated: the gradient is the
  pathwise gradient given the sampled branches (the score-function term of the
  branch probabilities is omitted), so it is a biased gradient estimate for
  non-unital channels.
* Pauli-channel parameters receive no gradient (they only set sampling
  probabilities); quantum-jump Kraus operators do enter the pathwise gradient.

All randomness is drawn from the caller's ``torch.Generator``.
"""

from __future__ import annotations

from typing import Any, Sequence

import pennylane as qml
import torch

from . import gates
from .circuit import Channel, Jump, Pauli
from .params import replicate, stack_broadcast, stack_scalars
from .plan import Plan


def lower(items: Sequence[Any]) -> tuple[list[Any], list[tuple[int, str]]]:
    """Replace channels by Pauli insertions or quantum jumps.

    Returns the new items and, per Pauli point id, ``(op index, channel name)``.
    """
    out: list[Any] = []
    points: list[tuple[int, str]] = []
    for item in items:
        if isinstance(item, Channel):
            if len(item.wires) != 1:
                raise ValueError(f"trajectories support single-qubit channels only, got {item.name} (use method=\"density\")")
            if item.name in gates.PAULI_CHANNELS:
                out.append(Pauli(item.wires[0], len(points)))
                points.append((item.op_index, item.name))
            else:
                out.append(Jump(item.wires[0], item.op_index))
        else:
            out.append(item)
    return out, points


def _point_probs(
    points: Sequence[tuple[int, str]],
    ops: Sequence[qml.operation.Operator],
    batch: int,
    copies: int,
    rdtype: torch.dtype,
    per_example: bool,
) -> torch.Tensor:
    """Insertion probabilities of I, X, Y, Z: (P, 4, 1) or (P, 4, batch*copies)."""
    if per_example:
        values = stack_broadcast([ops[i].data[0] for i, _ in points], batch, rdtype).detach()
        values = replicate(values, copies, dim=1)
    else:
        values = stack_scalars([ops[i].data[0] for i, _ in points], rdtype).detach().unsqueeze(1)
    names = [name for _, name in points]
    kinds = set(names)
    if len(kinds) == 1:
        return gates.pauli_channel_probs(names[0], [values])
    probs = torch.empty(values.shape[0], 4, values.shape[1], dtype=rdtype)
    for name in kinds:
        sel = torch.tensor([k for k, nm in enumerate(names) if nm == name])
        probs[sel] = gates.pauli_channel_probs(name, [values[sel]])
    return probs


def draw_paulis(
    plan: Plan,
    points: Sequence[tuple[int, str]],
    ops: Sequence[qml.operation.Operator],
    batch: int,
    copies: int,
    rdtype: torch.dtype,
    generator: torch.Generator,
) -> torch.Tensor:
    """Sample the Pauli inserted at every point for every row: (P, rows) of 0=I, 1=X, 2=Y, 3=Z.

    All of a call's randomness is this one draw, so the gathers of any slice of rows
    (:func:`pauli_gathers`) are those of the whole batch, sliced.
    """
    per_example = any(getattr(ops[i].data[0], "ndim", 0) for i, _ in points)
    probs = _point_probs(points, ops, batch, copies, rdtype, per_example)
    cum = probs.cumsum(dim=1)[:, :3, :]
    u = torch.rand(len(points), 1, plan.batch, generator=generator, dtype=rdtype)
    return (u >= cum).sum(dim=1)


#: switch for A/B comparisons (benchmarks/row_slices.py): the by-mask table rows copied whole (index_select)
ROW_COPIES = True


def pauli_gathers(plan: Plan, kind: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-row gather indices and phases of sampled Paulis ``kind`` (P, rows) (:func:`draw_paulis`).

    Returns ``(index, phase)`` of shapes (G, rows, 2**n) for the plan's G dynamic
    gathers: ``new[b, p] = phase[g, b, p] * old[b, index[g, b, p]]``.
    """
    rows = kind.shape[1]
    t = plan.dyn_tables
    weight = t["weight_of_point"].unsqueeze(1)  # position-space bit of each point's wire
    flips = ((kind == 1) | (kind == 2)).long() * weight
    signs = ((kind == 2) | (kind == 3)).long() * weight
    n_y = (kind == 2).long()
    n_gathers = t["index"].shape[0]
    g_of = t["gather_of_point"]
    xmask = torch.zeros(n_gathers, rows, dtype=torch.long).index_add_(0, g_of, flips).unsqueeze(2)
    zmask = torch.zeros(n_gathers, rows, dtype=torch.long).index_add_(0, g_of, signs).unsqueeze(2)
    ny = torch.zeros(n_gathers, rows, dtype=torch.long).index_add_(0, g_of, n_y)
    # All masks are in output-position bits (see plan.DynGather).
    by_mask = _by_mask_tables(plan)
    if by_mask is not None:  # every row's index and phase copied whole from a table row
        flip_index, sign_phase, flip_phase = by_mask
        if not ROW_COPIES:  # advanced indexing, as until 2026-12-07 (benchmarks/row_slices.py compares)
            g = torch.arange(n_gathers).unsqueeze(1)
            index = flip_index[g, xmask.squeeze(2)]
            phase = sign_phase[ny & 3, zmask.squeeze(2)]
            if flip_phase is not None:
                phase = phase * flip_phase[g, xmask.squeeze(2)]
            return index, phase
        # The same rows as the indexing above, made one gather at a time when the program reaches it:
        # all G at once were two (G, rows, 2**n) tensors of ~50 MB each, every page of them faulted in
        # afresh (glibc maps allocations above 32 MB anew each time), half of a trajectory forward.
        return _TableRows(flip_index, sign_phase, flip_phase, xmask.squeeze(2), zmask.squeeze(2), ny & 3).pair()
    arange = t["arange"]
    pre = arange ^ xmask  # (G, rows, N)
    size = (n_gathers, rows, arange.shape[0])
    index = torch.gather(t["index"].unsqueeze(1).expand(size), 2, pre)
    phase = _pauli_phases(ny, zmask.squeeze(2), plan.n, plan.cdtype)
    if "phase" in t:  # static phases (e.g. CZ) of the permutation preceding the Paulis
        phase = phase * torch.gather(t["phase"].unsqueeze(1).expand(size), 2, pre)
    return index, phase


class _TableRows:
    """Gather ``g``'s per-row index and phase (rows, 2**n), copied from the by-mask tables when asked for.

    ``pair()`` gives the ``(index, phase)`` the program reads as ``index[g]``, ``phase[g]``; each lookup
    makes the rows of that gather only, with the lookups and the product of the full tensors, row for row.
    """

    def __init__(self, flip_index, sign_phase, flip_phase, xmask, zmask, ny) -> None:
        self.flip_index, self.sign_phase, self.flip_phase = flip_index, sign_phase, flip_phase
        self.xmask, self.zmask, self.ny = xmask, zmask, ny
        self.n_pos = flip_index.shape[-1]

    def index(self, g: int) -> torch.Tensor:
        return self.flip_index[g].index_select(0, self.xmask[g])

    def phase(self, g: int) -> torch.Tensor:
        rows = self.ny[g] * self.sign_phase.shape[1] + self.zmask[g]
        phase = self.sign_phase.reshape(-1, self.n_pos).index_select(0, rows)
        if self.flip_phase is not None:
            phase = phase * self.flip_phase[g].index_select(0, self.xmask[g])
        return phase

    def pair(self) -> tuple["_Lookup", "_Lookup"]:
        return _Lookup(self.index, len(self.xmask)), _Lookup(self.phase, len(self.xmask))


class _Lookup:
    """A sequence whose item ``g`` is made when read (one gather's rows of :class:`_TableRows`)."""

    def __init__(self, make, n: int) -> None:
        self._make, self._n = make, n

    def __getitem__(self, g: int) -> torch.Tensor:
        return self._make(g)

    def __len__(self) -> int:
        return self._n

    def dense(self) -> torch.Tensor:
        """Every gather's rows stacked: the (G, rows, 2**n) tensor this stands for."""
        return torch.stack([self._make(g) for g in range(self._n)])


def _pauli_phases(ny: torch.Tensor, zmask: torch.Tensor, n: int, cdtype: torch.dtype) -> torch.Tensor:
    """``(-i)^ny (-1)^popcount(p & zmask)`` for every position p: shape ``zmask.shape + (2**n,)``.

    Built as a Kronecker product of per-bit factors [1, +-1], the most significant position bit first.
    """
    shape = tuple(zmask.shape)
    powers = torch.tensor([1, -1j, -1, 1j], dtype=cdtype)
    phase = powers[ny & 3].unsqueeze(-1)
    shifts = torch.arange(n - 1, -1, -1)
    bits = (zmask.unsqueeze(-1) >> shifts) & 1
    factors = torch.ones(*shape, n, 2, dtype=cdtype)
    factors[..., 1] = 1 - 2 * bits
    for k in range(n):
        phase = (phase.unsqueeze(-1) * factors[..., k, :].unsqueeze(-2)).reshape(*shape, -1)
    return phase


#: largest tables of :func:`_by_mask_tables` (bytes); beyond, the index and phase are computed per entry
BY_MASK_BYTES = 64 * 2**20


def _by_mask_tables(plan: Plan) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None:
    """Every row a dynamic gather can have, by its masks (cached in the plan): ``flip_index[g, x]`` the
    static index read at ``p ^ x``, ``sign_phase[ny, z]`` the Pauli phase of :func:`_pauli_phases`, and
    ``flip_phase[g, x]`` the static phase read at ``p ^ x`` (None without static phases).

    A row is then one table row copied instead of a gather of G x rows x 2^n indices and an n-step product
    per row; the entries are the same values, made by the same operations. None where the tables would
    exceed ``BY_MASK_BYTES`` (they grow as 4^n).
    """
    t = plan.dyn_tables
    if "flip_index" not in t:
        N = t["arange"].shape[0]
        G = t["index"].shape[0]
        item = torch.empty((), dtype=plan.cdtype).element_size()
        if N * N * (G * 8 + 4 * item + (G * item if "phase" in t else 0)) > BY_MASK_BYTES:
            t["flip_index"] = None
        else:
            flip = t["arange"].unsqueeze(1) ^ t["arange"]  # (x, p): p ^ x
            t["flip_index"] = t["index"][:, flip]
            masks = torch.arange(N)
            t["sign_phase"] = _pauli_phases(torch.arange(4).unsqueeze(1).expand(4, N), masks.expand(4, N), plan.n,
                                            plan.cdtype)
            t["flip_phase"] = t["phase"][:, flip] if "phase" in t else None
    if t["flip_index"] is None:
        return None
    return t["flip_index"], t["sign_phase"], t["flip_phase"]


def make_jump(
    plan: Plan,
    ops: Sequence[qml.operation.Operator],
    batch: int,
    copies: int,
    generator: torch.Generator,
):
    """Return the callback applying the plan's quantum jumps (Kraus branch sampling)."""
    rows = plan.batch
    n = plan.n
    rdtype = torch.float32 if plan.cdtype == torch.complex64 else torch.float64

    def jump(state: torch.Tensor, jump_id: int, position: int) -> torch.Tensor:
        op_index, _ = plan.jumps[jump_id]
        ks = gates.kraus_matrices(ops[op_index], plan.cdtype, None)  # (K, 2, 2) or (K, B, 2, 2)
        if ks.ndim == 4:
            ks = replicate(ks, copies, dim=1)
        psi = state.view(rows, 2**position, 2, 2 ** (n - position - 1))
        if ks.ndim == 3:
            branches = torch.einsum("kij,bajc->kbaic", ks, psi)
        else:
            branches = torch.einsum("kbij,bajc->kbaic", ks, psi)
        weights = torch.view_as_real(branches).square().sum(dim=(-1, -2, -3, -4))  # (K, rows)
        with torch.no_grad():
            cum = weights.cumsum(0) / weights.sum(0, keepdim=True)
            u = torch.rand(1, rows, generator=generator, dtype=rdtype)
            choice = (u >= cum[:-1]).sum(0)  # (rows,)
        arange = torch.arange(rows)
        chosen = branches[choice, arange]
        norm = weights[choice, arange].clamp_min(torch.finfo(rdtype).tiny).sqrt()
        return (chosen / norm.view(rows, 1, 1, 1)).reshape(rows, -1)

    return jump


def aggregate(probs: torch.Tensor, batch: int, copies: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Mean over trajectories and its standard error (None for a single trajectory)."""
    per = probs.view(batch, copies, -1)
    mean = per.mean(dim=1)
    if copies == 1:
        return mean, None
    stderr = per.detach().std(dim=1, unbiased=True) / copies**0.5
    return mean, stderr
