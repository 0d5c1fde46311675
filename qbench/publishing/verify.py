"""``qbench verify ENTRY.json``: check every number of an entry, then re-run a sample of its cells.

Two steps (DESIGN section 5):

1. **Recompute** (:func:`recompute`): the entry's whole board is rebuilt from the published store's cells
   (their per-draw bits) by the same code that built it, in a temporary store, and the rebuilt entry is
   compared with the committed one field by field: every aggregate (per attack, per seed, worst case, strict
   number, paper protocol, intervals, ranks, relative improvement, flags) and every listed cell must be
   exactly equal. Only the build's own provenance (when, at which commit, with which packages) may differ.
   An edited number anywhere fails, naming the field; so do edited bits, whose numbers no longer match.
2. **Re-run** (:func:`verify`): cells drawn at random (the seed is printed; ``--seed`` repeats a draw), always
   including the ranking-epsilon cells of one seed, are recomputed from scratch in a fresh temporary store
   (the model retrained from its seed), so nothing is read back from the store that produced the entry.
   Where the re-run has the published cell's bits it must reproduce them exactly when platform, packages and
   thread count match (QNN cells re-run bit for bit); otherwise its accuracy must be within
   :func:`qbench.running.checks.tolerance` (two binomial standard errors plus one example) of the entry's number.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qbench.contract.attack import attack_label
from qbench.running.checks import tolerance
from qbench.contract.dataset import TrainingSchedule
from qbench.errors import StoreError, UsageError
from qbench.running.planning import make_plan
from qbench.contract.progress import Reporter
from qbench.registry import Registry
from qbench.running.plan import Plan
from qbench.running.runner import Runner
from qbench.running.store import Store
from qbench.running.torch_device import torch_device_name


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
    #: whether the re-run's per-draw bits equal the published cell's (None: no published bits to compare)
    bits_equal: bool | None = None
    #: whether exact equality is required (the published cell was computed on this platform and packages)
    exact: bool = False
    #: the cell's status in the entry and in the re-run: a skipped attack must skip again (a skip drops the
    #: attack out of the worst case, so an entry must not claim one the attack would not make)
    claimed_status: str = "ok"
    measured_status: str = "ok"

    @property
    def agrees(self) -> bool:
        """Exactly equal where required, else the measured accuracy within tolerance of the claimed one."""
        if self.claimed_status != self.measured_status:
            return False
        if self.claimed_status != "ok":
            return True
        if self.exact:
            return bool(self.bits_equal) and self.claimed == self.measured
        return abs(self.claimed - self.measured) <= self.tolerance

    def describe(self) -> str:
        """One line naming the cell and both numbers."""
        what = "clean" if self.kind == "clean" else f"{self.attack} eps={self.epsilon:g}"
        verdict = "agrees" if self.agrees else "DISAGREES"
        if "ok" not in (self.claimed_status, self.measured_status) or self.claimed_status != self.measured_status:
            return f"seed {self.seed} {what}: entry {self.claimed_status}, re-run {self.measured_status} {verdict}"
        rule = ("exact: bits " + ("identical" if self.bits_equal else "differ")) if self.exact else \
            f"tolerance {100 * self.tolerance:.2f} points"
        return (f"seed {self.seed} {what}: entry {100 * self.claimed:.2f}%, re-run {100 * self.measured:.2f}% "
                f"({rule}) {verdict}")


@dataclass
class VerifyReport:
    """All re-run cells of one entry."""

    entry: str
    checks: list[CellCheck] = field(default_factory=list)
    #: fields where the rebuilt entry differs from the committed one (step 1); empty when it matches
    mismatches: list[str] = field(default_factory=list)
    #: whether step 1 ran
    recomputed: bool = False
    #: the seed of the random cell sample (None when no cells were re-run)
    sample_seed: int | None = None

    @property
    def ok(self) -> bool:
        """Whether the recomputation matched and every re-run cell agrees."""
        return not self.mismatches and all(c.agrees for c in self.checks)

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
            "entry": self.entry, "ok": self.ok, "recomputed": self.recomputed, "mismatches": self.mismatches,
            "sample_seed": self.sample_seed,
            "identical": self.identical,
            "largest_difference": self.largest_difference,
            "cells": [{**vars(c), "agrees": c.agrees} for c in self.checks],
        }


def sample_cells(entry: dict[str, Any], k: int, seed: int) -> list[dict[str, Any]]:
    """``k`` random successful cells (clean and attack) plus every ranking-epsilon cell of one random seed and
    every skipped attack cell of that seed (a skip costs nothing to re-run and must happen again)."""
    candidates = [c for c in entry["cells"] if c["status"] == "ok" and c["kind"] in ("clean", "attack")]
    if not candidates:
        raise UsageError("the entry lists no successful cells to verify")
    rng = random.Random(seed)
    run_seed = rng.choice(sorted({c["seed"] for c in candidates}))
    ranking = [c for c in candidates if c["seed"] == run_seed and (c["kind"] == "clean" or c["epsilon"] == entry["epsilon"])]
    skipped = [c for c in entry["cells"] if c["status"] == "skipped" and c["seed"] == run_seed]
    rest = [c for c in candidates if c not in ranking]
    return ranking + skipped + rng.sample(rest, min(k, len(rest)))


def new_sample_seed() -> int:
    """A fresh seed for the cell sample (printed, so a draw can be repeated with ``--seed``)."""
    return int.from_bytes(os.urandom(4), "little")


#: provenance fields that describe the build rather than the numbers: the only ones allowed to differ
BUILD_FIELDS = ("created", "git_commit", "packages", "draft")


def differences(committed: Any, rebuilt: Any, path: str = "") -> list[str]:
    """Every field path where two JSON values differ (numbers compared exactly), with both values."""
    if isinstance(committed, dict) and isinstance(rebuilt, dict):
        out = []
        for key in sorted(set(committed) | set(rebuilt)):
            where = f"{path}.{key}" if path else key
            if path == "provenance" and key in BUILD_FIELDS:
                continue
            if key not in committed or key not in rebuilt:
                out.append(f"{where}: present in only one of the committed and the recomputed entry")
            else:
                out.extend(differences(committed[key], rebuilt[key], where))
        return out
    if isinstance(committed, list) and isinstance(rebuilt, list):
        if len(committed) != len(rebuilt):
            return [f"{path}: {len(committed)} items in the entry, {len(rebuilt)} recomputed"]
        out = []
        for i, (a, b) in enumerate(zip(committed, rebuilt)):
            out.extend(differences(a, b, f"{path}[{i}]"))
        return out
    if committed != rebuilt or type(committed) is not type(rebuilt) and not (
        isinstance(committed, (int, float)) and isinstance(rebuilt, (int, float))
    ):
        return [f"{path}: entry {json.dumps(committed)}, recomputed {json.dumps(rebuilt)}"]
    return []


def recompute_board(
    registry: Registry, board_dir: Path, published: Path, data_dir: Path | None, workdir: Path | None = None,
) -> dict[str, list[str]]:
    """Rebuild every entry in ``board_dir`` from the published store: per defense, the fields that differ."""
    from qbench.publishing import leaderboard
    from qbench.publishing.entry import load
    from qbench.publishing.published_store import import_store
    from qbench.contract.readout import EXACT

    if not Path(published).is_dir():
        raise UsageError(f"no published store at {published} (the cells behind the entry are needed to recompute it)")
    committed = {e["defense"]["name"]: e for e in (load(p) for p in sorted(Path(board_dir).glob("*.json")))}
    if not committed:
        raise UsageError(f"no entries in {board_dir}")
    entry = next(iter(committed.values()))
    protocol = entry["protocol"]
    options = leaderboard.GridOptions(
        boards=[entry["board"]], defenses=sorted(committed), seeds=list(entry["seeds"]), n_eot=protocol["n_eot"],
        n_repeat=protocol["n_repeat"], shots=protocol.get("shots") or EXACT, epochs=protocol["schedule"]["epochs"],
        n_test=protocol["n_test"], test_selection=protocol.get("test_selection", "first"),
        # the curve attacks' sweep adds attack rows (and worst cases) at other epsilons; the rows, since an
        # entry left unattacked at chance lists its planned attacks but has no worst case
        sweep=len({a["epsilon"] for a in entry["attacks"]}) > 1,
        carry_curves=bool(protocol.get("cascade_curves")),  # as the entry was computed
        cascade_rule=protocol.get("cascade_rule", "set-a"),
        cascade=bool(protocol.get("cascade_gates")),
        torch_device=protocol.get("torch_device", "cpu"),
    )
    out: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory(dir=workdir) as tmp, Store.open(Path(tmp) / "recompute.sqlite") as store:
        try:
            import_store(published, store)
        except StoreError as exc:  # a cell whose numbers do not follow from its bits: nothing to rebuild from
            return {defense: [f"(published store): {exc}"] for defense in committed}
        runner = Runner(store, data_dir=data_dir, compute=False)
        report = leaderboard.build(registry, runner, Path(tmp) / "out", entry["track"], options)
        for defense, mine in committed.items():
            rebuilt_path = Path(tmp) / "out" / entry["track"] / entry["board"] / f"{defense}.json"
            if not rebuilt_path.exists():
                why = "; ".join(r for r in report.skipped if f"/{defense}:" in r) or "its cells are not published"
                out[defense] = [f"(whole entry): cannot be rebuilt from {published}: {why}"]
            else:
                out[defense] = differences(mine, json.loads(rebuilt_path.read_text()))
    return out


def recompute(
    registry: Registry, entry: dict[str, Any], entry_path: Path, published: Path, data_dir: Path | None,
    workdir: Path | None = None,
) -> list[str]:
    """Rebuild the entry's board from the published store and list the fields that differ from ``entry``."""
    results = recompute_board(registry, Path(entry_path).parent, published, data_dir, workdir)
    return results.get(entry["defense"]["name"], ["(whole entry): not among the board's entries"])


