"""The published store: the results behind the committed leaderboards, in files git stores and diffs well.

DESIGN section 5: every cell behind every committed entry (with its per-example, per-draw bits) and the
trained weights of every training the boards use are committed under ``leaderboards/store/``, so a grid
killed on one machine resumes on another from a fresh clone, and any reader can recompute every number.

Layout (one folder per board, ``<root>/<track>/<board>/``):

- ``trainings.jsonl`` — one JSON object per training (its key, full spec, seed, seconds, info, the
  weights file name), sorted by key;
- ``cells.jsonl`` — one JSON object per cell (key, spec, status, accuracy, the commit that computed it,
  and ``bits``: the packed per-draw correctness, base64), sorted by key;
- ``weights/<training key>.safetensors`` — the trained weights;
- ``checkpoints/<key>.pt`` — the last checkpoint of a training, or of an attack cell, still under way
  (:mod:`qbench.contract.checkpoint`, :mod:`qbench.running.cell_checkpoint`), so a training or a cell
  longer than a session resumes on another machine; the only files here that are replaced (by a checkpoint
  further along) and removed (once the training or cell is published).

Why this layout, not the SQLite file itself: a SQLite file is one binary blob to git (every commit of a
growing grid stores it whole again, and a diff says nothing); JSON lines sorted by key make every new cell
one added line, an edited cell a one-line diff, and two machines' additions merge like text. The SQLite
store stays the working copy a run writes to (WAL, one transaction per cell); :func:`export_store` and
:func:`import_store` move records between the two. Records are never overwritten: a key present on both
sides names the same computation, and a successful cell that differs is reported, the published one kept.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from qbench.contract.checkpoint import further_along, read_meta
from qbench.errors import StoreError, UsageError
from qbench.running.store import CellRecord, Store, TrainingRecord, _pack, _unpack, checkpoint_path, same_weights

CELLS = "cells.jsonl"
TRAININGS = "trainings.jsonl"
WEIGHTS = "weights"
CHECKPOINTS = "checkpoints"


@dataclass
class TransferReport:
    """What an export or import moved, and what it kept out."""

    trainings_added: int = 0
    cells_added: int = 0
    weights_added: int = 0
    #: cell keys stored successfully on both sides with different results (the target's record kept)
    disagreements: list[str] = field(default_factory=list)
    #: trainings whose weights are missing on the source side
    missing_weights: list[str] = field(default_factory=list)
    #: trainings stored on both sides with different weights: the target's kept, the source's cells of them
    #: (computed from the other weights) not moved
    weight_disagreements: list[str] = field(default_factory=list)
    #: cells not exported because the store lacks their training (nothing to place them by, no weights)
    cells_without_training: list[str] = field(default_factory=list)
    #: checkpoints of trainings and cells under way copied (new, or further along than the target's)
    checkpoints_added: int = 0
    #: checkpoints removed from the target because their training is now published or stored
    checkpoints_removed: int = 0


def board_of(spec: dict[str, Any]) -> tuple[str, str]:
    """(track, board) of a training spec: the grid's board with that dataset and model (and options)."""
    from qbench.running.grid import BOARDS

    track = spec["track"]
    dataset, model = spec["dataset"], spec["model"]
    for board in BOARDS.get(track, ()):
        if board.dataset != dataset["name"] or board.model != model["name"]:
            continue
        if all(dataset["config"].get(k) == v for k, v in board.dataset_options.items()) and all(
            model["config"].get(k) == v for k, v in board.model_options.items()
        ):
            return track, board.name
    return track, f"{dataset['name']}-{model['name']}"


def _cell_json(cell: CellRecord, commit: str | None) -> dict[str, Any]:
    blob = _pack(cell.correct)
    return {
        "key": cell.key, "train_key": cell.train_key, "spec": cell.spec, "kind": cell.kind, "attack": cell.attack,
        "epsilon": cell.epsilon, "seed": cell.seed, "status": cell.status, "n": cell.n, "n_correct": cell.n_correct,
        "accuracy": cell.accuracy, "info": cell.info, "seconds": cell.seconds, "error": cell.error,
        "qbench_version": cell.qbench_version, "commit": cell.info.get("commit", commit),
        "bits": base64.b64encode(blob).decode("ascii") if blob is not None else None,
    }


