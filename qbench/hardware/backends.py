"""IBM fake backends by name, and the topology of their coupling maps.

The backends are qiskit-ibm-runtime's offline fake backends: a snapshot of a real device's coupling map,
basis gates and calibration (gate errors and durations, T1/T2, readout errors), enough for
``qiskit_aer.noise.NoiseModel.from_backend``. A backend is named the way users know it —
``"ibm_nairobi"`` — and the spellings ``"nairobi"``, ``"fake_nairobi"`` and ``"FakeNairobiV2"`` name the same one.
"""

from __future__ import annotations

import difflib
import inspect
from collections import deque
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from qbench.errors import UsageError
from qbench.hashing import config_hash

if TYPE_CHECKING:
    from qiskit_ibm_runtime.fake_provider.fake_backend import FakeBackendV2

DEFAULT_BACKEND = "ibm_nairobi"


def _key(name: str) -> str:
    """The spelling-independent key of a backend name: ``"FakeNairobiV2"``, ``"ibm_nairobi"`` -> ``"nairobi"``."""
    key = name.strip().lower().replace("-", "_")
    for prefix in ("ibmq_", "ibm_", "fake_", "fake"):
        if key.startswith(prefix):
            key = key[len(prefix):]
            break
    if key.endswith("v2"):
        key = key[:-2]
    return key.replace("_", "")


@cache
def _classes() -> dict[str, type]:
    """Key -> fake backend class, read from the module without instantiating anything (that is slow)."""
    import qiskit_ibm_runtime.fake_provider as provider
    from qiskit_ibm_runtime.fake_provider.fake_backend import FakeBackendV2

    return {
        _key(name): cls for name, cls in vars(provider).items()
        if inspect.isclass(cls) and issubclass(cls, FakeBackendV2) and cls is not FakeBackendV2
    }


def backend_names() -> list[str]:
    """The canonical names (``ibm_<device>``) of every fake backend qbench can load, sorted."""
    return sorted(f"ibm_{key}" for key in _classes())


def canonical_backend_name(name: str) -> str:
    """The canonical ``ibm_<device>`` name of ``name``; an unknown name raises :class:`UsageError`."""
    key = _key(name)
    classes = _classes()
    if key not in classes:
        close = difflib.get_close_matches(key, list(classes), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(f'ibm_{c}' for c in close)}?" if close else ""
        raise UsageError(
            f"unknown backend {name!r}{hint} ({len(classes)} fake backends are available, "
            "see qbench.hardware.backend_names())"
        )
    return f"ibm_{key}"


def load_backend(name: str = DEFAULT_BACKEND) -> "FakeBackendV2":
    """A fresh instance of the fake backend ``name`` (``"ibm_nairobi"``, ``"nairobi"``, ``"FakeNairobiV2"`` ...).

    Raises :class:`qbench.errors.UsageError` with the closest known names when ``name`` is unknown.
    """
    key = _key(canonical_backend_name(name))
    return _classes()[key]()


def calibration_fingerprint(backend: "FakeBackendV2") -> str | None:
    """A hash of the backend's calibration snapshot (all properties), or None when it has none.

    Two backends with the same fingerprint give the same noise model, so a cached characterisation of
    one is valid for the other.
    """
    properties = backend.properties()
    if properties is None:
        return None
    return config_hash({"backend_version": getattr(backend, "backend_version", None), "properties": properties.to_dict()})


@dataclass(frozen=True)
class Topology:
    """An undirected coupling graph: ``n_qubits`` physical qubits and the ``edges`` between them.

    ``edges`` holds each coupled pair once, as ``(low, high)``, sorted. Distances are hop counts on
    this graph; "the 1-hop neighbours of q" are the qubits coupled to q, "the 2-hop neighbours" the qubits
    at distance exactly 2 (coupled to a neighbour of q, but neither q nor one of its 1-hop neighbours).
    """

    n_qubits: int
    edges: tuple[tuple[int, int], ...]

    @classmethod
    def from_edges(cls, n_qubits: int, edges) -> "Topology":
        """Build from directed or undirected pairs (duplicates and both directions collapse to one edge)."""
        pairs = sorted({(min(a, b), max(a, b)) for a, b in edges if a != b})
        for a, b in pairs:
            if not (0 <= a < n_qubits and 0 <= b < n_qubits):
                raise ValueError(f"edge ({a}, {b}) outside {n_qubits} qubits")
        return cls(n_qubits, tuple(pairs))

    def _adjacency(self) -> list[list[int]]:
        adjacency: list[list[int]] = [[] for _ in range(self.n_qubits)]
        for a, b in self.edges:
            adjacency[a].append(b)
            adjacency[b].append(a)
        return [sorted(row) for row in adjacency]

    def distances(self, qubit: int) -> dict[int, int]:
        """Hop distance from ``qubit`` to every qubit reachable from it (itself at 0)."""
        adjacency = self._adjacency()
        seen = {qubit: 0}
        queue = deque([qubit])
        while queue:
            here = queue.popleft()
            for there in adjacency[here]:
                if there not in seen:
                    seen[there] = seen[here] + 1
                    queue.append(there)
        return seen

    def neighbours(self, qubit: int, hops: int = 1) -> tuple[int, ...]:
        """The qubits at exactly ``hops`` hops from ``qubit``, ascending."""
        return tuple(sorted(q for q, d in self.distances(qubit).items() if d == hops))

    def within(self, qubit: int, max_hops: int = 2) -> tuple[tuple[int, int], ...]:
        """``(neighbour, hops)`` for every qubit 1..``max_hops`` hops away, nearest first, then ascending."""
        return tuple(sorted(((q, d) for q, d in self.distances(qubit).items() if 0 < d <= max_hops),
                            key=lambda item: (item[1], item[0])))

    def path(self, source: int, target: int) -> tuple[int, ...]:
        """A shortest path ``(source, ..., target)``: the first one a breadth-first search finds visiting
        neighbours in ascending order, so the same graph always gives the same path."""
        adjacency = self._adjacency()
        previous = {source: source}
        queue = deque([source])
        while queue and target not in previous:
            here = queue.popleft()
            for there in adjacency[here]:
                if there not in previous:
                    previous[there] = here
                    queue.append(there)
        if target not in previous:
            raise ValueError(f"qubits {source} and {target} are not connected")
        path = [target]
        while path[-1] != source:
            path.append(previous[path[-1]])
        return tuple(reversed(path))


def backend_topology(backend: "FakeBackendV2") -> Topology:
    """The undirected coupling graph of ``backend``."""
    coupling = backend.coupling_map
    edges = coupling.get_edges() if coupling is not None else []
    return Topology.from_edges(backend.num_qubits, edges)
