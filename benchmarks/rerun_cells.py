"""Re-run committed cells from their published trained weights and compare their bits with the committed ones.

A speed change that keeps the random stream must leave every committed cell bit for bit as it is. ``qbench
verify`` checks that from scratch (it trains again, minutes to hours on the MNIST boards); this script
skips the training: it imports the published store into a scratch store, removes the chosen cells (and, for
a carried curve cell, the cells below it, which its re-run recomputes), re-runs them through the protocol
runner from the stored weights, and prints, per cell, whether the bits are equal and the seconds it took
against the committed cell's stored seconds.

    python benchmarks/rerun_cells.py --entry leaderboards/qnn/mnist-1v9-qnn/noise_layer.json --cell clean --cell fgsm@0.15
    python benchmarks/rerun_cells.py --entry leaderboards/qnn/mnist-1v9-qnn/noise_layer.json --defense depolarizing --cell clean

``--defense`` re-runs another defense's cells on the entry's board and protocol (one that has no entry yet:
its config is read from its published cells). Exit status 1 if any bits differ.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from qbench.publishing.published_store import import_store, published_cells
from qbench.publishing.verify import _plan
from qbench.registry import load_registry
from qbench.running.plan import seed_cells
from qbench.running.runner import Runner
from qbench.running.store import Store

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--entry", type=Path, required=True, help="a leaderboard entry: its board and protocol")
    p.add_argument("--defense", help="re-run this defense's cells on the entry's board (default: the entry's)")
    p.add_argument("--cell", action="append", required=True, metavar="clean|ATTACK@EPSILON")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--published", type=Path, default=ROOT / "leaderboards" / "store")
    p.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    args = p.parse_args()
    torch.set_num_threads(1)

    entry = json.loads(args.entry.read_text())
    published = published_cells(args.published)
    if args.defense and args.defense != entry["defense"]["name"]:
        board_cells = args.published / entry["track"] / entry["board"] / "cells.jsonl"
        spec = next((row["spec"] for row in map(json.loads, board_cells.read_text().splitlines())
                     if row["spec"]["defense"]["name"] == args.defense), None)
        if spec is None:
            raise SystemExit(f"no published {args.defense} cell on {entry['board']}")
        entry["defense"] = {"name": args.defense, "config": spec["defense"]["config"]}
    registry = load_registry()

    wanted = []
    for text in args.cell:
        if text == "clean":
            wanted.append({"kind": "clean", "attack": None, "epsilon": None, "seed": args.seed})
        else:
            attack, eps = text.rsplit("@", 1)
            wanted.append({"kind": "attack", "attack": attack, "epsilon": float(eps), "seed": args.seed})

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rerun.sqlite"
        with Store.open(path) as store:
            import_store(args.published, store)
        plans = [(cell, _plan(registry, entry, cell)) for cell in wanted]
        keys = {c.key for _, plan in plans for c in seed_cells(plan, args.seed).cells if c.key in published}
        if not keys:
            raise SystemExit("none of these cells is in the published store (seed, defense or protocol?)")
        with sqlite3.connect(path) as conn:  # the chosen cells and those they are carried from: re-run
            conn.executemany("DELETE FROM cells WHERE key = ?", [(k,) for k in keys])
        failed = False
        print(f"{'cell':<28} {'bits':<10} {'accuracy':>9} {'seconds':>8} {'committed s':>12}")
        with Store.open(path) as store:
            runner = Runner(store, data_dir=args.data_dir)
            data = None
            for cell, plan in plans:
                data = data or runner.load_data(plan.dataset)
                start = time.perf_counter()
                result = runner.run(plan, data)
                took = time.perf_counter() - start
                for rec in result.seeds[0].cells:
                    if rec.key not in keys:
                        continue
                    keys.discard(rec.key)
                    old = published[rec.key]
                    same = old.correct is not None and rec.correct is not None and np.array_equal(old.correct, rec.correct)
                    failed |= not same
                    label = f"{rec.attack or 'clean'}@{rec.epsilon}" if rec.attack else "clean"
                    print(f"{label:<28} {'equal' if same else 'DIFFERENT':<10} {rec.accuracy:9.4f} {rec.seconds:8.1f} "
                          f"{old.seconds:12.1f}", flush=True)
                print(f"  ({took:.0f} s for {cell['attack'] or 'clean'} and the cells it needs)", flush=True)
    if keys:  # removed for a re-run that did not come back: nothing was compared for them
        print(f"{len(keys)} cells were not re-run: {sorted(keys)}")
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
