"""The CLI run for real in subprocesses: exit codes, one-line refusals that leave the store alone, listings
(the runs that compute are in ``test_cli_runs.py``)."""

import hashlib
import json
import shutil
import sqlite3

import pytest
from conftest import one_line_error

FAST = ["--epochs", "3", "--seeds", "1", "--n-test", "60", "--attack", "fgsm"]


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def fast_store(tmp_path_factory):
    """A store holding one ``evaluate --defense none`` run with the FAST settings (computed once per module)."""
    from conftest import run_cli

    path = tmp_path_factory.mktemp("fast") / "results.sqlite"
    first = run_cli("evaluate", "--defense", "none", *FAST, "--store", str(path))
    assert first.returncode == 0, first.stderr
    return path


@pytest.fixture
def evaluated_store(fast_store, store_path):
    """A copy of :func:`fast_store` at ``store_path``, for a test to change or to check untouched."""
    shutil.copyfile(fast_store, store_path)
    return store_path


def test_unknown_defense_exits_2_with_did_you_mean_and_leaves_store(cli, evaluated_store):
    store_path = evaluated_store
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
        # a few of each kind through the console script; tests/test_bad_inputs.py runs the whole corpus in-process
        (["evaluate", "--defense", "none", "--track", "classical"], "invalid choice: 'classical'"),
        (["evaluate", "--defense", "none", "--attack", "fgsn"], "unknown attack 'fgsn'; did you mean 'fgsm'?"),
        (["evaluate", "--defense", "none", "--attack-option", "fgsm"], "expected KEY=VALUE"),
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


def test_results_lists_cells(cli, evaluated_store):
    proc = cli("results", "--json", "--store", str(evaluated_store))
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


def test_a_mistyped_device_is_refused_before_anything_is_stored(cli, evaluated_store):
    store_path = evaluated_store
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


def test_the_parser_answers_without_importing_torch_or_pennylane():
    """``qbench --help`` and a mistyped command line are answered before anything heavy is imported; only a
    command that parsed imports :mod:`qbench.commands` (torch, PennyLane, ART)."""
    import subprocess
    import sys

    probe = (
        "import sys, contextlib, io, qbench.cli\n"
        "with contextlib.redirect_stderr(io.StringIO()) as err:\n"
        "    code = qbench.cli.main(['evaluate', '--defense', 'none', '--shots', 'exact', '--seeds', '0'])\n"
        "heavy = sorted(m for m in ('torch', 'pennylane', 'art', 'qiskit', 'qbench.commands') if m in sys.modules)\n"
        "print(code, heavy, err.getvalue().strip())\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("2 [] qbench: error: argument --seeds: expected a positive integer"), proc.stdout
    import qbench.cli
    from qbench.contract.readout import EXACT

    assert qbench.cli._shots("exact") == qbench.cli.EXACT_SHOTS == EXACT


def test_store_commands_start_without_the_runner_pennylane_or_art(tmp_path):
    """``results``, ``store`` and ``merge`` only read and write stores: they answer (here, a real merge and
    a refused one) without importing :mod:`qbench.commands`, PennyLane or ART, the bulk of a command's
    start-up."""
    import subprocess
    import sys

    from qbench.running.store import Store

    with Store.open(tmp_path / "a.sqlite"), Store.open(tmp_path / "b.sqlite"):
        pass
    probe = (
        "import sys, contextlib, io, json, qbench.cli\n"
        "with contextlib.redirect_stderr(io.StringIO()) as err, contextlib.redirect_stdout(io.StringIO()) as out:\n"
        f"    merged = qbench.cli.main(['merge', {str(tmp_path / 'b.sqlite')!r}, '--store', {str(tmp_path / 'a.sqlite')!r}, '--json'])\n"
        f"    refused = qbench.cli.main(['merge', {str(tmp_path / 'nope.sqlite')!r}, '--store', {str(tmp_path / 'a.sqlite')!r}])\n"
        f"    listed = qbench.cli.main(['results', '--json', '--store', {str(tmp_path / 'a.sqlite')!r}])\n"
        "heavy = sorted(m for m in ('pennylane', 'art', 'qiskit', 'qbench.commands', 'qbench.running.runner') if m in sys.modules)\n"
        "print(merged, refused, listed, heavy, err.getvalue().strip())\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("0 2 0 [] qbench: error: no qbench store at "), proc.stdout


def test_every_public_name_resolves():
    """The package's public API is imported on first use; every name in ``qbench.__all__`` must resolve."""
    import qbench

    assert set(qbench.__all__) <= set(dir(qbench))
    for name in qbench.__all__:
        assert getattr(qbench, name) is not None, name
    assert qbench.Defense.__module__ == "qbench.contract.defense"
    with pytest.raises(AttributeError, match="no attribute 'Defence'"):
        qbench.Defence  # noqa: B018
