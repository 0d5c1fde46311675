"""Costs said before they are paid: `evaluate`, `leaderboard run` and `reproduce` say on stderr what they
will compute and about how long it takes, from the store's own timings where it has them, else qbench's
measured defaults (qbench/running/preflight.py); `--dry-run` says only that. Real console-script runs on real
SQLite stores."""

import hashlib
import json
import re
import sqlite3
import statistics
from pathlib import Path

from qbench import cli as qcli
from qbench import commands
from qbench.running.preflight import DEFAULT_TIMINGS, duration, missing_work, plan_keys
from qbench.registry import load_registry
from qbench.running.store import Store

QUICK = ["--defense", "none", "--seeds", "1", "--epochs", "2", "--n-test", "20", "--attack", "fgsm"]


def preflight_lines(stderr: str) -> tuple[str, str]:
    lines = [line for line in stderr.splitlines() if line.startswith("qbench: to compute") or
             line.startswith("qbench: estimated cost") or line.startswith("qbench: nothing to compute")]
    return tuple(lines)  # type: ignore[return-value]


def estimated(line: str) -> str:
    return re.search(r"estimated cost: about (.+?) \(", line).group(1)


def test_the_preflight_keys_are_the_runners(tmp_path):
    registry = load_registry()
    args = qcli.build_parser().parse_args(["evaluate", "--defense", "noise_layer", "--seeds", "2", "--attack", "pgd"])
    plan = commands._plan(args, registry, "noise_layer", {})
    plan.sweep_attacks = [registry.create("attack", "bim", {"n_eot": 1}, "qnn")]
    plan.sweep_epsilons = [0.05, 0.15]
    plan.probe, plan.probe_epsilon = registry.create("attack", "pgd", {}, "qnn"), 1.0
    # (that the keys are those the runner stores, cascaded and carried cells included, is checked against
    # real stores in test_cascade.py)
    assert plan_keys(plan, 0)[0] != plan_keys(plan, 1)[0]
    assert [label for _, _, label in plan_keys(plan, 0)[1]] == [
        "clean", "pgd", "bim[n_eot=1]", "bim[n_eot=1]", "pgd"]


