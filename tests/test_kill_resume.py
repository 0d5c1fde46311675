"""SIGKILL a running `qbench evaluate`, or a grid at several points, run it again: every cell present exactly
once, equal to a clean run."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ARGS = [
    "evaluate", "--defense", "none", "--json", "--epochs", "3", "--seeds", "2", "--n-test", "60", "--attack", "fgsm",
    "--epsilon", "0.05", "--epsilon", "0.1", "--epsilon", "0.15", "--epsilon", "0.2", "--epsilon", "0.3",
]
EXPECTED_CELLS = 2 * (1 + 5 + 1)  # per seed: clean, 5 epsilons, the large-epsilon probe


def count_cells(path):
    if not path.exists():
        return 0
    try:
        conn = sqlite3.connect(path, timeout=5)
        try:
            return conn.execute("SELECT COUNT(*) FROM cells").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        return 0


def test_sigkill_midway_then_resume(tmp_path, cli):
    killed = tmp_path / "killed.sqlite"
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("qbench")), *ARGS, "--store", str(killed)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while count_cells(killed) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed; make it longer"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = count_cells(killed)
    assert 3 <= partial < EXPECTED_CELLS

    resumed = cli(*ARGS, "--store", str(killed))
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    assert report["defense"]["cells_computed"] == EXPECTED_CELLS - partial

    conn = sqlite3.connect(killed)
    assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT key) FROM cells").fetchone() == (EXPECTED_CELLS, EXPECTED_CELLS)

    fresh = json.loads(cli(*ARGS, "--store", str(tmp_path / "fresh.sqlite")).stdout)
    for field in ("clean", "attacks", "worst_case"):
        assert report["defense"][field] == fresh["defense"][field]


GRID = ["leaderboard", "run", "--track", "qnn", "--board", "moons-qnn-angle", "--defense", "slow_fit", "--defense", "none",
        "--seeds", "2", "--epochs", "2", "--n-test", "30", "--no-sweep", "--json"]
GRID_PLUGINS = "moons,qnn,none,fgsm,iterative,faults"
GRID_CELLS = 2 * 2 * (1 + 5 + 1)  # defenses x seeds x (clean + fgsm, bim[n_eot=1], bim, pgd, mim + the probe)


def count(path, table):
    try:
        conn = sqlite3.connect(path, timeout=5)
        try:
            return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.DatabaseError:  # not created yet
        return 0


def snapshot(path):
    """Everything stored but timings: cells and trainings rows, and the trained weights' bytes."""
    conn = sqlite3.connect(path)
    cells = sorted(conn.execute(
        "SELECT key, train_key, spec, kind, attack, epsilon, seed, status, n, n_correct, accuracy, correct, info, error "
        "FROM cells"))
    trainings = sorted(conn.execute("SELECT key, spec, seed, weights, info FROM trainings"))
    conn.close()
    artifacts = Path(f"{path}.artifacts")
    weights = {p.name: p.read_bytes() for p in sorted(artifacts.glob("*.safetensors"))}
    return cells, trainings, weights


class Grid:
    """``qbench leaderboard run`` in its own session, so the test can see every process it leaves behind."""

    def __init__(self, tmp_path, store):
        import fault_plugins

        self.store, self.markers = store, tmp_path / "markers"
        self.markers.mkdir(exist_ok=True)
        self.env = {k: v for k, v in os.environ.items() if k != "QBENCH_PLUGINS"}
        self.env.update(fault_plugins.install(tmp_path / "site"), QBENCH_PLUGINS=GRID_PLUGINS,
                        QBENCH_TEST_MARKERS=str(self.markers))

    def start(self, *extra):
        for marker in self.markers.iterdir():
            marker.unlink()
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("qbench")), *GRID, *extra, "--store", str(self.store)],
            env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )

    def wait_for(self, condition, what):
        deadline = time.time() + 240
        while not condition():
            assert self.proc.poll() is None, f"the run ended before {what}: {self.proc.communicate()[1][-2000:]}"
            assert time.time() < deadline, f"timed out waiting for {what}"
            time.sleep(0.02)

    def markers_of(self, event):
        return [m for m in self.markers.iterdir() if m.name.startswith(event + "-")]

    def kill(self):
        """SIGKILL the coordinator alone; its workers must notice and exit by themselves."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        deadline = time.time() + 20
        try:
            while True:
                os.killpg(self.proc.pid, 0)
                if time.time() > deadline:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    raise AssertionError("worker processes outlived their killed coordinator")
                time.sleep(0.1)
        except ProcessLookupError:
            pass


def test_grid_killed_during_training_an_attack_and_between_cells_resumes_to_the_same_store(tmp_path, monkeypatch):
    import fault_plugins
    from qbench.publishing.leaderboard import GridOptions, run_grid
    from qbench.registry import load_registry
    from qbench.running.runner import Runner
    from qbench.running.store import Store

    store = tmp_path / "killed.sqlite"
    grid = Grid(tmp_path, store)

    grid.start("--workers", "2")  # the coordinator dies while a pool worker trains: the worker must exit too
    grid.wait_for(lambda: grid.markers_of("fit"), "a training started")
    grid.kill()
    assert count(store, "trainings") == 0 and count(store, "cells") == 0

    grid.start("--executor", "inprocess")
    grid.wait_for(lambda: count(store, "trainings") and grid.markers_of("attack"), "an attack started")
    grid.kill()
    assert count(store, "cells") < GRID_CELLS

    grid.start("--executor", "inprocess")
    before = count(store, "cells")
    grid.wait_for(lambda: count(store, "cells") > before, "a cell was stored")
    grid.kill()
    partial = count(store, "cells")
    assert partial < GRID_CELLS

    # resumed and, separately, uninterrupted, in this process
    monkeypatch.setenv("QBENCH_PLUGINS", GRID_PLUGINS)
    registry = load_registry([("faults", fault_plugins)])
    options = GridOptions(boards=["moons-qnn-angle"], defenses=["slow_fit", "none"], seeds=[0, 1], epochs=2, n_test=30,
                          sweep=False)
    for path in (store, tmp_path / "fresh.sqlite"):
        with Store.open(path) as s:
            report = run_grid(registry, Runner(s), "qnn", options)
        assert report.done == ["moons-qnn-angle/slow_fit", "moons-qnn-angle/none"], report.failed
    conn = sqlite3.connect(store)
    assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT key) FROM cells").fetchone() == (GRID_CELLS, GRID_CELLS)
    conn.close()
    assert snapshot(store) == snapshot(tmp_path / "fresh.sqlite")
