"""Trained models by name from the committed published store (RobustBench's load_model)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import qbench
from qbench.errors import UsageError
from qbench.publishing.loading import clean_bits, load_trained
from qbench.publishing.published_store import published_cells
from conftest import ROOT, SHARED_DATA

PUBLISHED = ROOT / "leaderboards" / "store"
ENTRIES = ROOT / "leaderboards"


@pytest.mark.parametrize("defense", ["none", "noise_layer"])
def test_a_loaded_model_reproduces_its_committed_clean_cell_exactly(defense):
    trained = load_trained("moons-qnn-angle", defense, 0, PUBLISHED, ENTRIES)
    entry = json.loads((ENTRIES / "qnn" / "moons-qnn-angle" / f"{defense}.json").read_text())
    key = next(c["key"] for c in entry["cells"] if c["kind"] == "clean" and c["seed"] == 0)
    committed = published_cells(PUBLISHED)[key]
    bits = clean_bits(trained)
    assert bits.shape == committed.correct.shape
    assert np.array_equal(bits, committed.correct)
    # and it is a torch module a third-party attack can use: logits with an input gradient
    x = trained.data.x_test[:8].clone().requires_grad_(True)
    logits = trained.module(x)
    assert logits.shape == (8, 2)
    torch.nn.functional.cross_entropy(logits, trained.data.y_test[:8]).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_load_model_is_public_and_bad_names_are_one_clear_error():
    model = qbench.load_model("moons-qnn-angle", "none", 1, PUBLISHED, ENTRIES)
    assert isinstance(model, torch.nn.Module)
    with pytest.raises(UsageError, match="unknown board 'moons'"):
        qbench.load_model("moons", "none", 0, PUBLISHED, ENTRIES)
    with pytest.raises(UsageError, match="has seeds"):
        qbench.load_model("moons-qnn-angle", "none", 7, PUBLISHED, ENTRIES)
    with pytest.raises(UsageError, match="no published entry"):
        qbench.load_model("moons-qnn-angle", "qnad", 0, PUBLISHED, ENTRIES)


def test_the_cli_loads_checks_and_saves_a_published_model(tmp_path, cli):
    target = tmp_path / "m.safetensors"
    result = cli("load-model", "moons-qnn-angle", "noise_layer", "--seed", "1", "--save", str(target), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["matches_published_clean_cell"] is True and report["module"] == "LayeredQNN"
    assert target.stat().st_size > 0
    bad = cli("load-model", "moons-qnn-angle", "nonesuch")
    assert bad.returncode == 2 and "no published entry" in bad.stderr and "Traceback" not in bad.stderr


def test_every_committed_v2_entry_recomputes_exactly_from_the_committed_store():
    from qbench.registry import load_registry
    from qbench.publishing.verify import recompute_board

    registry = load_registry()
    boards = sorted({p.parent for p in ENTRIES.glob("*/*/*.json")
                     if json.loads(p.read_text()).get("schema_version") == 2})
    assert boards, "no scoring-v2 entries are committed"
    for board in boards:
        # boards on real data (MNIST, CIFAR) read it from ../shared/data, as CI has it; moons and Ising ignore it
        data_dir = SHARED_DATA
        for defense, mismatches in recompute_board(registry, board, PUBLISHED, data_dir).items():
            assert mismatches == [], f"{board.name}/{defense}: {mismatches[:3]}"
