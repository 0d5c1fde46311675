"""Executors: the same grid gives the same store in this process, on a process pool and on Dask, run after run.

The grid: moons with the angle-encoded QNN, defenses ``none`` and ``gaussian_augmentation`` (noise in
training), 2 seeds, FGSM and the iterative attacks (PGD's random start draws from the global RNG), so
both the trainings and the cells exercise the per-cell seeding.
"""

import logging
import pickle

import dask
import fault_plugins
import pytest
from distributed import LocalCluster
from test_kill_resume import snapshot

from qbench.cli import main
from qbench.running.dask_executor import DaskExecutor
from qbench.contract.dataset import TrainingSchedule
from qbench.errors import UsageError
from qbench.running.executor import InProcessExecutor
from qbench.running.grid import board_plan, boards
from qbench.publishing.leaderboard import GridOptions, run_grid
from qbench.registry import load_registry
from qbench.running.runner import Plan, Runner
from qbench.running.store import Store
from qbench.running.tasks import CellTask, TrainTask, Workspace

PLUGINS = "moons,qnn,none,gaussian_augmentation,fgsm,iterative"
BOARD, DEFENSES, SEEDS = "moons-qnn-angle", ["none", "gaussian_augmentation"], [0, 1]
GRID = ["leaderboard", "run", "--track", "qnn", "--board", BOARD, *[a for d in DEFENSES for a in ("--defense", d)],
        "--seeds", "2", "--epochs", "1", "--n-test", "20", "--no-sweep"]
N_CELLS = len(DEFENSES) * len(SEEDS) * 7  # clean, fgsm, bim[n_eot=1], bim, pgd, mim, the large-epsilon probe


def run_in_process(store, executor):
    options = GridOptions(boards=[BOARD], defenses=DEFENSES, seeds=SEEDS, epochs=1, n_test=20, sweep=False)
    with Store.open(store) as s:
        report = run_grid(load_registry(), Runner(s, executor=executor), "qnn", options)
    assert report.done == [f"{BOARD}/{d}" for d in DEFENSES], report.failed


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """The grid run by ``qbench leaderboard run`` on Dask (its own LocalCluster) and on a process pool, then
    twice in this process and once more on a running cluster; then a plan with a worker-killing attack."""
    tmp = tmp_path_factory.mktemp("executors")
    paths = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("QBENCH_PLUGINS", PLUGINS)
        for name, args in {"cli-dask": ["--executor", "dask", "--workers", "2"], "cli-pool": ["--workers", "2"]}.items():
            paths[name] = tmp / f"{name}.sqlite"
            assert main([*GRID, *args, "--store", str(paths[name])]) == 0
        for name in ("inprocess-1", "inprocess-2"):
            paths[name] = tmp / f"{name}.sqlite"
            run_in_process(paths[name], InProcessExecutor())
        paths["dask"] = tmp / "dask.sqlite"
        # a cluster started elsewhere (like dask-jobqueue's), reached through its scheduler's address
        settings = {"distributed.scheduler.allowed-failures": 1, "distributed.scheduler.worker-saturation": 1.0,
                    "distributed.worker.multiprocessing-method": "forkserver"}
        with dask.config.set(settings), LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None,
                                                     silence_logs=logging.ERROR) as cluster:
            with DaskExecutor(workers=1, scheduler=cluster.scheduler_address) as executor:
                run_in_process(paths["dask"], executor)
                assert executor.workers == 2
                with Store.open(tmp / "dying.sqlite") as store:
                    registry = load_registry([("faults", fault_plugins)])
                    create = registry.create
                    plan = Plan(
                        track="qnn", dataset=create("dataset", "tiny_box"), model=create("model", "tiny_linear"),
                        defense=create("defense", "none"), epsilons=[0.1], seeds=[0],
                        attacks=[create("attack", a) for a in ("fgsm", "fault_kills_worker")],
                        schedule=TrainingSchedule(epochs=1), n_eot=2, n_repeat=2,
                    )
                    Runner(store, executor=executor).run(plan)
                    dying = {c.attack: (c.status, c.error) for c in store.cells()}
    return {"dying": dying, **{name: snapshot(path) for name, path in paths.items()}}


def test_cli_dask_local_cluster_stores_what_the_process_pool_stores(stores):
    cells, trainings, weights = stores["cli-dask"]
    assert len(cells) == N_CELLS and len(trainings) == len(DEFENSES) * len(SEEDS) and len(weights) == len(trainings)
    assert all(c[7] == "ok" or c[7] == "skipped" for c in cells)
    assert stores["cli-dask"] == stores["cli-pool"]


