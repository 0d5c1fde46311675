"""Two ways a board could rank on numbers it did not measure, both closed on 2026-12-08: an attack cell
that failed in one seed silently dropping out of that seed's worst case, and seeds paired by position
(or entries with different seeds tied without a comparison)."""

from __future__ import annotations

import fault_plugins
import numpy as np
import pytest

import qbench
from qbench import Attack
from qbench.contract.dataset import TrainingSchedule
from qbench.errors import QBenchError
from qbench.publishing.leaderboard import assign_ranks, paired_values
from qbench.publishing.summary import summarize
from qbench.registry import load_registry
from qbench.running.runner import Plan, Runner
from qbench.running.store import Store


class FailsInSeed1(Attack):
    """Moves every input to the far corner of the ball in seed 0 (a real attack on the tiny problem);
    raises in seed 1, as a plugin that breaks on one seed's model would."""

    name = "fails_in_seed_1"
    description = "a corner of the ball in seed 0; an exception in seed 1"
    version = "1"
    tracks = ("qnn",)
    threat = "white-box"
    iterative = False

    def generate(self, model, x, y, epsilon, ctx):
        if ctx.run_seed == 1:
            raise RuntimeError("broke on seed 1")
        return (x + epsilon * (1 - 2 * y.float()).reshape(-1, 1)).clamp(0, 1)


class _Plugins:
    @qbench.hookimpl
    def register_attacks(self, register):
        register(FailsInSeed1)


def test_an_attack_failed_in_one_seed_makes_the_worst_case_an_upper_bound_and_flags_it(tmp_path):
    registry = load_registry([("faults", fault_plugins), ("seed1", _Plugins())])
    create = registry.create
    plan = Plan(
        track="qnn", dataset=create("dataset", "tiny_box"), model=create("model", "tiny_linear"),
        defense=create("defense", "none"), epsilons=[0.3], seeds=[0, 1],
        attacks=[create("attack", "fgsm"), create("attack", "fails_in_seed_1")],
        schedule=TrainingSchedule(epochs=30, lr=0.1, batch_size=16),
    )
    with Store.open(tmp_path / "s.sqlite") as store:
        result = Runner(store).run(plan)
        statuses = sorted((c.seed, c.attack, c.status) for c in store.cells() if c.kind == "attack")
    assert statuses == [(0, "fails_in_seed_1", "ok"), (0, "fgsm", "ok"),
                        (1, "fails_in_seed_1", "failed"), (1, "fgsm", "ok")]
    summary = summarize(result)
    row = next(a for a in summary["attacks"] if a["attack"] == "fails_in_seed_1")
    # seed 0 ran, seed 1 failed: the row is failed (it used to take seed 0's "ok" and crash the checks)
    assert row["status"] == "failed" and row["robust"] is None and "broke on seed 1" in row["reason"]
    (worst,) = summary["worst_case"]
    assert worst["incomplete"] == ["fails_in_seed_1"]
    assert summary["flags"]["unreliable"]
    assert any(r.startswith("incomplete: at eps=0.3 fails_in_seed_1") for r in summary["flags"]["reasons"])
    fgsm = next(a for a in summary["attacks"] if a["attack"] == "fgsm")
    assert fgsm["status"] == "ok" and "incomplete" not in str(fgsm)


def _summary(seeds, values):
    return {"seeds": seeds, "per_example": {0.1: [np.asarray(v, float) for v in values]},
            "worst_case": [{"epsilon": 0.1, "robust": {"mean": float(np.mean(values))}}],
            "flags": {"unreliable": False}, "clean": {"mean": 1.0}}


def test_seeds_are_paired_by_value_not_by_position():
    summaries = {"a": _summary([0, 1], [[1, 1, 0, 1], [0, 1, 1, 1]]),
                 "b": _summary([1, 0], [[0, 1, 1, 1], [1, 1, 0, 1]])}  # the same values, seeds listed the other way
    left, right = paired_values(summaries, "a", "b", 0.1)
    assert all((l == r).all() for l, r in zip(left, right))
    # by position the two would differ on 4 of 8 pairs and could be "separated"
    assign_ranks(summaries, 0.1)
    assert summaries["b"]["rank"]["comparison"]["difference"] == 0.0 and summaries["b"]["rank"]["label"] == "=1"


def test_only_the_common_seeds_are_compared_and_entries_with_none_in_common_are_refused():
    summaries = {"a": _summary([0, 1, 2], [[1] * 8, [1] * 8, [0] * 8]), "b": _summary([0, 1], [[1] * 8, [1] * 8]),
                 "c": _summary([5], [[0] * 8])}
    left, right = paired_values(summaries, "a", "b", 0.1)
    assert len(left) == len(right) == 2  # seed 2 of "a" has no partner
    with pytest.raises(QBenchError, match="share no seed"):
        paired_values(summaries, "a", "c", 0.1)
    summaries["d"] = _summary([0, 1], [[1] * 6, [1] * 6])
    with pytest.raises(QBenchError, match="different test examples"):
        paired_values(summaries, "b", "d", 0.1)
