"""Leaderboard entries: one defense on one board, as a JSON document validated against the published schema."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

import qbench
from qbench.errors import UsageError
from qbench.hashing import config_hash
from qbench.running.provenance import git_commit, package_versions
from qbench.running.scoring import relative_improvement

SCHEMA_VERSION = 2


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    """The entry JSON Schema shipped in the package (``qbench/schemas/entry.schema.json``)."""
    return json.loads(resources.files("qbench").joinpath("schemas/entry.schema.json").read_text())


def validate(entry: dict[str, Any], where: str = "entry") -> None:
    """Raise :class:`UsageError` naming the first schema violation (path and message)."""
    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(entry), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        path = "/".join(str(p) for p in first.absolute_path) or "(top level)"
        raise UsageError(f"{where} fails the entry schema at {path}: {first.message}")


def load(path: Path | str) -> dict[str, Any]:
    """Read and validate an entry file."""
    path = Path(path)
    try:
        entry = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"no entry file at {path}") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path} is not valid JSON ({exc})") from None
    validate(entry, str(path))
    return entry


def write(entry: dict[str, Any], path: Path) -> None:
    """Validate, then write atomically (sorted keys, so re-builds diff cleanly)."""
    validate(entry, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(entry, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def build_entry(
    summary: dict[str, Any],
    undefended: dict[str, Any] | None,
    board: str,
    epsilon: float,
    registered: dict[str, Any],
    cells: list[dict[str, Any]],
    build_commit: str | None = None,
    draft: bool = False,
) -> dict[str, Any]:
    """An entry from a defense's summary (and the undefended model's, same protocol).

    ``registered`` is the defense's registration (``Registered.to_dict()``) for plugin provenance;
    ``cells`` the stored cells behind the summary (key, seed, kind, attack, epsilon, status, accuracy).
    """
    def at(of: dict[str, Any], eps: float, field: str = "robust") -> dict | None:
        if of.get("unmeasured"):
            return None  # at chance: no attack ran, so there is no worst case
        for row in of["worst_case"]:
            if row["epsilon"] == eps:
                return row[field]
        raise UsageError(f"the summary has no worst case at the ranking epsilon {eps:g}")

    robust = at(summary, epsilon)
    strict = at(summary, epsilon, "strict")
    base = None
    improvement = None
    if undefended is not None:
        base = {"clean": undefended["clean"], "robust": at(undefended, epsilon)}
        if robust is not None and base["robust"] is not None:
            improvement = relative_improvement(robust["mean"], base["robust"]["mean"])
    defense = dict(summary["defense"])
    defense.update(
        plugin=registered.get("plugin", ""), distribution=registered.get("distribution", ""),
        distribution_version=registered.get("distribution_version", ""),
    )
    identity = {k: summary[k] for k in ("track", "dataset", "model", "schedule")}
    identity.update(defense=summary["defense"], seeds=summary["seeds"], n_test=summary["n_test"],
                    attacks=[(a["attack"], a["epsilon"]) for a in summary["attacks"]])
    return {
        "schema_version": SCHEMA_VERSION,
        "track": summary["track"],
        "board": board,
        "dataset": summary["dataset"],
        "model": summary["model"],
        "defense": defense,
        "seeds": summary["seeds"],
        "n_test": summary["n_test"],
        "protocol": {**summary["protocol"], "schedule": summary["schedule"]},
        "epsilon": epsilon,
        "clean": summary["clean"],
        "clean_strict": summary["clean_strict"],
        "robust": robust,
        "strict": strict,
        "rank": summary.get("rank", {"label": "1", "group": "unreliable" if summary["flags"]["unreliable"] else "reliable",
                                     "compared_with": None, "comparison": None}),
        "paper_protocol": summary.get("paper_protocol"),
        "attacks": summary["attacks"],
        "worst_case": summary["worst_case"],
        "flags": summary["flags"],
        "training": {
            "seconds": summary["training"]["seconds"],
            "relative_cost": summary["training"].get("relative_cost"),
            "defense_info": summary["training"]["defense_info"],
        },
        "undefended": base,
        "relative_improvement_percent": improvement,
        "provenance": {
            "qbench_version": qbench.__version__,
            "git_commit": build_commit if build_commit is not None else git_commit(),
            # the commits that computed the cells behind the numbers (a resumed grid spans several)
            "cell_commits": sorted({c["commit"] for c in cells if c.get("commit")}),
            "draft": draft,
            "packages": package_versions(),
            "config_hash": config_hash(identity),
            "data_files": summary["data"]["files"],
            "data_notes": summary["data"]["notes"],
            "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        "cells": cells,
        **({"unmeasured": summary["unmeasured"]} if summary.get("unmeasured") else {}),
    }