def test_same_grid_twice_gives_identical_numbers_in_process_and_under_dask(stores):
    assert stores["inprocess-1"] == stores["inprocess-2"]
    assert stores["dask"] == stores["cli-dask"]
    assert stores["inprocess-1"] == stores["dask"] == stores["cli-pool"]


def test_a_dask_worker_that_dies_loses_only_its_cell(stores):
    assert stores["dying"][None] == ("ok", None) and stores["dying"]["fgsm"] == ("ok", None)
    assert stores["dying"]["fault_kills_worker"] == (
        "failed", "cell lost: the Dask worker running it died (2 times, every time it ran)"
    )


def test_tasks_carry_the_artifact_folder_not_the_store(tmp_path):
    """Workers get picklable tasks; only the coordinator holds the SQLite connection."""
    plan = board_plan(load_registry(), boards("qnn", [BOARD])[0], "none", [0], sweep=False)
    workspace = Workspace(tmp_path / "s.sqlite.artifacts")
    for task in (TrainTask(plan, 0, workspace, key="k"), CellTask(plan, 0, workspace, key="c", spec={"kind": "clean"})):
        text = pickle.dumps(task)
        assert b"sqlite3" not in text and pickle.loads(text).plan.defense.name == "none"


def test_a_cluster_whose_workers_run_several_threads_is_refused():
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        with DaskExecutor(workers=1, scheduler=cluster.scheduler_address) as executor:
            with pytest.raises(UsageError, match="run 2 threads each; qbench needs one thread per worker process"):
                executor.submit("task", int)


def _run_order(executor) -> list[str]:
    """Submit a slow task, then B and C, then D with ``submit_next``; the tokens in the order they finished."""
    import functools
    import time

    with executor:
        executor.submit("A", functools.partial(time.sleep, 1.0))
        executor.submit("B", int)
        executor.submit("C", int)
        executor.submit_next("D", int)
        order = []
        while executor.pending:
            order += [o.token for o in executor.wait()]
    return order


@pytest.mark.parametrize("kind", ["inprocess", "pool", "dask"])
def test_a_task_submitted_next_runs_before_the_waiting_ones(kind):
    """The runner sends a cascaded cell whose gates just finished ahead of the queue, so that a stopped run
    leaves whole (defense, seed)s; every executor must honour it (the process pool and Dask did not: a
    grid's cheap curve cells then waited hours behind another defense's expensive ones)."""
    from qbench.running.executor import ProcessPool

    if kind == "dask":
        with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
            order = _run_order(DaskExecutor(workers=1, scheduler=cluster.scheduler_address))
    else:
        order = _run_order(InProcessExecutor() if kind == "inprocess" else ProcessPool(workers=1))
    assert sorted(order) == ["A", "B", "C", "D"]
    # Dask's scheduler hands a worker one task beyond its thread (worker-saturation), here B, before D came
    assert order.index("D") < order.index("C") and (kind == "dask" or order.index("D") < order.index("B"))


def test_workers_run_one_torch_thread_unless_asked_for_more(cli, tmp_path):
    """A pool worker computes mapped-DNN cells at one torch thread, however few workers share the cores
    (it used to be cores / workers: 2 for a lone worker here, 2-3x slower on a shared machine); ``--threads``
    asks for more, the cells record it (``info.platform``, what ``qbench verify`` compares), and QNN-track
    cells stay at one thread whatever is asked."""
    import json
    import sqlite3

    from conftest import SHARED_DATA

    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip(f"the MNIST IDX files are not in {SHARED_DATA / 'mnist'}")
    small = ["--defense", "none", "--no-baseline", "--epochs", "1", "--seeds", "1", "--n-test", "10", "--attack", "fgsm",
             "--executor", "pool", "--workers", "1", "--threads", "2"]

    def platforms(store, *args):
        proc = cli("evaluate", *small, *args, "--store", str(store))
        assert proc.returncode == 0, proc.stderr
        rows = sqlite3.connect(store).execute("SELECT info FROM cells").fetchall()
        return {json.loads(info)["platform"].rsplit("-", 1)[1] for (info,) in rows}

    from qbench.running.executor_spec import executor_spec

    for kind, workers in (("pool", 1), ("pool", 2), ("inprocess", None)):
        assert executor_spec(kind, workers, None).create().threads_per_worker == 1
    mapped = ["--track", "mapped-dnn", "--dataset-option", "n_train=200", "--data-dir", str(SHARED_DATA)]
    assert platforms(tmp_path / "mapped.sqlite", *mapped) == {"threads2"}  # computed at 2 threads
    assert platforms(tmp_path / "qnn.sqlite", "--track", "qnn") == {"threads1"}  # circuits always at one
    with pytest.raises(UsageError, match="--threads must be a positive integer, got 0"):
        executor_spec("pool", 2, None, threads=0)
