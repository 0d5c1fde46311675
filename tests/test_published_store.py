"""The published store (leaderboards/store layout): export, import, and a grid killed on one machine,
committed, cloned elsewhere and resumed there."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import fault_plugins
import numpy as np
import pytest

from qbench.contract.dataset import TrainingSchedule
from qbench.publishing.published_store import CELLS, TRAININGS, export_store, import_store, published_cells, read_jsonl
from qbench.registry import load_registry
from qbench.running.runner import Plan, Runner
from qbench.running.store import Store

from test_kill_resume import count_cells

GRID = ["leaderboard", "run", "--track", "qnn", "--board", "moons-qnn-angle", "--defense", "none", "--seeds", "2",
        "--epochs", "2", "--n-test", "20", "--no-sweep", "--executor", "inprocess"]


@pytest.fixture(scope="module")
def grid_store(tmp_path_factory) -> Path:
    """The GRID run once, uninterrupted, into a store of its own (computed once per module; copy before writing)."""
    from conftest import run_cli

    path = tmp_path_factory.mktemp("grid") / "whole.sqlite"
    whole = run_cli(*GRID, "--store", str(path))
    assert whole.returncode == 0, whole.stderr
    return path


def tiny_run(store: Store) -> None:
    create = load_registry([("faults", fault_plugins)]).create
    plan = Plan(
        track="qnn", dataset=create("dataset", "tiny_box"), model=create("model", "tiny_linear"),
        defense=create("defense", "none"), epsilons=[0.1, 0.2], seeds=[0, 1],
        attacks=[create("attack", "fgsm"), create("attack", "pgd", {"steps": 3})],
        schedule=TrainingSchedule(epochs=2), n_eot=1, n_repeat=2,
    )
    Runner(store).run(plan)


def test_export_then_import_round_trips_every_record_and_is_idempotent(tmp_path):
    published = tmp_path / "published"
    with Store.open(tmp_path / "a.sqlite") as a:
        tiny_run(a)
        report = export_store(a, published, commit="abc123")
        cells_a = {c.key: c for c in a.cells()}
        trainings_a = a.trainings()
    assert report.cells_added == len(cells_a) == 2 * (1 + 4) and report.trainings_added == 2
    folder = published / "qnn" / "tiny_box-tiny_linear"
    lines = (folder / CELLS).read_text().splitlines()
    assert [json.loads(line)["key"] for line in lines] == sorted(cells_a)  # one line per cell, sorted by key
    assert all(json.loads(line)["commit"] for line in lines)
    assert len(list((folder / "weights").iterdir())) == 2
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}

    with Store.open(tmp_path / "a.sqlite") as a:  # exporting again adds nothing and rewrites nothing
        again = export_store(a, published)
    assert again.cells_added == 0 and again.disagreements == []
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before

    with Store.open(tmp_path / "b.sqlite") as b:
        moved = import_store(published, b)
        cells_b = {c.key: c for c in b.cells()}
        assert moved.cells_added == len(cells_a) and moved.trainings_added == 2
        assert {t.key for t in b.trainings()} == {t.key for t in trainings_a}
        for t in b.trainings():
            assert (b.artifacts / t.weights).read_bytes() == (tmp_path / "a.sqlite.artifacts" / t.weights).read_bytes()
    for key, cell in cells_a.items():
        assert np.array_equal(cells_b[key].correct, cell.correct) and cells_b[key].accuracy == cell.accuracy
    assert set(published_cells(published)) == set(cells_a)


def test_a_published_cell_that_differs_is_reported_not_overwritten(tmp_path):
    published = tmp_path / "published"
    with Store.open(tmp_path / "a.sqlite") as a:
        tiny_run(a)
        export_store(a, published)
    path = published / "qnn" / "tiny_box-tiny_linear" / CELLS
    rows = read_jsonl(path)
    key = sorted(rows)[0]
    rows[key]["accuracy"] = 0.123
    path.write_text("".join(json.dumps(rows[k], sort_keys=True) + "\n" for k in sorted(rows)))
    edited = path.read_bytes()
    with Store.open(tmp_path / "a.sqlite") as a:
        report = export_store(a, published)
    assert report.disagreements == [key] and path.read_bytes() == edited


def git(*args, cwd):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@t"})


@pytest.mark.slow
def test_a_grid_killed_on_one_machine_resumes_from_a_clone_on_another(tmp_path, cli, grid_store):
    # machine 1: the grid runs, is killed mid-way, and what it stored is exported and committed
    repo = tmp_path / "machine1"
    (repo / "store").mkdir(parents=True)
    git("init", "-q", cwd=repo)
    killed = tmp_path / "machine1.sqlite"
    proc = subprocess.Popen([str(Path(sys.executable).with_name("qbench")), *GRID, "--store", str(killed)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while count_cells(killed) < 4 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the grid finished before it could be killed; make it longer"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    exported = cli("store", "export", "--store", str(killed), "--published", str(repo / "store"), "--json")
    assert exported.returncode == 0, exported.stderr
    partial = json.loads(exported.stdout)["cells_added"]
    assert partial >= 4
    git("add", "-A", cwd=repo)
    git("commit", "-qm", "partial grid", cwd=repo)

    # machine 2: a fresh clone and a fresh local store resume the grid from the committed published store
    clone = tmp_path / "machine2"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True, capture_output=True)
    resumed = cli(*GRID, "--store", str(tmp_path / "machine2.sqlite"), "--published", str(clone / "store"))
    assert resumed.returncode == 0, resumed.stderr
    assert f"read {partial} cells" in resumed.stderr

    # an uninterrupted run elsewhere gives the same cells, each stored once
    whole = tmp_path / "whole"
    fresh = cli("store", "export", "--store", str(grid_store), "--published", str(whole))
    assert fresh.returncode == 0, fresh.stderr
    mine, theirs = published_cells(clone / "store"), published_cells(whole)
    assert set(mine) == set(theirs) and len(mine) > partial
    for key in theirs:
        assert np.array_equal(mine[key].correct, theirs[key].correct), key
    with Store.open(tmp_path / "machine2.sqlite") as store:
        keys = [c.key for c in store.cells()]
    assert len(keys) == len(set(keys)) == len(theirs)
    assert len(read_jsonl(next((clone / "store").glob(f"*/*/{TRAININGS}")))) == 2


def test_build_refuses_a_dirty_publication_tree_unless_draft(tmp_path, cli, grid_store):
    repo = tmp_path / "pub"
    (repo / "leaderboards").mkdir(parents=True)
    (repo / "notes.txt").write_text("v1\n")
    git("init", "-q", cwd=repo)
    git("add", "-A", cwd=repo)
    git("commit", "-qm", "start", cwd=repo)
    store = tmp_path / "s.sqlite"
    shutil.copyfile(grid_store, store)
    build = ["leaderboard", "build", *GRID[2:-2], "--store", str(store), "--out", str(repo / "leaderboards")]
    (repo / "notes.txt").write_text("v2\n")  # an uncommitted change
    refused = cli(*build)
    assert refused.returncode == 2 and "uncommitted changes" in refused.stderr and "Traceback" not in refused.stderr
    assert not list((repo / "leaderboards").rglob("*.json"))  # nothing written
    draft = cli(*build, "--draft")
    assert draft.returncode == 0, draft.stderr
    entry = json.loads(next((repo / "leaderboards").rglob("none.json")).read_text())
    assert entry["provenance"]["draft"] is True and entry["provenance"]["git_commit"].endswith("+dirty")
    assert "DRAFT" in next((repo / "leaderboards").rglob("README.md")).read_text()
    git("add", "-A", cwd=repo)
    git("commit", "-qm", "draft and notes", cwd=repo)
    clean = cli(*build)
    assert clean.returncode == 0, clean.stderr
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    entry = json.loads(next((repo / "leaderboards").rglob("none.json")).read_text())
    assert entry["provenance"]["git_commit"] == head and entry["provenance"]["draft"] is False
    assert entry["provenance"]["cell_commits"]  # the commits that computed the cells


def _rewrite(path: Path, rows: dict) -> None:
    path.write_text("".join(json.dumps(rows[k], sort_keys=True) + "\n" for k in sorted(rows)))


@pytest.mark.parametrize("edit", ["bits", "accuracy"])
def test_a_cell_whose_numbers_do_not_follow_from_its_bits_is_refused_on_import(tmp_path, edit):
    """Every published number is computed from the bits, while a re-run compares the ``accuracy`` field:
    bits edited under an unchanged accuracy (or the reverse) must not load."""
    import base64

    from qbench.errors import StoreError
    from qbench.running.store import _pack, _unpack

    published = tmp_path / "published"
    with Store.open(tmp_path / "a.sqlite") as a:
        tiny_run(a)
        export_store(a, published)
    path = published / "qnn" / "tiny_box-tiny_linear" / CELLS
    rows = read_jsonl(path)
    key = next(k for k in sorted(rows) if rows[k]["status"] == "ok")
    if edit == "bits":
        bits = _unpack(base64.b64decode(rows[key]["bits"]))
        bits[0] = ~bits[0]
        rows[key]["bits"] = base64.b64encode(_pack(bits)).decode()
    else:
        rows[key]["accuracy"] = rows[key]["accuracy"] + 0.01
    _rewrite(path, rows)
    with Store.open(tmp_path / "b.sqlite") as b, pytest.raises(StoreError, match=f"cell {key}.*not what its bits give"):
        import_store(published, b)


def test_a_training_with_other_weights_keeps_the_existing_ones_and_its_cells_stay_out(tmp_path):
    """One training key, two machines, different weights: neither export, import nor merge may mix the
    other side's cells (computed from its weights) into a store whose weights are not those."""
    from safetensors.torch import load_file, save_file

    from qbench.running.store_merge import merge_store

    published = tmp_path / "published"
    with Store.open(tmp_path / "a.sqlite") as a:
        tiny_run(a)
        export_store(a, published)
    with Store.open(tmp_path / "b.sqlite") as b:
        tiny_run(b)
        training = sorted(b.trainings(), key=lambda t: t.key)[0]
        weights = b.artifacts / training.weights
        save_file({k: v + 1.0 for k, v in load_file(str(weights)).items()}, str(weights))
        # the published board loses that training's cells: an export would add b's back if it mixed them
        path = published / "qnn" / "tiny_box-tiny_linear" / CELLS
        rows = read_jsonl(path)
        _rewrite(path, {k: r for k, r in rows.items() if r["train_key"] != training.key})
        report = export_store(b, published)
        assert report.weight_disagreements == [training.key] and report.cells_added == 0
        assert not any(r["train_key"] == training.key for r in read_jsonl(path).values())
    with Store.open(tmp_path / "a.sqlite") as a:
        assert import_store(published, a).weight_disagreements == []  # a's weights are the published ones
        merged = merge_store(tmp_path / "b.sqlite", a)
        assert merged.weight_disagreements == [training.key]
    # an identical copy is no disagreement
    with Store.open(tmp_path / "c.sqlite") as c:
        tiny_run(c)
        assert export_store(c, published).weight_disagreements == []


def test_cells_whose_training_the_store_lacks_are_counted_not_dropped_silently(tmp_path):
    published = tmp_path / "published"
    with Store.open(tmp_path / "a.sqlite") as a:
        tiny_run(a)
        orphan = sorted(a.trainings(), key=lambda t: t.key)[0].key
        expected = sorted(c.key for c in a.cells() if c.train_key == orphan)
        a.conn.execute("DELETE FROM trainings WHERE key=?", (orphan,))
        a.conn.commit()
        report = export_store(a, published)
    assert sorted(report.cells_without_training) == expected and expected
    assert not any(r["train_key"] == orphan for r in read_jsonl(published / "qnn" / "tiny_box-tiny_linear" / CELLS).values())
