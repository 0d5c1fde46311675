"""How a backend's noise perturbs one encoded value: characterised once on qiskit-aer, then cached.

The encoding (DESIGN section 7, made concrete here). A value ``v`` in ``[-1, 1]`` is written on a physical
qubit ``q`` as ``RY(arccos v)|0>`` and read back as the Z expectation value ``<Z> = cos(arccos v) = v``,
estimated from ``shots`` shots as ``(n0 - n1) / shots``. On the backend the read-back differs from ``v``
by the gate errors of the transpiled ``RY`` (``rz``/``sx`` on IBM devices), T1/T2 relaxation during the
circuit, the readout error, and shot noise.

Intrinsic characterisation. For every qubit ``q`` and every ``v`` on a grid (default 21 points in
``[-1, 1]``) the circuit ``RY(arccos v)`` + measure on ``q`` is transpiled for the backend
(``optimization_level=0``, identity layout, ALAP scheduling so idle time becomes ``delay`` that the
noise model relaxes) and run on ``AerSimulator.from_backend`` (the density-matrix method, with
``NoiseModel.from_backend``'s gate, relaxation and readout errors). Each ``(q, v)`` is run as
``repeats`` independent batches of ``shots`` shots; the read-back of each batch is one sample of what a
mapped value reads back as. Recorded per ``(q, v)``: the *bias* (mean read-back over the batches minus
``v``) and the *spread* (standard deviation of the batch read-backs, ``ddof=1``). With Aer's Markovian
noise the spread is the binomial shot noise ``2 sqrt(p1 (1 - p1) / shots)`` around the noisy mean; it is
measured rather than assumed so that a noise model with more structure is represented too. With the
default 16 batches the spread is known to about ``1 / sqrt(2 * 15)``, i.e. 18 %, and the bias to
``sd / 4`` (the standard error of a mean of 16 batches).

Crosstalk characterisation (QNAD). For a target ``q`` and a neighbour ``n`` at most ``max_hops`` hops
away on the coupling map, ``k`` pairs of CNOTs with ``q`` as control and ``n`` (in ``|0>``) as target are
inserted between the encoding and the measurement, separated by barriers so nothing cancels them. A pair
is the identity without noise, so only the noise of the CNOTs (and the relaxation while they run) moves
the read-back. A 1-hop neighbour gets the native ``CX(q, n)``; a 2-hop neighbour ``n`` reached through
``m`` gets the bridge ``CX(q,m) CX(m,n) CX(q,m) CX(m,n)``, which is ``CNOT(q, n)`` and leaves ``m`` as it
was. With ``k = 0`` the circuit *is* the intrinsic circuit, so ``k = 0`` is not run again: its curves are
the intrinsic ones. The bias and spread are recorded per ``(q, n, k)``.

All circuits are transpiled once as circuits with a parameter ``theta`` and run in a single Aer job
(``parameter_binds`` supply the grid, repeated ``repeats`` times), with ``seed_simulator`` fixed: the same
arguments give the same characterisation.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np

from qbench.errors import UsageError
from qbench.hardware.backends import (
    DEFAULT_BACKEND, Topology, backend_topology, calibration_fingerprint, canonical_backend_name, load_backend,
)
from qbench.hardware.cache import JsonCache, cache_key

if TYPE_CHECKING:
    from qiskit import QuantumCircuit
    from qiskit.circuit import Parameter
    from qiskit.providers import BackendV2

log = logging.getLogger("qbench.hardware")

#: bump when the circuits or the statistics change, so older cache files stop matching
FORMAT = 1
DEFAULT_GRID = 21
DEFAULT_SHOTS = 1024
DEFAULT_REPEATS = 16
DEFAULT_KS = (1, 2, 4, 8)
DEFAULT_SEED = 1234


@dataclass(eq=False)
class Characterisation:
    """Per-qubit bias and spread of the read-back of an encoded value, intrinsic and with crosstalk.

    ``intrinsic_bias[i, j]`` / ``intrinsic_sd[i, j]``: bias and spread for qubit ``qubits[i]`` at
    ``grid[j]``. ``crosstalk_bias[p, kk, j]`` / ``crosstalk_sd[p, kk, j]``: the same for the pair
    ``pairs[p] = (target, neighbour, hops)`` with ``ks[kk]`` CNOT pairs. See the module docstring.
    """

    backend: str
    fingerprint: str | None
    n_qubits: int
    edges: tuple[tuple[int, int], ...]
    grid: np.ndarray
    shots: int
    repeats: int
    seed: int
    qubits: tuple[int, ...]
    intrinsic_bias: np.ndarray
    intrinsic_sd: np.ndarray
    pairs: tuple[tuple[int, int, int], ...] = ()
    ks: tuple[int, ...] = ()
    crosstalk_bias: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0)))
    crosstalk_sd: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0)))
    versions: dict[str, str] = field(default_factory=dict)
    key: str = ""
    seconds: float = 0.0
    #: the cache file this was loaded from (None when computed); not serialised
    loaded_from: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        self.grid = np.asarray(self.grid, dtype=float)
        self.intrinsic_bias = np.asarray(self.intrinsic_bias, dtype=float)
        self.intrinsic_sd = np.asarray(self.intrinsic_sd, dtype=float)
        # explicit shape: with no crosstalk (ks or pairs empty) a -1 would be ambiguous on an empty array
        shape = (len(self.pairs), len(self.ks), len(self.grid))
        self.crosstalk_bias = np.asarray(self.crosstalk_bias, dtype=float).reshape(shape)
        self.crosstalk_sd = np.asarray(self.crosstalk_sd, dtype=float).reshape(shape)
        self.edges = tuple(tuple(e) for e in self.edges)  # type: ignore[misc]
        self.qubits = tuple(int(q) for q in self.qubits)
        self.pairs = tuple(tuple(int(x) for x in p) for p in self.pairs)  # type: ignore[misc]
        self.ks = tuple(int(k) for k in self.ks)
        g = len(self.grid)
        if g < 2 or np.any(np.diff(self.grid) <= 0):
            raise ValueError("the grid must be increasing with at least 2 points")
        if self.intrinsic_bias.shape != (len(self.qubits), g) or self.intrinsic_sd.shape != (len(self.qubits), g):
            raise ValueError(f"intrinsic tables must be {len(self.qubits)} x {g}")
        if self.pairs and self.crosstalk_bias.shape != (len(self.pairs), len(self.ks), g):
            raise ValueError(f"crosstalk tables must be {len(self.pairs)} x {len(self.ks)} x {g}")
        if self.crosstalk_sd.shape != self.crosstalk_bias.shape:
            raise ValueError("crosstalk bias and spread tables differ in shape")
        for name in ("intrinsic_bias", "intrinsic_sd", "crosstalk_bias", "crosstalk_sd"):
            if not np.all(np.isfinite(getattr(self, name))):
                raise ValueError(f"{name} has non-finite values")

    @property
    def topology(self) -> Topology:
        """The backend's undirected coupling graph."""
        return Topology(self.n_qubits, self.edges)

    def pair_index(self, qubit: int, neighbour: int) -> int | None:
        """Index of the pair ``(qubit, neighbour)`` in :attr:`pairs`, or None if it was not characterised."""
        for index, (target, other, _) in enumerate(self.pairs):
            if target == qubit and other == neighbour:
                return index
        return None

    def curve(self, qubit: int, neighbour: int | None = None, k: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """``(bias, sd)`` over :attr:`grid` for ``qubit``, or for ``qubit`` with ``k`` CNOT pairs to ``neighbour``.

        ``k = 0`` (or no neighbour) is the intrinsic curve: that circuit has no CNOTs.
        """
        if qubit not in self.qubits:
            raise KeyError(f"qubit {qubit} was not characterised (characterised: {list(self.qubits)})")
        if neighbour is None or k == 0:
            i = self.qubits.index(qubit)
            return self.intrinsic_bias[i], self.intrinsic_sd[i]
        p = self.pair_index(qubit, neighbour)
        if p is None:
            raise KeyError(f"the pair ({qubit}, {neighbour}) was not characterised")
        if k not in self.ks:
            raise KeyError(f"{k} CNOT pairs were not characterised (characterised: {list(self.ks)})")
        kk = self.ks.index(k)
        return self.crosstalk_bias[p, kk], self.crosstalk_sd[p, kk]

    def summary(self, values: Sequence[float] = (-1.0, 0.0, 1.0)) -> dict[str, Any]:
        """A small JSON-able digest: per qubit, bias and spread at ``values`` (interpolated), and the
        mean absolute bias and mean spread over the grid and all pairs for each ``k`` (``0`` = intrinsic,
        over the same targets)."""
        per_qubit = {}
        for i, q in enumerate(self.qubits):
            per_qubit[str(q)] = {
                f"{v:+.2f}": {"bias": float(np.interp(v, self.grid, self.intrinsic_bias[i])),
                              "sd": float(np.interp(v, self.grid, self.intrinsic_sd[i]))}
                for v in values
            }
        per_k: dict[str, dict[str, float]] = {}
        if self.pairs:
            targets = [self.qubits.index(t) for t, _, _ in self.pairs]
            per_k["0"] = {"mean_abs_bias": float(np.abs(self.intrinsic_bias[targets]).mean()),
                          "mean_sd": float(self.intrinsic_sd[targets].mean())}
            for kk, k in enumerate(self.ks):
                per_k[str(k)] = {"mean_abs_bias": float(np.abs(self.crosstalk_bias[:, kk]).mean()),
                                 "mean_sd": float(self.crosstalk_sd[:, kk].mean())}
        return {"backend": self.backend, "shots": self.shots, "repeats": self.repeats, "per_qubit": per_qubit,
                "crosstalk_by_k": per_k, "seconds": self.seconds}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict; :meth:`from_dict` inverts it exactly."""
        return {
            "format": FORMAT, "backend": self.backend, "fingerprint": self.fingerprint, "n_qubits": self.n_qubits,
            "edges": [list(e) for e in self.edges], "grid": self.grid.tolist(), "shots": self.shots,
            "repeats": self.repeats, "seed": self.seed, "qubits": list(self.qubits),
            "intrinsic_bias": self.intrinsic_bias.tolist(), "intrinsic_sd": self.intrinsic_sd.tolist(),
            "pairs": [list(p) for p in self.pairs], "ks": list(self.ks),
            "crosstalk_bias": self.crosstalk_bias.tolist(), "crosstalk_sd": self.crosstalk_sd.tolist(),
            "versions": dict(self.versions), "key": self.key, "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Characterisation":
        """Rebuild from :meth:`to_dict` output; raises ``ValueError``/``KeyError``/``TypeError`` on bad content."""
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r} is not {FORMAT}")
        fields = {k: v for k, v in data.items() if k not in ("format", "loaded_from")}
        return cls(**fields)


def _versions() -> dict[str, str]:
    import qiskit
    import qiskit_aer
    import qiskit_ibm_runtime

    return {"qiskit": qiskit.__version__, "qiskit-aer": qiskit_aer.__version__,
            "qiskit-ibm-runtime": qiskit_ibm_runtime.__version__}


def make_grid(grid: int | Iterable[float] = DEFAULT_GRID) -> np.ndarray:
    """The grid of encoded values: ``n`` evenly spaced points in ``[-1, 1]``, or the given increasing values."""
    if isinstance(grid, int):
        if grid < 2:
            raise UsageError(f"the grid needs at least 2 points, got {grid}")
        return np.linspace(-1.0, 1.0, grid)
    values = np.asarray(list(grid), dtype=float)
    if len(values) < 2 or np.any(np.diff(values) <= 0) or values[0] < -1 or values[-1] > 1:
        raise UsageError("the grid must be at least 2 increasing values in [-1, 1]")
    return values


def encoding_circuit(
    n_qubits: int, qubit: int, theta: "float | Parameter", *, neighbour: int | None = None, pairs: int = 0,
    topology: Topology | None = None,
) -> "QuantumCircuit":
    """The (untranspiled) characterisation circuit on physical qubits: ``RY(theta)`` on ``qubit``, then
    ``pairs`` CNOT pairs to ``neighbour`` (native or bridged, see the module docstring), then a measurement
    of ``qubit`` into the only classical bit. With ``pairs = 0`` the neighbour is ignored."""
    from qiskit import QuantumCircuit

    circuit = QuantumCircuit(n_qubits, 1)
    circuit.ry(theta, qubit)
    if pairs:
        if neighbour is None or topology is None:
            raise ValueError("CNOT pairs need a neighbour and the topology")
        route = topology.path(qubit, neighbour)
        if len(route) not in (2, 3):
            raise ValueError(f"qubit {neighbour} is {len(route) - 1} hops from {qubit}; only 1 or 2 are supported")
        for _ in range(2 * pairs):
            circuit.barrier(list(route))
            if len(route) == 2:
                circuit.cx(qubit, neighbour)
            else:
                middle = route[1]
                circuit.cx(qubit, middle)
                circuit.cx(middle, neighbour)
                circuit.cx(qubit, middle)
                circuit.cx(middle, neighbour)
        circuit.barrier(list(route))
    circuit.measure(qubit, 0)
    return circuit


def transpile_for(backend: "BackendV2", circuits: "list[QuantumCircuit]", seed: int = DEFAULT_SEED) -> "list[QuantumCircuit]":
    """Transpile characterisation circuits for ``backend`` as :func:`characterise` does: basis gates, the
    identity layout (qubit i stays physical qubit i), no optimisation, ALAP scheduling."""
    from qiskit import transpile

    return transpile(circuits, backend, optimization_level=0, initial_layout=list(range(backend.num_qubits)),
                     scheduling_method="alap", seed_transpiler=seed)


def _simulator(backend: "BackendV2", threads: int | None):
    from qiskit_aer import AerSimulator

    threads = threads or os.cpu_count() or 1
    # The circuits act on 1-3 qubits: parallelise across experiments, never inside one (on a busy
    # machine Aer's default nested threading is several times slower). Fusion only costs time here.
    return AerSimulator.from_backend(
        backend, method="density_matrix", max_parallel_threads=threads, max_parallel_experiments=threads,
        max_parallel_shots=1, fusion_enable=False,
    )


def _readbacks(counts: list[dict[str, int]], shots: int) -> np.ndarray:
    return np.array([(c.get("0", 0) - c.get("1", 0)) / shots for c in counts], dtype=float)


def characterise(
    backend: "str | BackendV2" = DEFAULT_BACKEND,
    *,
    grid: int | Iterable[float] = DEFAULT_GRID,
    shots: int = DEFAULT_SHOTS,
    repeats: int = DEFAULT_REPEATS,
    ks: Iterable[int] = DEFAULT_KS,
    max_hops: int = 2,
    qubits: Iterable[int] | None = None,
    seed: int = DEFAULT_SEED,
    cache_dir: Path | str | None = None,
    threads: int | None = None,
) -> Characterisation:
    """Characterise ``backend`` (a name or a fake backend instance) on qiskit-aer; see the module docstring.

    ``grid``: number of evenly spaced values in ``[-1, 1]``, or the values. ``shots``: shots per read-back
    (one batch). ``repeats``: batches per ``(circuit, value)``. ``ks``: the CNOT-pair counts to characterise
    (``0`` is the intrinsic circuit and is dropped; an empty list skips crosstalk). ``max_hops``: 1 or 2,
    how far a crosstalk neighbour may be. ``qubits``: the physical qubits to characterise (default all).
    ``cache_dir``: a folder to load the result from and store it in (see :mod:`qbench.hardware.cache`).
    ``threads``: how many experiments Aer runs in parallel (None = one per CPU core).

    The cost is ``(Q + P * len(ks)) * len(grid) * repeats`` small density-matrix experiments for ``Q``
    qubits and ``P`` (qubit, neighbour) pairs: about a minute for ibm_nairobi's defaults on 2 cores. On a
    127-qubit device, restrict ``qubits`` to the ones a model is mapped onto.
    """
    if isinstance(backend, str):
        name = canonical_backend_name(backend)
        backend = load_backend(name)
    else:
        name = canonical_backend_name(backend.name)
    values = make_grid(grid)
    if shots < 1 or repeats < 2:
        raise UsageError(f"need shots >= 1 and repeats >= 2 (got shots={shots}, repeats={repeats})")
    if max_hops not in (1, 2):
        raise UsageError(f"max_hops must be 1 or 2, got {max_hops}")
    k_list = tuple(sorted({int(k) for k in ks} - {0}))
    if any(k < 0 for k in k_list):
        raise UsageError(f"CNOT-pair counts must be >= 0, got {list(ks)}")
    topology = backend_topology(backend)
    chosen = tuple(sorted(set(range(backend.num_qubits) if qubits is None else (int(q) for q in qubits))))
    if not chosen or chosen[0] < 0 or chosen[-1] >= backend.num_qubits:
        raise UsageError(f"qubits must be among 0..{backend.num_qubits - 1}, got {list(chosen)}")
    pairs = tuple((q, n, hops) for q in chosen for n, hops in topology.within(q, max_hops)) if k_list else ()

    fingerprint = calibration_fingerprint(backend)
    versions = _versions()
    key = cache_key({
        "format": FORMAT, "backend": name, "fingerprint": fingerprint, "shots": shots, "repeats": repeats,
        "grid": values.tolist(), "ks": list(k_list), "max_hops": max_hops, "qubits": list(chosen), "seed": seed,
        "versions": versions,
    })
    cache = JsonCache(cache_dir) if cache_dir is not None else None
    if cache is not None:
        hit = cache.load(key, Characterisation.from_dict, label=name)
        if hit is not None:
            hit.loaded_from = str(cache.path(key, name))
            log.info("characterisation of %s loaded from %s", name, cache.path(key, name))
            return hit

    from qiskit.circuit import Parameter

    start = time.perf_counter()
    theta = Parameter("theta")
    circuits = [encoding_circuit(backend.num_qubits, q, theta) for q in chosen]
    circuits += [encoding_circuit(backend.num_qubits, q, theta, neighbour=n, pairs=k, topology=topology)
                 for q, n, _ in pairs for k in k_list]
    compiled = transpile_for(backend, circuits, seed)
    thetas = np.repeat(np.arccos(values), repeats).tolist()
    log.info("characterising %s: %d circuits x %d values x %d batches of %d shots", name, len(compiled),
             len(values), repeats, shots)
    result = _simulator(backend, threads).run(
        compiled, parameter_binds=[{theta: thetas}] * len(compiled), shots=shots, seed_simulator=seed,
    ).result()
    readback = _readbacks(result.get_counts(), shots).reshape(len(compiled), len(values), repeats)
    bias = readback.mean(axis=2) - values
    sd = readback.std(axis=2, ddof=1)
    n_intrinsic = len(chosen)
    shape = (len(pairs), len(k_list), len(values))
    characterisation = Characterisation(
        backend=name, fingerprint=fingerprint, n_qubits=backend.num_qubits, edges=topology.edges, grid=values,
        shots=shots, repeats=repeats, seed=seed, qubits=chosen,
        intrinsic_bias=bias[:n_intrinsic], intrinsic_sd=sd[:n_intrinsic],
        pairs=pairs, ks=k_list,
        crosstalk_bias=bias[n_intrinsic:].reshape(shape), crosstalk_sd=sd[n_intrinsic:].reshape(shape),
        versions=versions, key=key, seconds=round(time.perf_counter() - start, 3),
    )
    if cache is not None:
        path = cache.save(key, characterisation.to_dict(), label=name)
        log.info("characterisation of %s stored in %s", name, path)
    return characterisation

