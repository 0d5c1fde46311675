"""Turn a :class:`~qbench.running.runner.RunResult` into the numbers a reader sees: clean, per attack, worst case."""

from __future__ import annotations

from typing import Any

import numpy as np

from qbench.contract.attack import attack_label
from qbench.running.checks import run_checks
from qbench.running.plan import component_ref
from qbench.running.runner import RunResult
from qbench.running.scoring import (
    SCORING_VERSION, TIE_RULE, estimate, expected_correct, relative_improvement, strict_correct, survivors,
    white_box_first, worst_case,
)
from qbench.running.store import CellRecord


def _values(cells: list[CellRecord], rule) -> list[np.ndarray]:
    return [rule(c.correct) for c in cells]


def _cascade_candidates(plan, candidates: list, epsilon: float) -> tuple[list[np.ndarray], Any]:
    """The candidates' bits for the worst case, and per example the candidate a break is attributed to.

    Under the all-draws rule a cascaded cell's inherited rows copy a gate point that is wrong in every
    draw: they stay as they are, so the worst case there is 0 (what the full suite would report at most),
    and the examples whose selected point is such a copy are attributed to the gate it copies. Under the
    legacy set-A rule the copies are set to all-correct instead: the gate point they copy is itself a
    candidate, so the worst case takes its values and is attributed to it.
    """
    bits = [c.correct for c in candidates]
    staged = {attack_label(a) for a, e in plan.attack_cells() if e == epsilon and plan.cascaded(a, e)}
    cascaded = [i for i, c in enumerate(candidates) if c.kind == "attack" and c.attack in staged and "cascade" in c.info]
    if not cascaded:
        return bits, None
    gate_index = [i for i, c in enumerate(candidates) if c.kind == "clean" or c.attack in plan.cascade_gates]
    found = survivors([bits[i] for i in gate_index], plan.cascade_rule)
    if plan.cascade_rule == "set-a":
        for i in cascaded:
            bits[i] = bits[i].copy()
            bits[i][~found.mask] = True
        return bits, None
    # a carried curve cell's kept rows copy a point at a smaller epsilon, which is not a candidate here:
    # they stand as that cell's own points, and only the suite's cascade is re-attributed
    source = np.where(found.source >= 0, np.asarray(gate_index)[np.maximum(found.source, 0)], -1)
    return bits, (set(cascaded), source)