def _plan(registry: Registry, entry: dict[str, Any], cell: dict[str, Any]) -> Plan:
    track = entry["track"]
    protocol = entry["protocol"]
    attacks, epsilons = [], []
    gates: tuple[str, ...] = ()  # only a cascaded cell's plan needs the cascade
    sweep: dict[str, Any] = {}  # only a carried curve cell's plan needs the curve below it
    if cell["kind"] == "attack":
        row = next((a for a in entry["attacks"] if a["attack"] == cell["attack"] and a["epsilon"] == cell["epsilon"]), None)
        if row is None:
            raise UsageError(f"the entry's cell {cell['attack']} eps={cell['epsilon']} has no attack row")
        if attack_label(registry.create("attack", row["name"], row["config"], track)) != cell["attack"]:
            raise UsageError(f"attack {cell['attack']!r} cannot be rebuilt from its config")
        attacks, epsilons = [(row["name"], row["config"])], [cell["epsilon"]]
        if row.get("cascaded"):
            # a cascaded cell is re-run behind its gates, which are re-run too (its key names theirs)
            gates = tuple(protocol.get("cascade_gates") or ())
            rows = [a for a in entry["attacks"] if a["attack"] in gates and a["epsilon"] == cell["epsilon"]]
            attacks = [(a["name"], a["config"]) for a in rows] + attacks
        if row.get("carried"):
            # a carried curve cell is re-run behind the same attack's cells at the smaller epsilons, which are
            # re-run too (its key names the one below it, whose key names the next, down to the clean cell)
            chain = [a for a in entry["attacks"] if a["attack"] == cell["attack"] and a["epsilon"] <= cell["epsilon"]]
            if any(a.get("cascaded") for a in chain):
                raise UsageError(f"the curve of {cell['attack']} is carried through a cascaded cell: not rebuilt")
            epsilons = sorted(a["epsilon"] for a in chain if not a.get("carried"))
            attacks = attacks if epsilons else []
            sweep = {"sweep_attacks": [(row["name"], row["config"])], "cascade_curves": True,
                     "sweep_epsilons": sorted(a["epsilon"] for a in chain if a.get("carried"))}
    # the stored defense config already has its threat filled in (at_threat leaves a filled config as is)
    return make_plan(
        registry, track, dataset=(entry["dataset"]["name"], entry["dataset"]["config"]),
        model=(entry["model"]["name"], entry["model"]["config"]),
        defense=(entry["defense"]["name"], entry["defense"]["config"]), attacks=attacks, epsilons=epsilons,
        seeds=[cell["seed"]], schedule=TrainingSchedule(**protocol["schedule"]),
        n_eot=protocol["n_eot"], n_repeat=protocol["n_repeat"], n_test=protocol["n_test"], shots=protocol.get("shots"),
        test_selection=protocol.get("test_selection", "first"), quantum_device=protocol.get("quantum_device"), cascade_gates=gates, **sweep,
        cascade_rule=protocol.get("cascade_rule", "set-a"), torch_device=protocol.get("torch_device", "cpu"),
    )


