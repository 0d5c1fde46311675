"""``ising``: ground states of the transverse-field Ising chain, ferromagnetic vs paramagnetic (track qnn).

H = -sum_n Z_n Z_{n+1} - J_x sum_n X_n on an open chain of ``n_spins`` (default 4) spins. The couplings are
J_x = 2k / (n_points + 1) for k = 1 .. n_points: ``n_points`` (default 999) evenly spaced values over the
open interval (0, 2), step 0.002, i.e. ``np.linspace(0, 2, 1001)[1:-1]``. Label 1 means J_x > 1 (the
paramagnetic phase), label 0 J_x < 1 (ferromagnetic). The set is symmetric about 1, so it contains J_x = 1
exactly (k = 500), the critical point of the infinite chain; the strict inequality labels it 0, giving
500 states labelled 0 and 499 labelled 1. With 4 spins the crossover is smooth anyway, so states near
J_x = 1 are labelled by convention, not by a sharp phase boundary.

Inputs are the 2**n_spins real amplitudes (float32) on the unit sphere. Basis index bit order follows
PennyLane's wires: spin 0 is the most significant bit, and bit value 0 is Z = +1.

Why the even-parity sector: H commutes with the spin flip P = prod_n X_n, and for small J_x the lowest
even and odd states are nearly degenerate (gap about 2 J_x**4 for 4 spins: 3.2e-11 at J_x = 0.002), so a
plain eigensolver may return a mixture of them, tilted toward one ferromagnetic state. For J_x > 0 the
ground state is unique and P-even (Perron-Frobenius: off-diagonal elements are <= 0 and H is
irreducible), so diagonalising H in the P-even subspace gives it exactly. Its global phase is fixed by
making the largest-magnitude amplitude positive (the amplitudes all share that sign).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache, reduce

import numpy as np
import torch
from sklearn.model_selection import train_test_split

import qbench
from qbench import DataSplit, Dataset, Domain, TrainingSchedule

_X = np.array([[0.0, 1.0], [1.0, 0.0]])
_Z = np.array([[1.0, 0.0], [0.0, -1.0]])


def _on_site(op: np.ndarray, site: int, n_spins: int) -> np.ndarray:
    factors = [op if k == site else np.eye(2) for k in range(n_spins)]
    return reduce(np.kron, factors)


@lru_cache(maxsize=None)
def _terms(n_spins: int) -> tuple[np.ndarray, np.ndarray]:
    """(sum Z_n Z_{n+1}, sum X_n) for an open chain of ``n_spins``; read-only, shared between calls."""
    coupling = sum(_on_site(_Z, n, n_spins) @ _on_site(_Z, n + 1, n_spins) for n in range(n_spins - 1))
    field = sum(_on_site(_X, n, n_spins) for n in range(n_spins))
    coupling.flags.writeable = field.flags.writeable = False
    return coupling, field


def ising_hamiltonian(n_spins: int, j_x: float) -> np.ndarray:
    """The real symmetric ``2**n_spins`` square matrix of H = -sum Z_n Z_{n+1} - j_x sum X_n (open chain)."""
    coupling, field = _terms(n_spins)
    return -coupling - j_x * field


def _even_basis(n_spins: int) -> np.ndarray:
    """Orthonormal columns (e_s + e_flip(s)) / sqrt 2 spanning the spin-flip-even subspace."""
    dim = 2**n_spins
    half = np.arange(dim // 2)
    basis = np.zeros((dim, dim // 2))
    basis[half, half] = basis[(dim - 1) ^ half, half] = 1 / np.sqrt(2)
    return basis


def ground_state(n_spins: int, j_x: float) -> tuple[float, np.ndarray]:
    """``(energy, amplitudes)`` of H's ground state for ``j_x > 0``, float64, largest amplitude positive."""
    if j_x <= 0:
        raise ValueError("the ground state is degenerate for j_x <= 0")
    basis = _even_basis(n_spins)
    energies, vectors = np.linalg.eigh(basis.T @ ising_hamiltonian(n_spins, j_x) @ basis)
    psi = basis @ vectors[:, 0]
    psi /= np.linalg.norm(psi)
    return float(energies[0]), psi * np.sign(psi[np.argmax(np.abs(psi))])


def field_values(n_points: int) -> np.ndarray:
    """The couplings J_x = 2k / (n_points + 1), k = 1 .. n_points (exact ratios: the middle one is 1.0)."""
    return 2.0 * np.arange(1, n_points + 1) / (n_points + 1)


@dataclass(frozen=True)
class IsingConfig:
    """Chain length, number of couplings, test fraction and split seed (defaults: 4 spins, 999, 40%)."""

    n_spins: int = 4
    n_points: int = 999
    test_fraction: float = 0.4
    split_seed: int = 0

    def validate(self) -> None:
        """Spins in 2..10 (the state has 2**n_spins amplitudes), at least 10 points, test fraction in (0, 1)."""
        if not 2 <= self.n_spins <= 10:
            raise ValueError(f"n_spins must be between 2 and 10, not {self.n_spins}")
        if self.n_points < 10:
            raise ValueError(f"n_points must be at least 10, not {self.n_points}")
        if not 0 < self.test_fraction < 1:
            raise ValueError("test_fraction must be in (0, 1)")


class Ising(Dataset):
    """Ground states of the transverse-field Ising chain; 2 classes (J_x > 1 or not), unit vectors."""

    name = "ising"
    description = "4-spin transverse-field Ising ground states, 999 J_x in (0, 2), label J_x > 1; 40% test"
    version = "1"
    tracks = ("qnn",)
    Config = IsingConfig
    training = TrainingSchedule(epochs=100, lr=0.005, batch_size=64)

    def load(self, ctx) -> DataSplit:
        """Diagonalise H for every coupling and split the states, stratified by label."""
        c = self.config
        fields = field_values(c.n_points)
        states = np.stack([ground_state(c.n_spins, j)[1] for j in fields])
        # integer comparison 2k > n_points + 1, so the J_x = 1 point is labelled exactly
        labels = (2 * np.arange(1, c.n_points + 1) > c.n_points + 1).astype(np.int64)
        x_tr, x_te, y_tr, y_te = train_test_split(
            states, labels, test_size=c.test_fraction, random_state=c.split_seed, stratify=labels
        )
        as_x = lambda a: torch.from_numpy(a.astype(np.float32))  # noqa: E731
        critical = "; J_x = 1 labelled 0" if c.n_points % 2 else ""
        return DataSplit(
            as_x(x_tr), torch.from_numpy(y_tr), as_x(x_te), torch.from_numpy(y_te),
            n_classes=2, domain=Domain("sphere"),
            notes=(
                f"exact ground states of the {c.n_spins}-spin open transverse-field Ising chain "
                f"H = -sum ZZ - J_x sum X, J_x = 2k/{c.n_points + 1} for k = 1..{c.n_points}; label 1 iff J_x > 1 "
                f"(paramagnetic){critical}; {c.test_fraction:.0%} test, stratified "
                f"(split_seed={c.split_seed})"
            ),
        )


@qbench.hookimpl
def register_datasets(register) -> None:
    """Register :class:`Ising`."""
    register(Ising)