def summarize(result: RunResult) -> dict[str, Any]:
    """Clean accuracy, each attack's robust accuracy per epsilon and the per-example worst case, over seeds.

    Scoring v2 (:mod:`qbench.running.scoring`): every number is a mean over seeds and test examples of the
    per-example expected correctness (``robust``), with the strict "right in every draw of set B"
    number beside it (``strict``). ``per_example`` (not part of an entry) keeps the per-seed,
    per-example worst-case values the leaderboard's paired comparisons need.
    """
    plan = result.plan
    n = len(result.data.y_test)
    clean_cells = [next(c for c in s.cells if c.kind == "clean") for s in result.seeds]
    attacks: list[dict[str, Any]] = []
    for attack, epsilon in plan.attack_cells():
        cells = [
            c for s in result.seeds for c in s.cells
            if c.kind == "attack" and c.attack == attack_label(attack) and c.epsilon == epsilon
        ]
        ok = [c for c in cells if c.status == "ok"]
        complete = bool(ok) and len(ok) == len(cells)
        row: dict[str, Any] = {
            "attack": attack_label(attack),
            "name": attack.name,
            "threat": attack.threat,
            "config": attack.config_dict(),
            "epsilon": epsilon,
            "status": "ok" if complete else _row_status(cells, result.unmeasured),
            "robust": estimate(_values(ok, expected_correct)).to_dict() if complete else None,
            "strict": estimate(_values(ok, strict_correct)).to_dict() if complete else None,
        }
        if plan.cascaded(attack, epsilon):
            # a stage of the cascade: the examples it did not attack keep the gates' worst point
            attacked = sum(c.info.get("cascade", {}).get("attacked", 0) for c in ok)
            row["cascaded"] = True
            row["attacked"] = attacked / (len(ok) * n) if complete and n else None
        elif plan.carried(attack, epsilon):
            # a carried curve point: where the attack's smaller epsilon already scored zero, that point is kept
            attacked = sum(c.info.get("cascade", {}).get("attacked", 0) for c in ok)
            row["carried"] = True
            row["carried_from"] = plan.carried_from(attack, epsilon)  # None: from the clean evaluation only
            row["attacked"] = attacked / (len(ok) * n) if complete and n else None
        problems = [c.error for c in cells if c.status != "ok"]
        if problems:
            row["reason"] = problems[0]
        elif result.unmeasured:
            row["reason"] = result.unmeasured
        attacks.append(row)
    worst: list[dict[str, Any]] = []
    per_example: dict[float, list[np.ndarray]] = {}
    by_label = {attack_label(a): a for a, _ in plan.attack_cells()}
    # a model found at chance has no worst case: nothing attacked it (its clean cells are all there is)
    for epsilon in [] if result.unmeasured else plan.all_epsilons():
        # an attack that failed (or never ran) in some seed would silently drop out of that seed's worst
        # case, which is then only an upper bound: say so (check "incomplete" flags the entry)
        incomplete = sorted({r["attack"] for r in attacks if r["epsilon"] == epsilon
                             and r["status"] not in ("ok", "skipped")})
        values, strict = [], []
        included: set[str] = set()
        selected: dict[str, int] = {}
        for s in result.seeds:
            candidates = [c for c in s.cells if c.kind == "clean"]
            candidates += [c for c in s.cells if c.kind == "attack" and c.epsilon == epsilon and c.status == "ok"]
            included.update(c.attack for c in candidates[1:])
            bits, attribution = _cascade_candidates(plan, candidates, epsilon)
            kinds_of = [by_label.get(c.attack) if c.kind == "attack" else None for c in candidates]
            w = worst_case(bits, white_box_first([a.threat if a else None for a in kinds_of],
                                                 [a.iterative if a else None for a in kinds_of]))
            selected_points = w.selected
            if attribution is not None:  # a copy of a gate's point counts for that gate
                copies, source = attribution
                is_copy = np.isin(w.selected, list(copies)) & (source >= 0)
                selected_points = np.where(is_copy, source, w.selected)
            values.append(w.value)
            strict.append(w.strict)
            for index, count in zip(*np.unique(selected_points, return_counts=True)):
                label = candidates[int(index)].attack or "clean"
                selected[label] = selected.get(label, 0) + int(count)
        per_example[epsilon] = values
        worst.append({
            "epsilon": epsilon,
            "robust": estimate(values).to_dict(),
            "strict": estimate(strict).to_dict(),
            "attacks": sorted(included),
            # per candidate point, how many (seed, example) pairs it was the worst for (set A)
            "selected": dict(sorted(selected.items())),
            **({"incomplete": incomplete} if incomplete else {}),
        })
    trainings = [s.training for s in result.seeds if s.training is not None]
    probe_cells = [c for s in result.seeds for c in s.cells if c.kind == "probe"]
    probe = None
    if probe_cells:
        ok = [c for c in probe_cells if c.status == "ok"]
        probe = {
            "attack": probe_cells[0].attack,
            "epsilon": probe_cells[0].epsilon,
            "robust": estimate(_values(ok, expected_correct)).to_dict() if len(ok) == len(probe_cells) else None,
        }
    checks = [c.info.get("gradient_check") for c in clean_cells if c.info.get("gradient_check")]
    gradient = {k: float(np.mean([g[k] for g in checks])) for k in ("zero", "nan", "inf")} if checks else None
    summary = {
        "track": plan.track,
        "dataset": component_ref(plan.dataset),
        "model": component_ref(plan.model),
        "defense": component_ref(plan.defense),
        "seeds": [s.seed for s in result.seeds],
        "n_test": n,
        "schedule": plan.schedule.key_dict(),
        "protocol": {"n_eot": plan.n_eot, "n_repeat": plan.n_repeat, "n_test": plan.n_test,
                     **plan.selection_key(),
                     "quantum_device": plan.quantum_device, "shots": plan.shots,
                     "draws_per_set": int(clean_cells[0].correct.shape[1] // 2), "scoring": SCORING_VERSION,
                     "worst_case_ties": TIE_RULE,
                     # only where the suite ran as a cascade (entries without it ran every attack on all)
                     **({"cascade_gates": list(plan.cascade_gates)} if plan.cascade_gates else {}),
                     # only where some curve cell was carried up the epsilons
                     **({"cascade_curves": True} if any(plan.carried(a, e) for a, e in plan.attack_cells()) else {}),
                     # the rule a cascade or carried curve broke examples by (absent: the legacy set-A rule)
                     **({"cascade_rule": plan.cascade_rule} if plan.cascade_rule != "set-a" and (
                         plan.cascade_gates or any(plan.carried(a, e) for a, e in plan.attack_cells())) else {}),
                     # only where the cells were computed on another torch device than the CPU
                     **plan.device_key()},
        "clean": estimate(_values(clean_cells, expected_correct)).to_dict(),
        "clean_strict": estimate(_values(clean_cells, strict_correct)).to_dict(),
        "attacks": attacks,
        "worst_case": worst,
        "training": {
            "seconds": [t.seconds for t in trainings],
            "mean_seconds": float(np.mean([t.seconds for t in trainings])) if trainings else None,
            "median_seconds": float(np.median([t.seconds for t in trainings])) if trainings else None,
            "defense_info": [c.info.get("defense", {}) for c in clean_cells],
        },
        "data": {"notes": result.data.notes, "files": result.data.files, "domain": result.data.domain.to_dict()},
        "cells_computed": result.computed,
        "n_classes": result.data.n_classes,
        "probe": probe,
        "gradient_check": gradient,
        "per_example": per_example,
        **({"unmeasured": result.unmeasured} if result.unmeasured else {}),
    }
    kinds = {attack_label(a): {"threat": a.threat, "iterative": a.iterative, "name": a.name}
             for a, _ in plan.attack_cells()}
    findings = run_checks(summary, kinds)
    summary["flags"] = {
        "unreliable": bool(findings),
        "reasons": [f"{f.check}: {f.reason}" for f in findings],
    }
    return summary


def _row_status(cells: list, unmeasured: str | None) -> str:
    """An attack row's status when not every seed's cell is ``ok``: a failure in any seed wins (seed 0
    may have run where seed 2 failed), then a skip (the attack does not apply to this task)."""
    if not cells:
        return "not-run" if unmeasured else "missing"
    statuses = {c.status for c in cells}
    for status in ("failed", "skipped"):
        if status in statuses:
            return status
    return "missing"


def compare(defended: dict[str, Any], undefended: dict[str, Any]) -> None:
    """Add the undefended model's numbers to ``defended``: training cost ratio and relative improvement.

    The cost ratio is of the median training times over the seeds: the seeds may train under different
    machine load (a resumed grid, another run beside it), and one slow seed must not make a defense
    look cheap or expensive. Every seed's time stays in the entry.
    """
    base_seconds = undefended["training"]["median_seconds"]
    own = defended["training"]["median_seconds"]
    defended["training"]["relative_cost"] = (own / base_seconds) if base_seconds and own is not None else None
    # matched by epsilon: the two runs may have swept different epsilons
    theirs = {w["epsilon"]: w["robust"]["mean"] for w in undefended["worst_case"]}
    defended["relative_improvement"] = [
        {"epsilon": mine["epsilon"],
         "relative_improvement_percent": relative_improvement(mine["robust"]["mean"], theirs[mine["epsilon"]])}
        for mine in defended["worst_case"] if mine["epsilon"] in theirs
    ]


def add_paper_protocol(
    summary: dict[str, Any], protocol: tuple[str, float] | None, ranking_epsilon: float | None = None
) -> None:
    """Copy the paper-protocol row (an attack label and epsilon) to ``summary["paper_protocol"]`` if it ran.

    The paper's counting: one deployed prediction per example, whose expected correctness is estimated
    over the cell's draws; that is the attack row's ``robust`` number (scoring v2), never the strict one.

    The protocol's epsilon is the track's (MNIST's 0.1 on the mapped-DNN track); a dataset ranked at
    another epsilon (CIFAR's 8/255) gets the same attack at its ``ranking_epsilon``, so the paper's number
    always stands beside the adaptive one it is compared with.
    """
    summary["paper_protocol"] = None
    if protocol is None:
        return
    label, default = protocol
    for epsilon in (default, ranking_epsilon):
        for row in summary["attacks"]:
            if row["attack"] == label and row["epsilon"] == epsilon and row["status"] == "ok":
                summary["paper_protocol"] = {"attack": label, "epsilon": epsilon, "robust": row["robust"],
                                             "counting": "expected accuracy of one deployed prediction per example"}
                return