def verify(
    registry: Registry, entry: dict[str, Any], name: str, k: int, data_dir: Path | None,
    reporter: Reporter | None = None, workdir: Path | None = None, published: Path | None = None,
    seed: int | None = None, recompute_only: bool = False,
) -> VerifyReport:
    """Recompute ``entry`` from ``published`` (when given), then re-run ``k`` sampled cells from scratch."""
    from qbench.publishing.published_store import published_cells

    report = VerifyReport(name)
    if published is not None:
        report.mismatches = recompute(registry, entry, Path(name), published, data_dir, workdir)
        report.recomputed = True
    if recompute_only:
        return report
    device = entry["protocol"].get("torch_device", "cpu")
    try:
        torch_device_name(device)
    except UsageError as exc:
        raise UsageError(f"{name} was computed on {device}; re-running its cells needs that device ({exc}); "
                         "--recompute-only recomputes it from the store anywhere") from None
    report.sample_seed = seed if seed is not None else new_sample_seed()
    bits = published_cells(published) if published is not None else {}
    with tempfile.TemporaryDirectory(dir=workdir) as tmp, Store.open(Path(tmp) / "verify.sqlite") as store:
        runner = Runner(store, data_dir=data_dir, reporter=reporter)
        data = None
        for cell in sample_cells(entry, k, report.sample_seed):
            plan = _plan(registry, entry, cell)
            if data is None:
                data = runner.load_data(plan.dataset)
            result = runner.run(plan, data)
            stored = next((c for c in result.seeds[0].cells if c.key == cell["key"]), None)
            if stored is None:  # the re-built plan does not name the entry's cell: the entry is not reproducible
                raise UsageError(f"cell {cell['attack'] or cell['kind']} (seed {cell['seed']}) cannot be rebuilt "
                                 f"from the entry's protocol: its key {cell['key']} is not the re-built plan's")
            if cell["status"] != "ok" or stored.status != "ok":
                report.checks.append(CellCheck(
                    cell["seed"], cell["kind"], cell["attack"], cell["epsilon"], 0.0, 0.0, 0.0,
                    claimed_status=cell["status"], measured_status=stored.status,
                ))
                continue
            original = bits.get(cell["key"])
            same_platform = original is not None and original.qbench_version == stored.qbench_version and \
                original.info.get("platform") == stored.info.get("platform")
            report.checks.append(CellCheck(
                cell["seed"], cell["kind"], cell["attack"], cell["epsilon"], float(cell["accuracy"]),
                float(stored.accuracy), tolerance(float(cell["accuracy"]), stored.n),
                bits_equal=None if original is None else bool(
                    original.correct is not None and stored.correct is not None
                    and original.correct.shape == stored.correct.shape and (original.correct == stored.correct).all()),
                exact=same_platform,
            ))
    return report
