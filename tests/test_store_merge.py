"""``qbench merge``: stores run apart become one, without losing or overwriting a stored result."""

import json
import sqlite3

import pytest
from test_cli import digest, one_line_error

from qbench.cli import main
from qbench.running.store import Store

FAST = ["--epochs", "2", "--seeds", "1", "--n-test", "40", "--attack", "fgsm", "--json"]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """Store A: the undefended model. Store B: gaussian_augmentation and its undefended baseline."""
    tmp = tmp_path_factory.mktemp("merge")
    a, b = tmp / "a.sqlite", tmp / "b.sqlite"
    assert main(["evaluate", "--defense", "none", "--no-baseline", *FAST, "--store", str(a)]) == 0
    assert main(["evaluate", "--defense", "gaussian_augmentation", *FAST, "--store", str(b)]) == 0
    return a, b


def rows(path, table):
    with sqlite3.connect(path) as conn:
        return {r[0]: r for r in conn.execute(f"SELECT * FROM {table}")}


def copy_store(src, dst):
    with sqlite3.connect(src) as s, sqlite3.connect(dst) as d:
        s.backup(d)
    return dst


def test_merge_brings_in_cells_and_weights_and_leaves_the_source(cli, pair, tmp_path):
    a, b = copy_store(pair[0], tmp_path / "a.sqlite"), pair[1]
    before_b = digest(b)
    cells_a, cells_b = rows(a, "cells"), rows(b, "cells")
    shared = set(cells_a) & set(cells_b)
    assert shared and set(cells_b) - set(cells_a)  # the undefended cells are in both, GA's only in B
    proc = cli("merge", str(b), "--store", str(a), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)["merged"][0]
    assert report["cells_added"] == len(set(cells_b) - set(cells_a))
    assert report["cells_kept"] == len(shared) and report["disagreements"] == []
    merged = rows(a, "cells")
    assert set(merged) == set(cells_a) | set(cells_b)
    assert all(merged[k] == cells_b[k] for k in set(cells_b) - set(cells_a))  # verbatim, timestamps included
    # the shared cells kept A's records, whose results (status, n, n_correct, accuracy, outcomes) equal B's
    assert all(merged[k] == cells_a[k] and merged[k][7:12] == cells_b[k][7:12] for k in shared)
    assert digest(b) == before_b
    with Store.open(a, create=False) as store:
        for key in rows(b, "trainings"):
            assert store.get_training(key) is not None  # record and weights file both arrived
    # merging again adds nothing
    again = json.loads(cli("merge", str(b), "--store", str(a), "--json").stdout)["merged"][0]
    assert again["cells_added"] == 0 and again["trainings_added"] == 0


def test_a_disagreeing_cell_is_reported_and_the_destination_kept(cli, pair, tmp_path):
    a, b = copy_store(pair[0], tmp_path / "a.sqlite"), copy_store(pair[1], tmp_path / "b.sqlite")
    key = next(k for k, r in rows(a, "cells").items() if k in rows(b, "cells") and r[3] == "attack")
    with sqlite3.connect(b) as conn:
        conn.execute("UPDATE cells SET accuracy = accuracy + 0.25 WHERE key=?", (key,))
    kept = rows(a, "cells")[key]
    proc = cli("merge", str(b), "--store", str(a))
    line = one_line_error(proc, 1)
    assert "1 cells differ" in line and key in line
    assert rows(a, "cells")[key] == kept


def test_a_failed_cell_is_replaced_by_the_sources_result(cli, pair, tmp_path):
    a, b = copy_store(pair[0], tmp_path / "a.sqlite"), pair[1]
    key = next(k for k, r in rows(a, "cells").items() if k in rows(b, "cells") and r[3] == "clean")
    with sqlite3.connect(a) as conn:
        conn.execute("UPDATE cells SET status='failed', accuracy=NULL, error='worker died' WHERE key=?", (key,))
    assert cli("merge", str(b), "--store", str(a)).returncode == 0
    assert rows(a, "cells")[key] == rows(b, "cells")[key]


@pytest.mark.parametrize("case", ["itself", "missing", "not-a-store"])
def test_bad_merges_are_one_line_and_change_nothing(cli, pair, tmp_path, case):
    a = copy_store(pair[0], tmp_path / "a.sqlite")
    before = digest(a)
    source = {"itself": a, "missing": tmp_path / "nope.sqlite", "not-a-store": tmp_path / "x.txt"}[case]
    if case == "not-a-store":
        source.write_text("hello")
    line = one_line_error(cli("merge", str(source), "--store", str(a)), 2)
    assert {"itself": "into itself", "missing": "no qbench store", "not-a-store": "not a qbench store"}[case] in line
    assert digest(a) == before