def cell_from_json(row: dict[str, Any]) -> CellRecord:
    """A :class:`CellRecord` from one line of ``cells.jsonl``; a cell whose summary fields do not follow from
    its bits is refused (:class:`qbench.errors.StoreError`).

    Every published number is computed from the bits, while a re-run (``qbench verify``) compares its
    accuracy with the cell's ``accuracy`` field: the two must be one record, or bits edited under an
    unchanged ``accuracy`` would pass.
    """
    bits = _unpack(base64.b64decode(row["bits"])) if row.get("bits") else None
    info = dict(row["info"])
    if row.get("commit"):
        info["commit"] = row["commit"]
    if row["status"] == "ok":
        check_summary_fields(row, bits)
    return CellRecord(
        row["key"], row["train_key"], row["spec"], row["kind"], row["attack"], row["epsilon"], row["seed"],
        row["status"], row["n"], row["n_correct"], row["accuracy"], bits, info, row["seconds"], row.get("error"),
        row.get("qbench_version", ""),
    )


def check_summary_fields(row: dict[str, Any], bits: Any) -> None:
    """Raise :class:`StoreError` unless ``n``, ``accuracy`` and ``n_correct`` of a successful cell are what its
    bits give: the mean over every draw, and the examples right in every draw of the second set (the strict
    number; the runner's definition in :meth:`qbench.running.tasks.CellTask.evaluate`)."""
    where = f"cell {row['key']} ({row.get('attack') or row['kind']}, seed {row['seed']})"
    if bits is None:
        raise StoreError(f"{where} is 'ok' but has no bits")
    draws = bits.shape[1] // 2 if bits.ndim == 2 else 0
    expected = (bits.shape[0], float(bits.mean()) if bits.shape[0] else 0.0,
                int(bits[:, draws:].all(axis=1).sum()) if bits.ndim == 2 else -1)
    if (row["n"], row["accuracy"], row["n_correct"]) != expected:
        raise StoreError(f"{where}: its n, accuracy and n_correct ({row['n']}, {row['accuracy']}, "
                         f"{row['n_correct']}) are not what its bits give {expected}: the record was edited")


def _training_json(t: TrainingRecord) -> dict[str, Any]:
    return {"key": t.key, "spec": t.spec, "seed": t.seed, "weights": t.weights, "seconds": t.seconds,
            "info": t.info, "qbench_version": t.qbench_version}


def read_jsonl(path: Path) -> dict[str, dict[str, Any]]:
    """The records of one JSON-lines file by key (empty when the file does not exist)."""
    if not path.exists():
        return {}
    records = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{path}:{number} is not valid JSON ({exc.msg})") from None
        records[row["key"]] = row
    return records


