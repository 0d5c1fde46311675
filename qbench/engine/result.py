"""The value returned by :func:`qbench.engine.execute`."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class EngineResult:
    """Measurement probabilities of a batched circuit execution.

    Attributes:
        probs: (B, 2**k) joint computational-basis probabilities of the measured
            wires (first measured wire = most significant bit), differentiable
            with respect to every tensor that went into the operators.
        stderr: ``None`` for exact methods (and for a single trajectory);
            otherwise the (B, 2**k) standard error of each trajectory estimate,
            ``std / sqrt(n_trajectories)`` over the trajectories of each example,
            detached from the graph.
        method: the method that produced the result (``"statevector"``,
            ``"density"``, ``"trajectories"`` or ``"device:<name>"``).
        n_trajectories: trajectories per example (1 for exact methods).
    """

    probs: torch.Tensor
    stderr: torch.Tensor | None = None
    method: str = "statevector"
    n_trajectories: int = 1
