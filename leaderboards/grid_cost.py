"""What the committed boards cost to compute, measured: the stored seconds of every cell and training behind
their entries, read from the published store.

Each cell and training records the wall seconds it took where it ran (one torch thread, several jobs
sharing the 2 cores, so these are contended seconds: docs/cost.md measured the contention at about 2x on
the mapped-DNN PGD). A training shared by several entries (standard training behind none, intrinsic_noise
and qnad) is counted once per board; the second table gives each entry (a board's row) on its own, where
such a shared training is counted in every row that uses it. Boards still scored under v1 have no cells in
the published store and are listed as such. The output is committed beside this script (grid_cost.txt)
and quoted in RUNS.md, the README and docs/cost.md.

    .venv/bin/python leaderboards/grid_cost.py > leaderboards/grid_cost.txt
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from qbench.publishing.published_store import read_jsonl  # noqa: E402


def board_cost(board_dir: Path, store_dir: Path) -> tuple[int, int, float, float, int] | None:
    """(entries, cells, cell seconds, training seconds, trainings) of one board, or None without a store."""
    entries = [json.loads(p.read_text()) for p in sorted(board_dir.glob("*.json"))]
    if not entries or not (store_dir / "cells.jsonl").exists():
        return None
    cells = read_jsonl(store_dir / "cells.jsonl")
    trainings = read_jsonl(store_dir / "trainings.jsonl") if (store_dir / "trainings.jsonl").exists() else {}
    keys = {c["key"] for e in entries for c in e.get("cells", [])}
    found = [cells[k] for k in keys if k in cells]
    if len(found) < len(keys):
        return None  # an entry whose cells are not published (a v1 board): not measurable from the store
    train_keys = {c["train_key"] for c in found if c.get("train_key")}
    train_seconds = sum(trainings[k]["seconds"] for k in train_keys if k in trainings)
    return len(entries), len(found), sum(c["seconds"] for c in found), train_seconds, len(train_keys)


def row_costs(board_dir: Path, store_dir: Path) -> list[tuple[str, int, float, float, bool]]:
    """Per entry of a board: (defense, cells, cell seconds, training seconds, whether a training is shared)."""
    if not (store_dir / "cells.jsonl").exists():
        return []
    cells = read_jsonl(store_dir / "cells.jsonl")
    trainings = read_jsonl(store_dir / "trainings.jsonl") if (store_dir / "trainings.jsonl").exists() else {}
    entries = [json.loads(p.read_text()) for p in sorted(board_dir.glob("*.json"))]
    users: dict[str, int] = {}
    per_entry = []
    for e in entries:
        found = [cells[c["key"]] for c in e.get("cells", []) if c["key"] in cells]
        train_keys = {c["train_key"] for c in found if c.get("train_key")}
        for k in train_keys:
            users[k] = users.get(k, 0) + 1
        per_entry.append((e["defense"]["name"], found, train_keys))
    rows = []
    for name, found, train_keys in per_entry:
        train_s = sum(trainings[k]["seconds"] for k in train_keys if k in trainings)
        shared = any(users[k] > 1 for k in train_keys)
        rows.append((name, len(found), sum(c["seconds"] for c in found), train_s, shared))
    return rows


def main() -> None:
    total = 0.0
    print("| board | entries | cells | cell hours | trainings | training hours | total hours |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for board_dir in sorted(p for p in ROOT.glob("*/*") if p.is_dir() and p.parent.name in ("qnn", "mapped-dnn")):
        track, board = board_dir.parent.name, board_dir.name
        cost = board_cost(board_dir, ROOT / "store" / track / board)
        if cost is None:
            print(f"| {track}/{board} | — | — | — | — | — | not in the published store (scored under v1) |")
            continue
        n_entries, n_cells, cell_s, train_s, n_train = cost
        total += cell_s + train_s
        print(f"| {track}/{board} | {n_entries} | {n_cells} | {cell_s / 3600:.2f} | {n_train} | {train_s / 3600:.2f} "
              f"| {(cell_s + train_s) / 3600:.2f} |")
    print(f"\nIn all: {total / 3600:.2f} hours of (contended) compute behind the boards measurable from the store.")
    print("\nPer row (* the training is shared with other rows of the board and counted in each):\n")
    print("| board | defense | cells | cell hours | training hours | total hours |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for board_dir in sorted(p for p in ROOT.glob("*/*") if p.is_dir() and p.parent.name in ("qnn", "mapped-dnn")):
        track, board = board_dir.parent.name, board_dir.name
        for name, n_cells, cell_s, train_s, shared in row_costs(board_dir, ROOT / "store" / track / board):
            mark = " *" if shared else ""
            print(f"| {track}/{board} | {name} | {n_cells} | {cell_s / 3600:.2f} | {train_s / 3600:.2f}{mark} "
                  f"| {(cell_s + train_s) / 3600:.2f} |")


if __name__ == "__main__":
    main()
