"""The CLI run for real in subprocesses, computing: JSON output and determinism, sweeps, the cascade's table,
the track and board choices of a run (the refusals are in ``test_cli.py``)."""

import json
import sqlite3

import pytest
from conftest import one_line_error

FAST = ["--epochs", "3", "--seeds", "1", "--n-test", "60", "--attack", "fgsm"]

def test_evaluate_json_is_deterministic_and_resumable(cli, tmp_path):
    args = ["evaluate", "--defense", "none", "--json", *FAST, "--epsilon", "0.15", "--epsilon", "0.3"]
    a = cli(*args, "--store", str(tmp_path / "a.sqlite"))
    b = cli(*args, "--store", str(tmp_path / "b.sqlite"))
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    ra, rb = json.loads(a.stdout), json.loads(b.stdout)
    summary = ra["defense"]
    assert summary["clean"] == rb["defense"]["clean"]
    assert summary["attacks"] == rb["defense"]["attacks"]
    assert summary["worst_case"] == rb["defense"]["worst_case"]
    assert summary["cells_computed"] == 4  # clean, fgsm at two epsilons, the large-epsilon probe
    assert [r["attack"] for r in summary["attacks"]] == ["fgsm", "fgsm"]
    assert summary["worst_case"][0]["robust"]["mean"] <= summary["clean"]["mean"]
    # a re-run reads every cell back from the store
    again = json.loads(cli(*args, "--store", str(tmp_path / "a.sqlite")).stdout)
    assert again["defense"]["cells_computed"] == 0
    assert again["defense"]["worst_case"] == summary["worst_case"]
    conn = sqlite3.connect(tmp_path / "a.sqlite")
    assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT key) FROM cells").fetchone() == (4, 4)  # with the large-epsilon probe


def test_sweep_runs_one_option_over_values(cli, store_path):
    proc = cli(
        "sweep", "--defense", "gaussian_augmentation", "--option", "sigma", "--values", "0.05,0.5", "--attack", "fgsm",
        *FAST, "--json", "--store", str(store_path),
    )
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)["rows"]
    assert [r["value"] for r in rows] == ["0.05", "0.5"]
    assert [r["defense_info"][0]["sigma"] for r in rows] == [0.05, 0.5]
    bad = cli("sweep", "--defense", "gaussian_augmentation", "--option", "sigmaa", "--values", "1", "--store", str(store_path))
    assert "unknown option 'sigmaa'" in one_line_error(bad, 2)


def test_a_defense_of_the_other_track_says_it_switched(cli, store_path):
    from conftest import SHARED_DATA

    if not (SHARED_DATA / "mnist").exists():
        pytest.skip(f"MNIST is not in {SHARED_DATA}")
    proc = cli("evaluate", "--defense", "qnad", "--dry-run", "--dataset-option", "n_train=100", "--dataset-option",
               "n_test=20", "--data-dir", str(SHARED_DATA), "--store", str(store_path))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0] == ("qbench: defense 'qnad' runs on the mapped-dnn track only: using --track mapped-dnn "
                        "(dataset mnist, model lenet)")
    assert lines[1].startswith("qbench: to compute: 3 trainings and ")  # qnad, its compare_with, none: 3 seeds
    explicit = cli("evaluate", "--defense", "qnad", "--track", "mapped-dnn", "--dry-run", "--dataset-option",
                   "n_train=100", "--dataset-option", "n_test=20", "--data-dir", str(SHARED_DATA),
                   "--store", str(store_path))
    assert explicit.returncode == 0, explicit.stderr
    assert "runs on the mapped-dnn track only" not in explicit.stderr
    assert not store_path.exists()


def test_the_table_marks_cascaded_attacks_and_their_share_of_the_examples(cli, store_path):
    """A cascaded attack's number is a stage of the cascade, not the attack alone: the table says so."""
    args = ["evaluate", "--defense", "none", "--epochs", "3", "--seeds", "1", "--n-test", "40", "--attack", "fgsm",
            "--attack", "pgd", "--attack", "square", "--store", str(store_path)]
    proc = cli(*args)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    square = next(line for line in lines if "square ε=0.15" in line)
    pgd = next(line for line in lines if "pgd ε=0.15" in line)
    assert "†" in square and "(on " in square and "%)" in square
    assert "†" not in pgd and "(on " not in pgd  # a gate: the attack on every example
    assert any(line.startswith("† a stage of the cascade") for line in lines)
    as_json = json.loads(cli(*args, "--json").stdout)
    row = next(r for r in as_json["defense"]["attacks"] if r["attack"] == "square")
    assert row["cascaded"] is True and 0 < row["attacked"] <= 1


def test_board_names_span_the_selected_tracks(cli, store_path):
    """``--board`` names boards of any selected track: a QNN and a mapped-DNN board in one command (with no
    --track, or both) plan exactly the cells of the two separate commands; a name on no selected track is
    one line with a hint."""
    from conftest import SHARED_DATA

    if not (SHARED_DATA / "mnist").exists():
        pytest.skip(f"MNIST is not in {SHARED_DATA}")

    def planned(*boards, tracks=()):
        args = [a for b in boards for a in ("--board", b)] + [a for t in tracks for a in ("--track", t)]
        proc = cli("leaderboard", "run", *args, "--seeds", "1", "--no-sweep", "--dry-run", "--data-dir", str(SHARED_DATA),
                   "--store", str(store_path))
        assert proc.returncode == 0, proc.stderr
        line = next(l for l in proc.stderr.splitlines() if "to compute:" in l)
        trainings, cells = [int(w) for w in line.split() if w.isdigit()][:2]  # "N trainings and M cells"
        return trainings, cells

    qnn, mapped = planned("moons-qnn-angle"), planned("mnist-lenet")
    both = planned("moons-qnn-angle", "mnist-lenet")
    assert both == (qnn[0] + mapped[0], qnn[1] + mapped[1]) and qnn[1] > 0 and mapped[1] > 0
    assert planned("moons-qnn-angle", "mnist-lenet", tracks=("qnn", "mapped-dnn")) == both
    assert not store_path.exists()  # dry runs store nothing
    # a name on no selected track: the cases unknown-board-any-track and board-of-another-track of test_bad_inputs