def test_a_first_run_is_timed_by_the_defaults_and_a_dry_run_stores_nothing(cli, store_path):
    proc = cli("evaluate", "--defense", "none", "--seeds", "2", "--attack", "fgsm", "--attack", "pgd", "--dry-run",
               "--store", str(store_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and not store_path.exists()
    what, cost = preflight_lines(proc.stderr)
    # per seed: clean, fgsm, pgd and the large-epsilon probe (a PGD cell)
    assert what == "qbench: to compute: 2 trainings and 8 cells (0 of 8 already in the store)"
    moons = DEFAULT_TIMINGS[("moons", "qnn")]  # 800 training and 200 test points, 100 epochs: the measured run's
    expected = 2 * 100 * moons.train_epoch + 2 * (moons.cells["clean"] + moons.cells["fgsm"] + 2 * moons.cells["pgd"])
    assert estimated(cost) == duration(expected) == "10 s"
    assert "qbench's default timings" in cost


def test_the_store_times_what_it_has_seen_and_a_rerun_has_nothing_to_compute(cli, store_path):
    first = cli("evaluate", *QUICK, "--store", str(store_path))
    assert first.returncode == 0, first.stderr
    # clean, the attack and the large-epsilon probe
    assert preflight_lines(first.stderr)[0] == "qbench: to compute: 1 training and 3 cells (0 of 3 already in the store)"
    before = hashlib.sha256(store_path.read_bytes()).hexdigest()

    again = cli("evaluate", *QUICK, "--dry-run", "--store", str(store_path))
    assert preflight_lines(again.stderr) == ("qbench: nothing to compute: all 3 cells are in the store",)

    more = cli("evaluate", *QUICK, "--seeds", "2", "--attack", "pgd", "--dry-run", "--store", str(store_path))
    assert more.returncode == 0, more.stderr
    what, cost = preflight_lines(more.stderr)
    # seed 1: its training and 4 cells; seed 0: its pgd cell
    assert what == "qbench: to compute: 1 training and 5 cells (3 of 8 already in the store)"
    # the first run's probe was a PGD cell, so even the new pgd cells are timed by the store
    assert "from the store's timings of the same cells and trainings" in cost
    conn = sqlite3.connect(store_path)
    (train_seconds,) = conn.execute("SELECT seconds FROM trainings").fetchone()
    cells = dict(conn.execute("SELECT kind, seconds FROM cells").fetchall())
    # seed 1's clean and fgsm cells at the stored ones' times; two pgd cells and seed 1's probe at the stored
    # probe's (the store's only PGD cell)
    assert estimated(cost) == duration(train_seconds + cells["clean"] + cells["attack"] + 3 * cells["probe"])
    assert hashlib.sha256(store_path.read_bytes()).hexdigest() == before


def test_the_grid_counts_what_the_runner_then_computes(cli, store_path):
    args = ["leaderboard", "run", "--track", "qnn", "--board", "moons-qnn-angle", "--defense", "none", "--seed", "0",
            "--epochs", "1", "--n-test", "10", "--no-sweep", "--executor", "inprocess", "--store", str(store_path)]
    dry = cli(*args, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    what, cost = preflight_lines(dry.stderr)
    n = int(re.fullmatch(r"qbench: to compute: 1 training and (\d+) cells \(0 of \1 already in the store\)", what).group(1))
    run = cli(*args)
    assert preflight_lines(run.stderr)[0] == what
    stored = json.loads(cli("results", "--json", "--store", str(store_path)).stdout)["cells"]
    assert len(stored) == n


def test_reproduce_says_its_cost_first(cli, store_path):
    proc = cli("reproduce", "huang2023", "--only", "table1", "--dry-run", "--store", str(store_path))
    assert proc.returncode == 0, proc.stderr
    what, cost = preflight_lines(proc.stderr)
    assert re.fullmatch(r"qbench: to compute: \d+ trainings and \d+ cells \(0 of \d+ already in the store\)", what)
    assert re.search(r"about \d+ (s|min)", cost)
    assert not store_path.exists()


def test_the_store_median_is_per_dataset_model_defense_and_attack(tmp_path):
    """Two stored fgsm cells of the undefended model (1 s and 3 s on 200 points) time a third at their
    median; a noise_layer fgsm cell is not timed by them."""
    from qbench.running.preflight import Item, Work, estimate
    from qbench.running.store import CellRecord, TrainingRecord

    with Store.open(tmp_path / "s.sqlite") as store:
        store.artifacts.mkdir()
        (store.artifacts / "t.safetensors").write_bytes(b"w")
        spec = {"dataset": {"name": "moons"}, "model": {"name": "qnn"}, "defense": {"standard_training": True},
                "schedule": {"epochs": 10}}
        store.put_training(TrainingRecord("t", spec, 0, "t.safetensors", 5.0, {}))
        for key, seconds in (("a", 1.0), ("b", 3.0), ("c", 100.0)):
            status = "failed" if key == "c" else "ok"  # a failed cell's time says nothing
            store.put_cell(CellRecord(key, "t", {"defense": {"name": "none"}}, "attack", "fgsm", 0.1, 0, status, 200,
                                      0, None, None, {}, seconds))
        item = dict(track="qnn", dataset="moons", model="qnn", label="fgsm")
        work = Work(trainings=[Item("training", "qnn", "moons", "qnn", "standard", "", 20, 800)],
                    cells=[Item("cell", defense="none", units=200, **item), Item("cell", defense="none", units=100, **item)])
        est = estimate(store, work)
        assert (est.from_store, est.from_defaults) == (3, 0)
        assert est.seconds == statistics.median([1.0, 3.0]) * 1.5 + 5.0 / 10 * 20
        noisy = estimate(store, Work(cells=[Item("cell", defense="noise_layer", units=200, **item)]))
        assert (noisy.from_store, noisy.from_defaults) == (0, 1)
        # a defense's training the store has not seen: the board's standard training x the defense's factor
        from qbench.running.preflight import TRAINING_FACTOR

        madry = estimate(store, Work(trainings=[Item("training", "qnn", "moons", "qnn", "adversarial_training", "", 20, 800)]))
        assert (madry.from_store, madry.from_defaults) == (1, 0)
        assert madry.seconds == 5.0 / 10 * 20 * TRAINING_FACTOR[("moons", "qnn")]["adversarial_training"]
        # a training resuming from its checkpoint: its own pace so far, for the epochs left
        resuming = Item("training", "qnn", "moons", "qnn", "adversarial_training", "", 12, 800, resumes_after=8,
                        checkpoint_epoch_seconds=7.0)
        assert estimate(store, Work(trainings=[resuming])).seconds == 7.0 * 12


def test_missing_work_counts_failed_cells_again(tmp_path):
    registry = load_registry()
    args = qcli.build_parser().parse_args(["evaluate", *QUICK])
    plan = commands._plan(args, registry, "none", {})
    data = commands._Datasets(None, commands.Reporter(), tmp_path / "s.sqlite")(plan.dataset)
    from qbench.running.store import CellRecord

    with Store.open(tmp_path / "s.sqlite") as store:
        train_key, cells = plan_keys(plan, 0)
        (clean_key, _, _), (fgsm_key, _, _) = cells
        store.put_cell(CellRecord(clean_key, train_key, {}, "clean", None, None, 0, "ok", 20, 10, 0.5, None, {}, 1.0))
        store.put_cell(CellRecord(fgsm_key, train_key, {}, "attack", "fgsm", 0.15, 0, "failed", 20, 0, None, None, {}, 1.0))
        work = missing_work(store, [(plan, data), (plan, data)])  # the same plan twice counts once
    assert (work.total_cells, work.stored_cells) == (2, 1)
    assert [c.label for c in work.cells] == ["fgsm"] and len(work.trainings) == 1
    assert Path(tmp_path / "s.sqlite").exists()
