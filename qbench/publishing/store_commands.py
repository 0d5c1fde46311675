"""The commands that only read and write stores: ``qbench results``, ``qbench store export|import`` and
``qbench merge``.

Kept apart from :mod:`qbench.commands` so that they start without importing PennyLane, ART or the runner
(about 6 of a command's 8 seconds of start-up on these machines): the CLI dispatches them from here.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from qbench.errors import UsageError
from qbench.running.store import Store, default_store_path


def print_wide(out: Console, table: Table) -> None:
    """``table`` on one line per row however wide that is (``--wide``)."""
    width = max(out.width, Console(width=10_000).measure(table).maximum)
    Console(width=width, file=out.file, force_terminal=out.is_terminal, no_color=out.no_color).print(table)


def _cell_label(row: dict) -> str:
    """``clean``, or the attack's full label (``bim[n_eot=1]``, as stored) at its epsilon."""
    if row["kind"] == "clean":
        return "clean"
    epsilon = "" if row["epsilon"] is None else f" ε={row['epsilon']:g}"
    return f"{row['attack']}{epsilon}" + (" (probe)" if row["kind"] == "probe" else "")


def cmd_results(args: argparse.Namespace, out: Console, err: Console) -> int:
    """``qbench results``: the cells in the store, one line each (``--wide``: every column)."""
    path = args.store or default_store_path()
    if not Path(path).exists():
        if args.json:
            print(json.dumps({"store": str(path), "cells": []}))
        else:
            out.print(f"no results yet: no store at {path}", markup=False, highlight=False)
        return 0
    with Store.open(path, create=False) as store:
        cells = store.cells()
        trainings = {t.key: t for t in store.trainings()}
    rows = []
    for c in cells:
        t = trainings.get(c.train_key)
        spec = t.spec if t else {}
        rows.append(
            {
                "key": c.key, "track": spec.get("track"), "dataset": spec.get("dataset", {}).get("name"),
                "model": spec.get("model", {}).get("name"), "defense": c.spec.get("defense", {}).get("name"),
                "seed": c.seed, "kind": c.kind, "attack": c.attack, "epsilon": c.epsilon, "status": c.status,
                "n": c.n, "accuracy": c.accuracy, "error": c.error, "qbench_version": c.qbench_version,
            }
        )
    if args.json:
        print(json.dumps({"store": str(path), "cells": rows}, indent=2))
        return 0

    def accuracy(r: dict) -> str:
        if r["status"] != "ok" and not args.wide:
            return r["status"]
        return "—" if r["accuracy"] is None else f"{100 * r['accuracy']:.1f}%"

    # a training that never finished leaves its cells without dataset and model
    def trained(r: dict) -> str:
        return f"{r['dataset']}/{r['model']}" if r["dataset"] else "(no training)"

    # no box: two spaces between columns leave the cell label room for ``twin-apgd-ce ε=0.15`` beside a
    # ``gaussian_augmentation`` at 80 columns; only an even longer row wraps, in its cell label, never cut
    table = Table(title=f"{len(rows)} cells in {path}", title_justify="left", box=None, padding=(0, 1),
                  pad_edge=False, header_style="bold")
    columns = ["dataset/model", "defense", "seed", "cell", "accuracy", "n"]
    if args.wide:
        columns = ["key", "track", *columns[:4], "status", *columns[4:], "qbench", "error"]
    for col in columns:
        right = col in ("seed", "accuracy", "n")
        table.add_column(col, justify="right" if right else "left", no_wrap=args.wide or col != "cell",
                         overflow="fold")
    for r in rows:
        values = [trained(r), str(r["defense"]), str(r["seed"]), _cell_label(r), accuracy(r), str(r["n"])]
        if args.wide:
            values = [r["key"], str(r["track"]), *values[:4], r["status"], *values[4:], r["qbench_version"],
                      r["error"] or ""]
        table.add_row(*[escape(v) for v in values])
    if args.wide:
        print_wide(out, table)
    else:
        out.print(table)
    return 0


