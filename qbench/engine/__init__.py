"""Fast batched quantum-circuit simulation for qbench.

Public API::

    from qbench.engine import execute, sample_shots, EngineResult

    result = execute(ops, n_wires, measure_wires, method="auto")
    result.probs   # (B, 2**k), differentiable w.r.t. weights and inputs
    result.stderr  # None, or the trajectory standard errors

See :func:`execute` for the methods (state vector, density matrix, quantum
trajectories, or a named PennyLane device for cross-checking).
"""

from .execute import clear_plan_cache, execute
from .result import EngineResult
from .sampling import sample_shots

__all__ = ["EngineResult", "clear_plan_cache", "execute", "sample_shots"]
