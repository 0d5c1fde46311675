"""Running a plan over consecutive slices of its rows, so that the state stays in the CPU's cache.

A plan's state is (rows, 2**n) amplitudes. Once that outgrows the cache (an attack gradient of the MNIST
QNN under sampled depolarizing noise: 1000 examples x 10 trajectories x 256 amplitudes, 20 MB), every
GEMM and gather of the program streams it from memory, and a row costs about twice what it costs in a
batch of a few thousand rows (``benchmarks/row_slices.py``). Every instruction of a program acts on each
row alone, so the program can run slice by slice and the final states be concatenated. The numbers are
then the same bit for bit, which is what lets the committed cells re-run exactly, as long as:

* all randomness of the call is drawn for the whole batch first (:func:`.trajectories.draw_paulis`), and
  each slice's Pauli gathers are built from its rows of that draw;
* no gradient is summed over rows inside the program: a shared (not per-example) matrix that needs a
  gradient, as when training weights that enter the circuit through shared gates, would get one partial
  sum per slice, which round differently when added; such a call runs whole (attacks freeze the weights,
  evaluation needs no gradient). Weights that reach the program only through per-example matrices (fused
  with per-example noise, as in noise-layer training) are sliced: their gradients are per row inside the
  program and summed outside it, on the slices' joined gradient, as in the whole run;
* every GEMM keeps enough rows: BLAS takes another path, with another rounding, for an operand of one to
  three rows against a long inner dimension (measured on this project's machine); slices have at least
  ``MIN_ROWS`` rows;
* the slices keep the whole plan's structure: its partition into chunks depends on the batch
  (:func:`.schedule.partition`), so a slice runs the whole plan re-batched, never a plan compiled for the
  slice's size.

Plans with quantum jumps sample from the evolving state and always run whole. Off the CPU nothing is
sliced: a GPU's kernels are chosen by shape, so slicing there could change the rounding, and its memory
is not a cache to fit in.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import torch

from . import statevector, trajectories
from .plan import GATHER, GATHER_PHASE, Plan

#: a slice's state is about this size: a fraction of the per-core L2 + shared L3 of the machines measured
TARGET_BYTES = 4 * 2**20
#: fewest rows in a slice (see the module docstring); also the smallest batch worth slicing twice
MIN_ROWS = 64


def _batched_flags(plan: Plan, sources: Sequence[torch.Tensor]) -> list[int | None]:
    """Per source, the dimension that runs over rows (1 for a kron group, 0 for a dense chunk), or None."""
    flags: list[int | None] = [1 if g.batched else None for g in plan.kron_groups]
    flags += [0 if s.ndim == 3 else None for s in sources[len(plan.kron_groups):]]
    return flags


def spans(plan: Plan, copies: int, sources: Sequence[torch.Tensor], device: torch.device) -> list[tuple[int, int]] | None:
    """The (start, stop) row slices to run ``plan`` in, whole examples each, or None to run it whole."""
    rows = plan.batch
    item = torch.empty((), dtype=plan.cdtype).element_size()
    row_bytes = 2**plan.n * item
    if device.type != "cpu" or plan.jumps or rows * row_bytes <= 2 * TARGET_BYTES:
        return None
    if torch.is_grad_enabled():
        flags = _batched_flags(plan, sources)
        if any(flag is None and s.requires_grad for flag, s in zip(flags, sources)):
            return None
    per = max(MIN_ROWS, TARGET_BYTES // row_bytes)
    per_examples = -(-per // copies)
    examples = rows // copies
    n_slices = examples // per_examples
    if n_slices < 2:
        return None
    base, extra = divmod(examples, n_slices)
    out = []
    start = 0
    for k in range(n_slices):
        stop = start + (base + (1 if k < extra else 0)) * copies
        out.append((start, stop))
        start = stop
    return out


def rebatched(plan: Plan, rows: int) -> Plan:
    """``plan`` for ``rows`` rows: the same program, its static gathers' indices expanded to ``rows``."""
    got = plan.rebatched.get(rows)
    if got is None:
        program = []
        for ins in plan.program:
            if ins[0] == GATHER:
                program.append((GATHER, ins[1][0].expand(rows, -1), ins[2][0].expand(rows, -1)))
            elif ins[0] == GATHER_PHASE:
                program.append((GATHER_PHASE, ins[1][0].expand(rows, -1), ins[2], ins[3][0].expand(rows, -1), ins[4]))
            else:
                program.append(ins)
        got = dataclasses.replace(plan, batch=rows, program=program, zero_state=None, rebatched={})
        plan.rebatched[rows] = got
    return got


def run_in_slices(
    plan: Plan,
    state: torch.Tensor,
    sources: Sequence[torch.Tensor],
    kinds: torch.Tensor | None,
    slices: Sequence[tuple[int, int]],
    readout: Callable[[Plan, torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """``readout(plan, final state)`` of ``plan``, computed slice by slice (see the module docstring).

    ``kinds`` are the call's sampled Paulis (:func:`.trajectories.draw_paulis`), None without any. The inputs
    are split (not indexed), so the backward joins the slices' gradients in one concatenation.
    """
    sizes = [stop - start for start, stop in slices]
    parts = list(zip(*[
        s.split(sizes, dim) if dim is not None else [s] * len(sizes) for s, dim in zip(sources, _batched_flags(plan, sources))
    ])) if sources else [()] * len(sizes)
    out = []
    for (start, stop), part_state, part_sources in zip(slices, state.split(sizes), parts):
        part = rebatched(plan, stop - start)
        dyn = trajectories.pauli_gathers(plan, kinds[:, start:stop]) if kinds is not None else None
        out.append(readout(part, statevector.run_program(part, part_state, part_sources, dyn, None)))
    return torch.cat(out)