def cmd_store(args: argparse.Namespace, out: Console, err: Console) -> int:
    """``qbench store export|import``: between a SQLite store and the published store (JSON lines + weights)."""
    from qbench.publishing.published_store import export_store, import_store

    if args.action is None:
        raise UsageError("store needs an action: export or import")
    if args.action == "import" and not args.published.is_dir():
        raise UsageError(f"--published {args.published} is not a directory")
    if args.published.exists() and not args.published.is_dir():
        raise UsageError(f"--published {args.published} is not a directory")
    with Store.open(args.store or default_store_path(), create=args.action == "import") as store:
        if args.action == "export":
            report = export_store(store, args.published, commit=args.commit)
        else:
            report = import_store(args.published, store)
    fields = {"cells_added": report.cells_added, "trainings_added": report.trainings_added,
              "weights_added": report.weights_added, "disagreements": report.disagreements,
              "weight_disagreements": report.weight_disagreements,
              "cells_without_training": report.cells_without_training,
              "missing_weights": report.missing_weights, "checkpoints_added": report.checkpoints_added,
              "checkpoints_removed": report.checkpoints_removed}
    if args.json:
        print(json.dumps(fields, indent=2))
    else:
        out.print(f"{args.action}: {report.cells_added} cells, {report.trainings_added} trainings, "
                  f"{report.weights_added} weights files added", markup=False, highlight=False)
        if report.checkpoints_added or report.checkpoints_removed:
            out.print(f"  checkpoints of trainings and cells under way: {report.checkpoints_added} copied, "
                      f"{report.checkpoints_removed} removed (done)", markup=False, highlight=False,
                      soft_wrap=True)
        for key in report.disagreements:
            out.print(f"  disagreement (kept the existing record): cell {key}", markup=False, highlight=False)
        if report.cells_without_training:
            out.print(f"  {len(report.cells_without_training)} cells left out: the store lacks their training "
                      f"(first: {report.cells_without_training[0]})", markup=False, highlight=False, soft_wrap=True)
        for key in report.weight_disagreements:
            out.print(f"  disagreement (kept the existing record): the weights of training {key}; its cells "
                      "here were computed from other weights and were not moved", markup=False, highlight=False)
    return 1 if report.disagreements or report.weight_disagreements else 0


def cmd_merge(args: argparse.Namespace, out: Console, err: Console) -> int:
    """``qbench merge SOURCE...``: exit 0, or 1 when a cell stored in both stores disagrees (the store's is kept)."""
    from qbench.running.store_merge import merge_store

    for source in args.sources:
        if not source.is_file():
            raise UsageError(f"no qbench store at {source}")
    with Store.open(args.store or default_store_path()) as store:
        reports = [merge_store(source, store) for source in args.sources]
        target = str(store.path)
    if args.json:
        print(json.dumps({"store": target, "merged": [vars(r) for r in reports]}, indent=2))
    else:
        for r in reports:
            out.print(
                f"{r.source} -> {target}: {r.trainings_added} trainings, {r.cells_added} cells, "
                f"{r.cache_files_added} cache files added; {r.cells_kept} cells already there"
                + (f"; {len(r.missing_weights)} trainings skipped (weights missing)" if r.missing_weights else "")
                + (f"; {r.checkpoints_added} checkpoints of trainings and cells under way" if r.checkpoints_added else ""),
                markup=False, highlight=False,
            )
    weights = [(r.source, key) for r in reports for key in r.weight_disagreements]
    if weights:
        print(f"qbench: error: {len(weights)} trainings have different weights in {weights[0][0]} and {target} "
              f"(first: {weights[0][1]}); the destination's weights were kept and the source's cells of them "
              "not merged", file=sys.stderr)
        return 1
    disagreeing = [(r.source, key) for r in reports for key in r.disagreements]
    if disagreeing:
        print(f"qbench: error: {len(disagreeing)} cells differ between {disagreeing[0][0]} and {target} "
              f"(first: {disagreeing[0][1]}); the destination's results were kept", file=sys.stderr)
        return 1
    return 0


STORE_COMMANDS = {"results": cmd_results, "store": cmd_store, "merge": cmd_merge}