def _write_jsonl(path: Path, records: dict[str, dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(json.dumps(records[k], sort_keys=True) + "\n" for k in sorted(records)))
    tmp.replace(path)


def board_dirs(root: Path) -> Iterator[Path]:
    """Every board folder of a published store."""
    root = Path(root)
    found = {p.parent for name in (CELLS, TRAININGS, CHECKPOINTS) for p in root.glob(f"*/*/{name}")}
    yield from sorted(found)


def export_store(store: Store, root: Path, commit: str | None = None) -> TransferReport:
    """Add the trainings, weights and cells of ``store`` that ``root`` lacks (nothing is overwritten).

    ``commit`` is recorded for cells that do not carry the commit that computed them (cells computed
    before the runner recorded it; the run's starting commit is the honest value).
    """
    report = TransferReport()
    root = Path(root)
    trainings = {t.key: t for t in store.trainings()}
    where: dict[str, tuple[str, str]] = {k: board_of(t.spec) for k, t in trainings.items()}
    by_board_t: dict[tuple[str, str], list[TrainingRecord]] = {}
    for key, t in trainings.items():
        by_board_t.setdefault(where[key], []).append(t)
    by_board_c: dict[tuple[str, str], list[CellRecord]] = {}
    for cell in store.cells():
        if cell.status == "failed":
            continue  # failures are retried, not published
        if cell.train_key not in where:
            report.cells_without_training.append(cell.key)  # cannot be placed, and no weights stand behind it
            continue
        by_board_c.setdefault(where[cell.train_key], []).append(cell)
    conflicting: set[str] = set()
    for board, records in by_board_t.items():
        folder = root / board[0] / board[1]
        published = read_jsonl(folder / TRAININGS)
        for t in records:
            source = store.artifacts / t.weights
            target = folder / WEIGHTS / t.weights
            if target.exists() and source.exists() and not same_weights(source, target):
                report.weight_disagreements.append(t.key)
                conflicting.add(t.key)
                continue
            if not target.exists():
                if not source.exists():
                    report.missing_weights.append(t.key)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_name(f".{target.name}.tmp")
                shutil.copyfile(source, tmp)
                tmp.replace(target)
                report.weights_added += 1
            if t.key not in published:
                published[t.key] = _training_json(t)
                report.trainings_added += 1
        _write_jsonl(folder / TRAININGS, published)
    _export_checkpoints(store, root, report)
    for board, cells in by_board_c.items():
        folder = root / board[0] / board[1]
        published = read_jsonl(folder / CELLS)
        for cell in cells:
            if cell.train_key in conflicting:
                continue  # computed from other weights than the published ones
            row = _cell_json(cell, commit)
            old = published.get(cell.key)
            if old is None:
                published[cell.key] = row
                report.cells_added += 1
            elif (old["accuracy"], old["bits"]) != (row["accuracy"], row["bits"]):
                report.disagreements.append(cell.key)
        _write_jsonl(folder / CELLS, published)
    return report


def _copy_atomic(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.copyfile(source, tmp)
    tmp.replace(target)


def _export_checkpoints(store: Store, root: Path, report: TransferReport) -> None:
    """Publish the store's checkpoints of trainings not yet published; drop those of published trainings."""
    for path in sorted((store.artifacts / CHECKPOINTS).glob("*.pt")):
        meta = read_meta(path)
        if meta is None or "spec" not in meta["meta"]:
            continue
        try:
            track, board = board_of(meta["meta"]["spec"])
        except (KeyError, TypeError, AttributeError):
            continue  # a spec without its track/dataset/model: nothing to place it by
        folder = root / track / board
        if meta["key"] in _finished(folder):
            continue
        target = folder / CHECKPOINTS / path.name
        if further_along(path, target):
            _copy_atomic(path, target)
            report.checkpoints_added += 1
    for folder in board_dirs(root) if root.exists() else ():
        _drop_finished(folder, _finished(folder), report)


def _finished(folder: Path) -> set[str]:
    """The keys of the trainings and cells a board folder publishes (their checkpoints are no longer needed)."""
    return set(read_jsonl(folder / TRAININGS)) | set(read_jsonl(folder / CELLS))


def _drop_finished(folder: Path, finished: set[str], report: TransferReport) -> None:
    for path in sorted((folder / CHECKPOINTS).glob("*.pt")):
        if path.stem in finished:
            path.unlink()
            report.checkpoints_removed += 1


def import_store(root: Path, store: Store) -> TransferReport:
    """Bring the published records ``store`` lacks into it (weights into its artifact folder)."""
    report = TransferReport()
    for folder in board_dirs(root):
        conflicting: set[str] = set()
        for row in read_jsonl(folder / TRAININGS).values():
            source = folder / WEIGHTS / row["weights"]
            target = store.artifacts / row["weights"]
            if not source.exists():
                report.missing_weights.append(row["key"])
                continue
            if target.exists() and store.get_training(row["key"]) is not None and not same_weights(source, target):
                report.weight_disagreements.append(row["key"])
                conflicting.add(row["key"])
                continue
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_name(f".{target.name}.tmp")
                shutil.copyfile(source, tmp)
                tmp.replace(target)
                report.weights_added += 1
            if store.get_training(row["key"]) is None:
                store.put_training(TrainingRecord(row["key"], row["spec"], row["seed"], row["weights"], row["seconds"],
                                                  row["info"], row.get("qbench_version", "")))
                report.trainings_added += 1
        for path in sorted((folder / CHECKPOINTS).glob("*.pt")):
            if store.get_training(path.stem) is not None or _stored_cell(store, path.stem):
                continue
            target = checkpoint_path(store.artifacts, path.stem)
            if further_along(path, target):  # (one of another torch is never imported: it would be set aside)
                _copy_atomic(path, target)
                report.checkpoints_added += 1
        for row in read_jsonl(folder / CELLS).values():
            if row["train_key"] in conflicting:
                continue  # computed from other weights than this store's
            stored = store.get_cell(row["key"])
            cell = cell_from_json(row)
            if stored is None or stored.status == "failed":
                store.put_cell(cell)
                report.cells_added += 1
            elif stored.status == "ok" and (stored.accuracy, _pack(stored.correct)) != (cell.accuracy, _pack(cell.correct)):
                report.disagreements.append(row["key"])
    return report


def _stored_cell(store: Store, key: str) -> bool:
    """Whether ``store`` holds cell ``key`` computed (not failed): a checkpoint of it is no longer needed."""
    cell = store.get_cell(key)
    return cell is not None and cell.status != "failed"


def published_cells(root: Path) -> dict[str, CellRecord]:
    """Every published cell by key."""
    return {k: cell_from_json(r) for folder in board_dirs(root) for k, r in read_jsonl(folder / CELLS).items()}
