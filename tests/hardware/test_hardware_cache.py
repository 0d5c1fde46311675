"""The JSON cache of characterisations: round trip, keying, and recovery from corrupt files."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from qbench.hardware import Characterisation, JsonCache, characterise, load_backend

TINY = dict(grid=3, shots=64, repeats=2, ks=(1,), qubits=(4,), seed=3)


@pytest.fixture(scope="module")
def backend():
    return load_backend("ibm_nairobi")


def _files(folder):
    return sorted(p for p in folder.iterdir() if p.suffix == ".json")


def test_round_trip(backend, tmp_path):
    computed = characterise(backend, cache_dir=tmp_path, **TINY)
    assert computed.loaded_from is None
    [path] = _files(tmp_path)
    assert path.name.startswith("ibm_nairobi-") and computed.key in path.name

    loaded = characterise(backend, cache_dir=tmp_path, **TINY)
    assert loaded.loaded_from == str(path)
    assert loaded.to_dict() == computed.to_dict()
    np.testing.assert_array_equal(loaded.crosstalk_bias, computed.crosstalk_bias)
    assert loaded.pairs == computed.pairs == ((4, 5, 1), (4, 3, 2), (4, 6, 2))
    assert Characterisation.from_dict(json.loads(json.dumps(computed.to_dict()))).to_dict() == computed.to_dict()


def test_key_covers_the_arguments(backend, tmp_path):
    first = characterise(backend, cache_dir=tmp_path, **TINY)
    other = characterise(backend, cache_dir=tmp_path, **{**TINY, "shots": 32})
    assert other.key != first.key and other.loaded_from is None
    assert len(_files(tmp_path)) == 2


@pytest.mark.parametrize("damage", [
    lambda text: text[: len(text) // 2],                      # truncated JSON
    lambda text: "not json at all",
    lambda text: json.dumps({"key": "someone-else", "value": {}}),
    lambda text: text.replace('"intrinsic_sd"', '"intrinsic_xx"'),  # a field missing
    lambda text: json.dumps({**json.loads(text), "value": {**json.loads(text)["value"], "grid": [0.0]}}),
    lambda text: "",
])
def test_corrupt_file_is_recomputed(backend, tmp_path, caplog, damage):
    computed = characterise(backend, cache_dir=tmp_path, **TINY)
    [path] = _files(tmp_path)
    path.write_text(damage(path.read_text()))

    with caplog.at_level(logging.WARNING, logger="qbench.hardware"):
        again = characterise(backend, cache_dir=tmp_path, **TINY)
    assert again.loaded_from is None
    assert "ignoring unusable cache file" in caplog.text
    assert again.to_dict() | {"seconds": 0} == computed.to_dict() | {"seconds": 0}
    assert characterise(backend, cache_dir=tmp_path, **TINY).loaded_from == str(path)  # rewritten, usable


def test_json_cache_writes_atomically(tmp_path):
    cache = JsonCache(tmp_path / "nested")
    path = cache.save("abc", {"x": [1, 2]}, label="a/b")
    assert path == tmp_path / "nested" / "a_b-abc.json"
    assert cache.load("abc", dict, label="a/b") == {"x": [1, 2]}
    assert cache.load("missing", dict) is None
    assert [p.name for p in (tmp_path / "nested").iterdir()] == [path.name]  # no temporary left behind
