"""Wall time of a small QNN leaderboard grid on each executor, in one run.

Usage::

    python benchmarks/grid.py [--json] [--seeds 2] [--epochs 10] [--n-test 100]

The grid: board ``moons-qnn-angle``, defenses ``none`` and ``gaussian_augmentation``, ``--seeds`` seeds,
the whole QNN attack suite at epsilon 0.15 (no sweep). It runs, each time into a fresh store and in a
fresh Python process (so no run inherits another's warm workers): in-process, on a process pool of 1 and
of 2 workers, and on a 2-worker Dask LocalCluster. The time is the grid run's wall time, starting and
stopping the workers included (not the coordinator's own imports, the same for all). Speed-up is against
the pool of 1 worker. The stores are compared at the end: every executor must store the same numbers.
On a shared machine the speed-up is bounded by the CPU the other jobs leave: the script measures it before
and after (two busy-looping processes against one: 2.0 means two free cores).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = [("inprocess", 1), ("pool", 1), ("pool", 2), ("dask", 2)]
BOARD, DEFENSES = "moons-qnn-angle", ["none", "gaussian_augmentation"]


def one(kind: str, workers: int, store: Path, seeds: int, epochs: int, n_test: int) -> dict:
    """Run the grid once on ``kind`` with ``workers`` (in this process); its wall time and cell count."""
    import torch

    torch.set_num_threads(1)
    from qbench.running.executor_spec import executor_spec
    from qbench.publishing.leaderboard import GridOptions, run_grid
    from qbench.registry import load_registry
    from qbench.running.runner import Runner
    from qbench.running.store import Store

    registry = load_registry()
    options = GridOptions(boards=[BOARD], defenses=DEFENSES, seeds=list(range(seeds)), epochs=epochs, n_test=n_test,
                          sweep=False)
    spec = executor_spec(kind, None if kind == "inprocess" else workers, None)
    start = time.perf_counter()
    with Store.open(store) as s, spec.create() as executor:
        report = run_grid(registry, Runner(s, executor=executor), "qnn", options)
    seconds = time.perf_counter() - start
    if report.failed:
        raise SystemExit(f"{kind}: {report.failed}")
    with sqlite3.connect(store) as conn:
        cells = conn.execute("SELECT COUNT(*) FROM cells").fetchone()[0]
    return {"executor": kind, "workers": workers, "seconds": seconds, "cells": cells}


def _spin(_: int) -> float:
    start = time.perf_counter()
    total = 0
    for i in range(10_000_000):
        total += i
    return time.perf_counter() - start


def parallelism() -> float:
    """How many cores this machine gives two busy processes right now (2.0 on an idle 2-core machine)."""
    import multiprocessing

    alone = _spin(0)
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        together = pool.map(_spin, [0, 1])
    return 2 * alone / max(together)


def stored_numbers(store: Path) -> list[tuple]:
    """Every cell's key and numbers (no timings)."""
    with sqlite3.connect(store) as conn:
        return sorted(conn.execute("SELECT key, status, n_correct, accuracy, correct, error FROM cells"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--n-test", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # KIND:WORKERS:STORE, the child process's run
    args = parser.parse_args()
    if args.one:
        kind, workers, store = args.one.split(":", 2)
        print(json.dumps(one(kind, int(workers), Path(store), args.seeds, args.epochs, args.n_test)))
        return

    load_before = os.getloadavg()
    cores_before = parallelism()
    rows = []
    with tempfile.TemporaryDirectory(prefix="qbench-grid-bench-") as tmp:
        stores = []
        for kind, workers in RUNS:
            store = Path(tmp) / f"{kind}-{workers}.sqlite"
            stores.append(store)
            child = [sys.executable, __file__, "--one", f"{kind}:{workers}:{store}", "--seeds", str(args.seeds),
                     "--epochs", str(args.epochs), "--n-test", str(args.n_test)]
            proc = subprocess.run(child, capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"{kind} x {workers} failed:\n{proc.stderr[-3000:]}")
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(f"{kind} x {workers}: {rows[-1]['seconds']:.1f} s", file=sys.stderr)
        reference = stored_numbers(stores[0])
        identical = all(stored_numbers(s) == reference for s in stores[1:])
    base = next(r["seconds"] for r in rows if r["executor"] == "pool" and r["workers"] == 1)
    for row in rows:
        row["speedup_vs_1_worker"] = base / row["seconds"]
    result = {
        "grid": {"board": BOARD, "defenses": DEFENSES, "seeds": args.seeds, "epochs": args.epochs, "n_test": args.n_test,
                 "cells": rows[0]["cells"]},
        "cpu_count": os.cpu_count(), "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "parallelism_before": cores_before, "parallelism_after": parallelism(),
        "identical_stores": identical, "runs": rows,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"grid: {BOARD}, {' + '.join(DEFENSES)}, {args.seeds} seeds, {args.epochs} epochs, n_test {args.n_test}, "
          f"{rows[0]['cells']} cells; {os.cpu_count()} cores; load average before/after "
          f"{load_before[0]:.1f}/{result['load_average_after'][0]:.1f}; two busy processes got "
          f"{cores_before:.1f}/{result['parallelism_after']:.1f} cores' worth; identical stores: {identical}")
    print("| executor | workers | wall time (s) | speed-up vs 1 worker |")
    print("| --- | ---: | ---: | ---: |")
    for row in rows:
        print(f"| {row['executor']} | {row['workers']} | {row['seconds']:.1f} | {row['speedup_vs_1_worker']:.2f} |")


if __name__ == "__main__":
    main()
