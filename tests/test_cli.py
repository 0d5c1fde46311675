"""The CLI run for real in subprocesses: exit codes, one-line errors, JSON output, determinism."""

import hashlib
import json
import sqlite3

import pytest

FAST = ["--epochs", "3", "--seeds", "1", "--n-test", "60", "--attack", "fgsm"]


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def one_line_error(proc, code):
    assert proc.returncode == code, proc.stderr
    lines = [l for l in proc.stderr.strip().splitlines() if l]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_unknown_defense_exits_2_with_did_you_mean_and_leaves_store(cli, store_path):
    first = cli("evaluate", "--defense", "none", *FAST, "--store", str(store_path))
    assert first.returncode == 0, first.stderr
    before = digest(store_path)
    proc = cli("evaluate", "--defense", "nonee", "--store", str(store_path))
    line = one_line_error(proc, 2)
    assert "unknown defense 'nonee'; did you mean 'none'?" in line
    assert digest(store_path) == before


def test_unknown_defense_creates_no_store(cli, store_path):
    proc = cli("evaluate", "--defense", "nope", "--store", str(store_path))
    assert "unknown defense 'nope'" in one_line_error(proc, 2)
    assert not store_path.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["evaluate", "--defense", "none", "--epsilon", "-0.1"], "epsilon must be a finite number >= 0"),
        (["evaluate", "--defense", "none", "--seeds", "0"], "expected a positive integer"),
        (["evaluate", "--defense", "none", "--track", "classical"], "invalid choice: 'classical'"),
        (["evaluate", "--defense", "none", "--attack", "fgsn"], "unknown attack 'fgsn'; did you mean 'fgsm'?"),
        (["evaluate", "--defense", "none", "--dataset", "moon"], "unknown dataset 'moon'; did you mean 'moons'?"),
        (["evaluate", "--defense", "none", "--dataset-option", "noise=-1"], "noise must be >= 0"),
        (["evaluate", "--defense", "none", "--model-option", "n_layers=zero"], "n_layers must be an integer"),
        (["evaluate", "--defense", "none", "--attack-option", "fgsm"], "expected KEY=VALUE"),
        (["evaluate", "--defense", "none", "--data-dir", "/no/such/dir"], "is not a directory"),
        (["evaluate"], "the following arguments are required: --defense"),
        ([], "a command is required"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_usage_is_one_line_exit_2(cli, store_path, args, message):
    proc = cli(*args, "--store", str(store_path)) if args and args[0] == "evaluate" else cli(*args)
    assert message in one_line_error(proc, 2)
    assert not store_path.exists()


def test_debug_shows_traceback(cli, store_path):
    proc = cli("evaluate", "--defense", "nope", "--store", str(store_path), "--debug")
    assert proc.returncode == 2 and "Traceback" in proc.stderr


def test_corrupt_store_is_refused_untouched(cli, tmp_path):
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"definitely not sqlite")
    proc = cli("evaluate", "--defense", "none", *FAST, "--store", str(bad))
    assert "not a qbench store" in one_line_error(proc, 2)
    assert bad.read_bytes() == b"definitely not sqlite"
    proc = cli("results", "--store", str(bad))
    assert "not a qbench store" in one_line_error(proc, 2)


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


def test_results_lists_cells(cli, store_path):
    cli("evaluate", "--defense", "none", *FAST, "--store", str(store_path))
    proc = cli("results", "--json", "--store", str(store_path))
    cells = json.loads(proc.stdout)["cells"]
    assert {(c["kind"], c["attack"]) for c in cells} == {("clean", None), ("attack", "fgsm"), ("probe", "pgd")}
    assert all(c["defense"] == "none" and c["dataset"] == "moons" for c in cells)


def test_plugins_json_lists_builtins_with_distribution(cli):
    proc = cli("plugins", "--json")
    assert proc.returncode == 0, proc.stderr
    items = {(c["kind"], c["name"]): c for c in json.loads(proc.stdout)["components"]}
    for key in [("dataset", "moons"), ("model", "qnn"), ("defense", "none"), ("attack", "fgsm")]:
        assert items[key]["distribution"] == "qbench"
    assert items[("model", "qnn")]["config"]["n_layers"] == 10
    assert items[("dataset", "moons")]["config"] == {"n_samples": 1000, "noise": 0.03, "test_fraction": 0.2, "split_seed": 0}


