"""Merging result stores: bring the trainings, cells and plugin caches of one store into another.

Grids are often run in pieces (one store per track, per machine, per cluster job); leaderboards and
reproductions are then built from one store holding them all. Keys are content hashes of what was run, so a
key present in both stores names the same computation: the destination's record is kept. A successful cell
whose accuracy or per-example outcomes differ from the destination's is reported as a disagreement (qbench's
cells are deterministic, so that points at a changed library or plugin) and never overwrites it. A failed
cell in the destination is replaced by the source's successful one. The source is only read.
"""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qbench.contract.checkpoint import further_along
from qbench.errors import UsageError
from qbench.running.store import CHECKPOINTS, Store, checkpoint_path, same_weights


@dataclass
class MergeReport:
    """What a merge brought in, and what it kept out (and why)."""

    source: str
    trainings_added: int = 0
    cells_added: int = 0
    cells_kept: int = 0
    cache_files_added: int = 0
    #: checkpoints of trainings and cells under way that the destination lacks (or has behind them)
    checkpoints_added: int = 0
    #: trainings whose weights file is missing from the source (their cells are still merged)
    missing_weights: list[str] = field(default_factory=list)
    #: cell keys stored successfully in both stores with different results (the destination's kept)
    disagreements: list[str] = field(default_factory=list)
    #: trainings in both stores with different weights: the destination's kept, the source's cells of them
    #: (computed from the other weights) not merged
    weight_disagreements: list[str] = field(default_factory=list)


def _copy_new(src: Path, dst: Path) -> bool:
    """Copy ``src`` to ``dst`` unless ``dst`` exists; through a temporary name, so a reader never sees half."""
    if dst.exists():
        return False
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.merge.tmp")
    shutil.copyfile(src, tmp)
    tmp.replace(dst)
    return True


def merge_store(source: Path, destination: Store) -> MergeReport:
    """Merge the store at ``source`` into ``destination`` (one transaction for its records)."""
    if Path(source).resolve() == destination.path.resolve():
        raise UsageError(f"cannot merge store {source} into itself")
    report = MergeReport(str(source))
    with Store.open(source, create=False) as src:
        trainings = _rows(src.conn, "trainings")
        cells = _rows(src.conn, "cells")
        checkpoints = sorted((src.artifacts / CHECKPOINTS).glob("*.pt"))
        # weights and caches first: a record is only ever written after the file it points to
        for t in trainings:
            weights = src.artifacts / t["weights"]
            mine = destination.artifacts / t["weights"]
            if weights.exists() and mine.exists() and not same_weights(weights, mine):
                report.weight_disagreements.append(t["key"])
            elif weights.exists():
                _copy_new(weights, mine)
            else:
                report.missing_weights.append(t["key"])
        cache = src.artifacts / "cache"
        if cache.is_dir():
            for path in sorted(p for p in cache.rglob("*") if p.is_file() and not p.name.endswith(".tmp")):
                report.cache_files_added += _copy_new(path, destination.artifacts / "cache" / path.relative_to(cache))
    missing = set(report.missing_weights) | set(report.weight_disagreements)
    conn = destination.conn
    conn.execute("BEGIN IMMEDIATE")
    try:
        for t in trainings:
            if t["key"] not in missing and conn.execute("SELECT 1 FROM trainings WHERE key=?", (t["key"],)).fetchone() is None:
                _insert(conn, "trainings", t)
                report.trainings_added += 1
        for c in cells:
            if c["train_key"] in report.weight_disagreements:
                continue  # computed from other weights than the destination's
            row = conn.execute("SELECT status, accuracy, correct FROM cells WHERE key=?", (c["key"],)).fetchone()
            if row is None or (row[0] == "failed" and c["status"] != "failed"):
                _insert(conn, "cells", c)
                report.cells_added += 1
                continue
            report.cells_kept += 1
            if row[0] == "ok" and c["status"] == "ok" and (c["accuracy"], c["correct"]) != (row[1], row[2]):
                report.disagreements.append(c["key"])
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    for path in checkpoints:
        target = checkpoint_path(destination.artifacts, path.stem)
        stored_cell = destination.get_cell(path.stem)
        finished = destination.get_training(path.stem) is not None or (stored_cell is not None and stored_cell.status != "failed")
        if not finished and further_along(path, target):
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.merge.tmp")
            shutil.copyfile(path, tmp)
            tmp.replace(target)
            report.checkpoints_added += 1
    return report


def _rows(conn: sqlite3.Connection, table: str) -> list[dict[str, Any]]:
    """Every row of ``table`` as stored (column name -> value), oldest first."""
    cursor = conn.execute(f"SELECT * FROM {table} ORDER BY created")
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, values)) for values in cursor]


def _insert(conn: sqlite3.Connection, table: str, row: dict[str, Any]) -> None:
    """Write ``row`` verbatim (timestamps included), replacing a failed record of the same key."""
    marks = ",".join("?" * len(row))
    conn.execute(f"INSERT OR REPLACE INTO {table} ({','.join(row)}) VALUES ({marks})", tuple(row.values()))
