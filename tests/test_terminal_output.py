"""What a new user sees in an 80-column terminal: `qbench plugins` and `qbench results` fit it without a
name cut, `--help` states every default, progress bars show an ETA, and the console script's output is the
real one (subprocesses with COLUMNS=80, which rich and argparse honour)."""

import argparse
import io
import json
import re
import sqlite3
import time

import pytest
from rich.console import Console

import qbench.cli
from qbench.contract.progress import RichReporter

WIDTH = {"COLUMNS": "80", "LINES": "50"}


def assert_fits(text: str, width: int = 80) -> list[str]:
    lines = text.splitlines()
    assert lines, "no output"
    too_long = [line for line in lines if len(line) > width]
    assert not too_long, f"{len(too_long)} lines over {width} columns, e.g. {too_long[0]!r}"
    return lines


def test_plugins_at_80_columns_shows_every_name_whole_in_a_compact_layout(cli):
    listed = cli("plugins", "--json")
    components = json.loads(listed.stdout)["components"]
    proc = cli("plugins", env=WIDTH)
    assert proc.returncode == 0, proc.stderr
    lines = assert_fits(proc.stdout)
    assert "…" not in proc.stdout
    first_words = [line.split()[0] for line in lines if line.strip()]
    for c in components:
        assert c["name"] in first_words, f"{c['kind']} {c['name']} is not shown whole at the start of a line"
    # one table per kind, titled with its count; about three lines a component, not nine
    for kind in ("dataset", "model", "defense", "attack"):
        count = sum(c["kind"] == kind for c in components)
        assert f"{kind}s ({count})" in proc.stdout
    assert len(lines) <= 4 * len(components), len(lines)
    # a component's row: name, tracks, version, then its description (wrapped, never cut)
    row = next(line for line in lines if line.startswith("gaussian_augmentation "))
    assert row.split()[1:3] == ["both", "1"]
    assert "train on clean + Gaussian-noised copies" in " ".join(proc.stdout.split())


def test_plugins_wide_is_one_line_per_component(cli):
    proc = cli("plugins", "--wide", "--kind", "defense", env=WIDTH)
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if "qbench 0.2" in line or "(direct)" in line]
    names = json.loads(cli("plugins", "--json", "--kind", "defense").stdout)["components"]
    assert len(rows) == len(names)
    assert max(len(line) for line in proc.stdout.splitlines()) > 80  # not squeezed into the terminal


@pytest.fixture(scope="module")
def filled_store(tmp_path_factory):
    """A real store from one quick evaluation of the whole qnn suite (both bim variants among it)."""
    from conftest import run_cli

    store = tmp_path_factory.mktemp("results") / "results.sqlite"
    proc = run_cli("evaluate", "--defense", "gaussian_augmentation", "--no-baseline", "--seeds", "1", "--epochs", "1",
                   "--n-test", "10", "--store", str(store))
    assert store.exists(), proc.stderr
    return store


def test_results_at_80_columns_is_one_line_a_cell_with_full_attack_labels(cli, filled_store):
    cells = json.loads(cli("results", "--json", "--store", str(filled_store)).stdout)["cells"]
    labels = {c["attack"] for c in cells if c["kind"] == "attack"}
    assert {"bim", "bim[n_eot=1]"} <= labels  # the store keeps the full label
    proc = cli("results", "--store", str(filled_store), env=WIDTH)
    assert proc.returncode == 0, proc.stderr
    lines = assert_fits(proc.stdout)
    assert "…" not in proc.stdout
    rows = [line for line in lines if line.startswith("moons/qnn ")]
    assert len(rows) == len(cells)  # one line per cell: no row wraps
    for row in rows:
        assert row.split()[1] == "gaussian_augmentation"
    assert any(re.search(r"\sbim\[n_eot=1\] ε=0\.15\s", row) for row in rows)
    assert any(re.search(r"\sbim ε=0\.15\s", row) for row in rows)
    clean = next(c for c in cells if c["kind"] == "clean")
    clean_row = next(row for row in rows if " clean " in row)
    assert clean_row.split()[-2:] == [f"{100 * clean['accuracy']:.1f}%", str(clean["n"])]


def test_results_wide_adds_keys_status_and_errors(cli, filled_store):
    proc = cli("results", "--wide", "--store", str(filled_store), env=WIDTH)
    assert proc.returncode == 0, proc.stderr
    keys = [r[0] for r in sqlite3.connect(filled_store).execute("SELECT key FROM cells")]
    assert all(key in proc.stdout for key in keys)
    assert "status" in proc.stdout.splitlines()[1]


def _leaf_parsers(parser, path=()):
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield " ".join(path), parser
    for action in subs:
        for name, child in action.choices.items():
            yield from _leaf_parsers(child, (*path, name))


def test_help_states_every_options_default():
    formatter = qbench.cli._HelpFormatter("qbench")
    checked = 0
    for command, parser in _leaf_parsers(qbench.cli.build_parser()):
        for action in parser._actions:
            if not action.option_strings or action.nargs == 0 or action.required:
                continue
            text = formatter._expand_help(action) if action.help else ""
            assert "default" in text, f"qbench {command} {action.option_strings[0]}: no default in {text!r}"
            checked += 1
    assert checked > 80


def test_help_shows_defaults_in_the_terminal(cli):
    proc = cli("evaluate", "--help", env=WIDTH)
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())
    assert "--seeds SEEDS number of seeds 0..N-1 (default: 3)" in text
    assert "--n-eot N_EOT EOT samples per gradient (stochastic models) (default: 20)" in text
    assert "(default: qbench's engine)" in text
    assert_fits(proc.stdout)
    grid = " ".join(cli("leaderboard", "run", "--help", env=WIDTH).stdout.split())
    assert "--retries RETRIES reruns of a cell whose worker died (default: 2)" in grid


def test_progress_bars_show_time_remaining():
    buffer = io.StringIO()
    reporter = RichReporter(Console(file=buffer, width=100, force_terminal=True, color_system=None))
    with reporter.task("computing 10 cells", total=10) as bar:
        bar.advance(1)
        time.sleep(0.3)
        bar.advance(1)
        shown = Console(file=io.StringIO(), width=100, color_system=None)
        shown.print(reporter._progress.get_renderable())
        line = shown.file.getvalue()
    assert "2/10" in line
    elapsed, remaining = re.search(r"(\d:\d\d:\d\d) eta (\d:\d\d:\d\d)", line).groups()
    assert elapsed == "0:00:00" and remaining in ("0:00:01", "0:00:02", "0:00:03"), line
