"""Fake backends by name, and the topology of ibm_nairobi's coupling map."""

from __future__ import annotations

import pytest

from qbench.errors import UsageError
from qbench.hardware import (
    Topology, backend_names, backend_topology, calibration_fingerprint, canonical_backend_name, load_backend,
)

# ibm_nairobi (Falcon r5.11H, 7 qubits): 0-1-2 on top, 1-3-5 down the middle, 4-5-6 at the bottom.
NAIROBI_EDGES = ((0, 1), (1, 2), (1, 3), (3, 5), (4, 5), (5, 6))
NAIROBI_1HOP = {0: (1,), 1: (0, 2, 3), 2: (1,), 3: (1, 5), 4: (5,), 5: (3, 4, 6), 6: (5,)}
NAIROBI_2HOP = {0: (2, 3), 1: (5,), 2: (0, 3), 3: (0, 2, 4, 6), 4: (3, 6), 5: (1,), 6: (3, 4)}


@pytest.fixture(scope="module")
def nairobi():
    return load_backend()


@pytest.mark.parametrize("name", ["ibm_nairobi", "nairobi", "fake_nairobi", "FakeNairobiV2", " IBM_Nairobi "])
def test_spellings_name_the_same_backend(name):
    assert canonical_backend_name(name) == "ibm_nairobi"
    assert type(load_backend(name)).__name__ == "FakeNairobiV2"


def test_default_backend_is_nairobi(nairobi):
    assert nairobi.name == "fake_nairobi"
    assert nairobi.num_qubits == 7


def test_unknown_backend_suggests_close_names():
    with pytest.raises(UsageError, match="did you mean ibm_nairobi") as info:
        load_backend("nairobbi")
    assert info.value.exit_code == 2
    with pytest.raises(UsageError, match="unknown backend 'zzz-not-a-device'"):
        canonical_backend_name("zzz-not-a-device")


def test_backend_names_are_canonical():
    names = backend_names()
    assert "ibm_nairobi" in names and "ibm_brisbane" in names
    assert names == sorted(names)
    assert all(canonical_backend_name(name) == name for name in names)


def test_nairobi_coupling_map(nairobi):
    topology = backend_topology(nairobi)
    assert topology.n_qubits == 7
    assert topology.edges == NAIROBI_EDGES


@pytest.mark.parametrize("qubit", range(7))
def test_nairobi_neighbours(nairobi, qubit):
    topology = backend_topology(nairobi)
    assert topology.neighbours(qubit, 1) == NAIROBI_1HOP[qubit]
    assert topology.neighbours(qubit, 2) == NAIROBI_2HOP[qubit]
    within = topology.within(qubit, 2)
    assert [n for n, _ in within] == list(NAIROBI_1HOP[qubit] + NAIROBI_2HOP[qubit])
    assert [h for _, h in within] == [1] * len(NAIROBI_1HOP[qubit]) + [2] * len(NAIROBI_2HOP[qubit])
    assert topology.within(qubit, 1) == tuple((n, 1) for n in NAIROBI_1HOP[qubit])


def test_paths_are_shortest_and_deterministic():
    topology = Topology.from_edges(7, [(1, 0), (0, 1), *NAIROBI_EDGES])
    assert topology.edges == NAIROBI_EDGES
    assert topology.path(0, 2) == (0, 1, 2)
    assert topology.path(3, 6) == (3, 5, 6)
    assert topology.path(4, 4) == (4,)
    assert topology.path(0, 6) == (0, 1, 3, 5, 6)
    with pytest.raises(ValueError, match="not connected"):
        Topology.from_edges(3, [(0, 1)]).path(0, 2)
    with pytest.raises(ValueError):
        Topology.from_edges(2, [(0, 5)])


def test_calibration_fingerprint_is_stable(nairobi):
    first = calibration_fingerprint(nairobi)
    assert isinstance(first, str) and len(first) == 32
    assert calibration_fingerprint(load_backend("nairobi")) == first
    assert calibration_fingerprint(load_backend("ibm_lagos")) != first