def test_global_flags_work_before_and_after_the_command(cli):
    """``qbench --json plugins`` is ``qbench plugins --json`` (a subcommand used to reset the flag to False)."""
    before, after = cli("--json", "plugins", "--kind", "defense"), cli("plugins", "--kind", "defense", "--json")
    assert before.returncode == after.returncode == 0, before.stderr + after.stderr
    assert json.loads(before.stdout) == json.loads(after.stdout)
    assert {c["name"] for c in json.loads(before.stdout)["components"]} >= {"none", "noise_layer", "qnad"}
    debug = cli("--debug", "evaluate", "--defense", "nonee")
    assert debug.returncode == 2 and "Traceback" in debug.stderr  # --debug before the command shows it too


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


def test_a_mistyped_device_is_refused_before_anything_is_stored(cli, store_path):
    first = cli("evaluate", "--defense", "none", *FAST, "--store", str(store_path))
    assert first.returncode == 0, first.stderr
    before = digest(store_path)
    proc = cli("evaluate", "--defense", "none", *FAST, "--device", "default.qubitt", "--store", str(store_path))
    line = one_line_error(proc, 2)
    assert line.startswith("qbench: error: unknown PennyLane device 'default.qubitt'; did you mean 'default.qubit'?")
    assert "default.mixed" in line  # the installed devices are listed
    assert digest(store_path) == before
    # clean, fgsm and the large-epsilon probe of the first run, nothing more
    assert sqlite3.connect(store_path).execute("SELECT status FROM cells").fetchall() == [("ok",)] * 3
    # an installed device passes the check (nothing is built for it in a dry run)
    ok = cli("evaluate", "--defense", "none", *FAST, "--device", "default.qubit", "--dry-run", "--store", str(store_path))
    assert ok.returncode == 0, ok.stderr
    assert "qbench: to compute: 1 training and 3 cells (0 of 3 already in the store)" in ok.stderr
    dnn = cli("evaluate", "--track", "mapped-dnn", "--defense", "none", "--device", "default.qubit", "--store", str(store_path))
    assert "the mapped-dnn track runs no circuits" in one_line_error(dnn, 2)


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
                   "n_train=100", "--dataset-option", "n_test=20", "--data-dir", str(SHARED_DATA))
    assert "runs on the mapped-dnn track only" not in explicit.stderr
    assert not store_path.exists()


def test_make_chromium_is_silent_when_it_cannot_install(tmp_path):
    import os
    import shutil
    import subprocess
    from pathlib import Path

    if shutil.which("make") is None:
        pytest.skip("no make")
    fake = tmp_path / "bin"
    fake.mkdir()
    tried = tmp_path / "tried"
    (fake / "apt-get").write_text(f"#!/bin/sh\necho \"$@\" >> {tried}\necho 'E: Could not open lock file' >&2\nexit 100\n")
    (fake / "apt-get").chmod(0o755)
    # the recipe's PATH holds only the failing apt-get: no chromium, whatever this machine has installed
    proc = subprocess.run([shutil.which("make"), "--no-print-directory", "chromium"],
                          cwd=Path(__file__).resolve().parents[1], env={**os.environ, "PATH": str(fake)},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert proc.stdout + proc.stderr == ""
    assert tried.read_text().split()[0] == "update"  # it still tried


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
    line = one_line_error(cli("leaderboard", "run", "--board", "mnist-lenett", "--dry-run", "--store", str(store_path)), 2)
    assert "unknown board 'mnist-lenett' on tracks qnn, mapped-dnn; did you mean 'mnist-lenet'?" in line
    line = one_line_error(cli("leaderboard", "run", "--track", "qnn", "--board", "mnist-lenet", "--dry-run",
                              "--store", str(store_path)), 2)
    assert "unknown board 'mnist-lenet' on track qnn" in line
    assert not store_path.exists()  # dry runs and refusals store nothing
