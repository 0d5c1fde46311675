"""``qbench verify ENTRY.json``: re-run a sample of an entry's cells from scratch and compare.

The sampled cells are recomputed in a fresh, temporary store (the model is retrained from its seed), so
nothing is read back from the store that produced the entry. A cell agrees when its recomputed accuracy is
within the tolerance of :func:`qbench.checks.tolerance` (two binomial standard errors plus one example) of
the entry's number; on the machine that produced it the numbers are normally identical, and the report
says how many were.
"""

from __future__ import annotations

import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qbench.attack import attack_label
from qbench.checks import tolerance
from qbench.dataset import TrainingSchedule
from qbench.errors import UsageError
from qbench.planning import make_plan
from qbench.progress import Reporter
from qbench.registry import Registry
from qbench.runner import Plan, Runner
from qbench.store import Store


@dataclass
class CellCheck:
    """One re-run cell: what the entry says, what was measured, and whether they agree."""

    seed: int
    kind: str
    attack: str | None
    epsilon: float | None
    claimed: float
    measured: float
    tolerance: float

    @property
    def agrees(self) -> bool:
        """Whether the measured accuracy is within tolerance of the claimed one."""
        return abs(self.claimed - self.measured) <= self.tolerance

    def describe(self) -> str:
        """One line naming the cell and both numbers."""
        what = "clean" if self.kind == "clean" else f"{self.attack} eps={self.epsilon:g}"
        verdict = "agrees" if self.agrees else "DISAGREES"
        return (f"seed {self.seed} {what}: entry {100 * self.claimed:.2f}%, re-run {100 * self.measured:.2f}% "
                f"(tolerance {100 * self.tolerance:.2f} points) {verdict}")


@dataclass
class VerifyReport:
    """All re-run cells of one entry."""

    entry: str
    checks: list[CellCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every re-run cell agrees."""
        return all(c.agrees for c in self.checks)

    @property
    def identical(self) -> int:
        """How many re-run cells gave exactly the entry's number."""
        return sum(c.claimed == c.measured for c in self.checks)

    @property
    def largest_difference(self) -> float:
        """The largest |entry - re-run| over the checked cells (accuracy fraction)."""
        return max((abs(c.claimed - c.measured) for c in self.checks), default=0.0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready report."""
        return {
            "entry": self.entry, "ok": self.ok,
            "identical": self.identical,
            "largest_difference": self.largest_difference,
            "cells": [{**vars(c), "agrees": c.agrees} for c in self.checks],
        }


def sample_cells(entry: dict[str, Any], k: int, seed: int = 0) -> list[dict[str, Any]]:
    """``k`` of the entry's successful cells (clean and attack), a fixed random sample."""
    candidates = [c for c in entry["cells"] if c["status"] == "ok" and c["kind"] in ("clean", "attack")]
    if not candidates:
        raise UsageError("the entry lists no successful cells to verify")
    return random.Random(seed).sample(candidates, min(k, len(candidates)))


def _plan(registry: Registry, entry: dict[str, Any], cell: dict[str, Any]) -> Plan:
    track = entry["track"]
    protocol = entry["protocol"]
    attacks, epsilons = [], []
    if cell["kind"] == "attack":
        row = next((a for a in entry["attacks"] if a["attack"] == cell["attack"] and a["epsilon"] == cell["epsilon"]), None)
        if row is None:
            raise UsageError(f"the entry's cell {cell['attack']} eps={cell['epsilon']} has no attack row")
        if attack_label(registry.create("attack", row["name"], row["config"], track)) != cell["attack"]:
            raise UsageError(f"attack {cell['attack']!r} cannot be rebuilt from its config")
        attacks, epsilons = [(row["name"], row["config"])], [cell["epsilon"]]
    # the stored defense config already has its threat filled in (at_threat leaves a filled config as is)
    return make_plan(
        registry, track, dataset=(entry["dataset"]["name"], entry["dataset"]["config"]),
        model=(entry["model"]["name"], entry["model"]["config"]),
        defense=(entry["defense"]["name"], entry["defense"]["config"]), attacks=attacks, epsilons=epsilons,
        seeds=[cell["seed"]], schedule=TrainingSchedule(**protocol["schedule"]),
        n_eot=protocol["n_eot"], n_repeat=protocol["n_repeat"], n_test=protocol["n_test"], shots=protocol.get("shots"),
        quantum_device=protocol.get("quantum_device"),
    )


def verify(
    registry: Registry, entry: dict[str, Any], name: str, k: int, data_dir: Path | None,
    reporter: Reporter | None = None, workdir: Path | None = None,
) -> VerifyReport:
    """Re-run ``k`` sampled cells of ``entry`` from scratch and compare them with the entry."""
    report = VerifyReport(name)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp, Store.open(Path(tmp) / "verify.sqlite") as store:
        runner = Runner(store, data_dir=data_dir, reporter=reporter)
        data = None
        for cell in sample_cells(entry, k):
            plan = _plan(registry, entry, cell)
            if data is None:
                data = runner.load_data(plan.dataset)
            result = runner.run(plan, data)
            stored = [c for c in result.seeds[0].cells if c.kind == cell["kind"]][0]
            report.checks.append(CellCheck(
                cell["seed"], cell["kind"], cell["attack"], cell["epsilon"], float(cell["accuracy"]),
                float(stored.accuracy), tolerance(float(cell["accuracy"]), stored.n),
            ))
    return report
