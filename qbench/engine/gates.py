"""Gate and channel matrices, taken from PennyLane's own operator definitions.

The engine never hard-codes a gate matrix: parametric gates are evaluated with
``type(op).compute_matrix`` on *stacked* parameter vectors (PennyLane supports
parameter broadcasting, so one call produces the matrices of every gate of a
class at once), parameter-free gates are evaluated once and cached, and channels
use ``compute_kraus_matrices``.  What is engine-specific here is only the
classification of operators (which ones are single-qubit, which are monomial
"signed permutations", which channels are Pauli channels) and the caching.
"""

from __future__ import annotations

import functools
from typing import Sequence

import numpy as np
import pennylane as qml
import torch

# Parameter-free gates whose matrix depends only on the class (not on
# hyperparameters), so it can be cached per class.
CONSTANT_GATES: frozenset[str] = frozenset(
    {
        "Identity", "Hadamard", "PauliX", "PauliY", "PauliZ", "S", "T", "SX",
        "CNOT", "CZ", "CY", "CH", "SWAP", "ISWAP", "ECR", "Toffoli", "CCZ", "CSWAP",
    }
)

# Parametric single-qubit gates whose ``compute_matrix`` accepts 1-D parameter
# vectors (PennyLane broadcasting) and returns a (N, 2, 2) stack.
VECTORISED_1Q: frozenset[str] = frozenset(
    {"RX", "RY", "RZ", "Rot", "PhaseShift", "U1", "U2", "U3"}
)

# Channels that are mixtures of Pauli operators, mapped to the probabilities of
# (I, X, Y, Z) as a function of the channel parameter.  Trajectories sample
# these as random Pauli insertions (an unbiased unravelling).
PAULI_CHANNELS: frozenset[str] = frozenset({"DepolarizingChannel", "BitFlip", "PhaseFlip"})

EMBEDDING_ROTATIONS: dict[str, type] = {"X": qml.RX, "Y": qml.RY, "Z": qml.RZ}


def complex_dtype(real_dtype: torch.dtype) -> torch.dtype:
    """Return the complex dtype matching a real floating dtype."""
    return torch.complex64 if real_dtype == torch.float32 else torch.complex128


def real_dtype(cdtype: torch.dtype) -> torch.dtype:
    """Return the real dtype matching a complex dtype."""
    return torch.float32 if cdtype == torch.complex64 else torch.float64


@functools.lru_cache(maxsize=None)
def constant_matrix_np(cls: type) -> np.ndarray:
    """Matrix of a parameter-free gate class as a complex128 numpy array (cached)."""
    return np.asarray(cls.compute_matrix(), dtype=np.complex128)


@functools.lru_cache(maxsize=None)
def _constant_matrix_torch(cls: type, cdtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(constant_matrix_np(cls), dtype=cdtype, device=device)


def constant_matrix(cls: type, cdtype: torch.dtype, device: torch.device | None = None) -> torch.Tensor:
    """Matrix of a parameter-free gate class as a torch tensor of ``cdtype`` on ``device`` (torch's default
    device if None; cached per device)."""
    return _constant_matrix_torch(cls, cdtype, torch.get_default_device() if device is None else torch.device(device))


def is_constant_gate(op: qml.operation.Operator) -> bool:
    """Whether ``op``'s matrix is a fixed function of its class (cacheable)."""
    return op.name in CONSTANT_GATES and op.num_params == 0


def monomial_structure(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Decompose a monomial ("signed permutation") matrix.

    Returns ``(cols, vals)`` with ``matrix[r, cols[r]] == vals[r]`` the only
    non-zero of row ``r``, or ``None`` when the matrix is not monomial.
    """
    nz = np.abs(matrix) > 1e-12
    if not np.all(nz.sum(axis=1) == 1) or not np.all(nz.sum(axis=0) == 1):
        return None
    cols = nz.argmax(axis=1)
    vals = matrix[np.arange(matrix.shape[0]), cols]
    return cols, vals


def vectorised_matrices(cls: type, params: Sequence[torch.Tensor]) -> torch.Tensor:
    """Evaluate ``cls.compute_matrix`` on 1-D parameter vectors of equal length N.

    Returns a (N, 2, 2) complex tensor; PennyLane's parameter broadcasting does
    the batching, so one call covers every gate of this class in the circuit.
    """
    mats = cls.compute_matrix(*params)
    if mats.ndim == 2:  # N == 1 broadcasting may collapse; keep the stack axis
        mats = mats.unsqueeze(0)
    return mats


def pauli_channel_probs(name: str, params: Sequence[torch.Tensor]) -> torch.Tensor:
    """Probabilities of inserting I, X, Y, Z for a Pauli channel.

    ``params`` are the channel parameters, each a (N,) or (N, B) tensor; the
    result has shape (N, 4) or (N, 4, B).  The formulas are the Kraus weights
    ``|c_i|^2`` of PennyLane's ``compute_kraus_matrices`` (K_i = c_i P_i).
    """
    p = params[0]
    zero = torch.zeros_like(p)
    if name == "DepolarizingChannel":
        cols = [1 - p, p / 3, p / 3, p / 3]
    elif name == "BitFlip":
        cols = [1 - p, p, zero, zero]
    elif name == "PhaseFlip":
        cols = [1 - p, zero, zero, p]
    else:  # pragma: no cover - guarded by PAULI_CHANNELS
        raise ValueError(f"{name} is not a Pauli channel")
    return torch.stack(cols, dim=1)


def kraus_matrices(op: qml.operation.Operator, cdtype: torch.dtype, batch: int | None) -> torch.Tensor:
    """Kraus operators of a channel as a (K, 2^k, 2^k) or (K, B, 2^k, 2^k) tensor.

    PennyLane's ``compute_kraus_matrices`` does not broadcast, so a channel with
    per-example parameters (shape (B,)) is evaluated example by example; this is
    only used by the density-matrix and quantum-jump paths.
    """
    cls = type(op)
    data = op.data
    batched = any(isinstance(p, torch.Tensor) and p.ndim == 1 for p in data)
    if not batched:
        ks = cls.compute_kraus_matrices(*data, **op.hyperparameters)
        return torch.stack([torch.as_tensor(k).to(cdtype) for k in ks])
    size = next(p.shape[0] for p in data if isinstance(p, torch.Tensor) and p.ndim == 1)
    per_example = []
    for b in range(size):
        args = [p[b] if isinstance(p, torch.Tensor) and p.ndim == 1 else p for p in data]
        ks = cls.compute_kraus_matrices(*args, **op.hyperparameters)
        per_example.append(torch.stack([torch.as_tensor(k).to(cdtype) for k in ks]))
    out = torch.stack(per_example, dim=1)
    if batch is not None and batch != size:
        out = out.repeat_interleave(batch // size, dim=1)
    return out
