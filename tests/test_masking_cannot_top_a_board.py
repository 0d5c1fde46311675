"""Masking cannot top a board: two third-party masking defenses on moons and on LeNet (issue 18).

Each trains exactly like ``none``; the suite's attacks that need nothing from the defense (transfer from
the undefended twin, gradient-free search) must bring each one's worst case to within noise of ``none``'s,
the sanity checks must flag each, and the leaderboard's ranking must put none of them above a reliable
entry.
"""

from __future__ import annotations

import pytest

import masking_plugins
from conftest import SHARED_DATA
from qbench.running.checks import tolerance
from qbench.running.grid import Board, board_plan
from qbench.publishing.leaderboard import assign_ranks
from qbench.registry import load_registry
from qbench.running.runner import Runner
from qbench.running.store import Store
from qbench.publishing.summary import summarize

MASKS = ("mask_round", "mask_detach")


def run_board(tmp_path, board: Board, seeds, data_dir=None, attacks=None):
    registry = load_registry([("masking", masking_plugins.plugins)])
    summaries = {}
    with Store.open(tmp_path / "s.sqlite") as store:
        runner = Runner(store, data_dir=data_dir)
        for defense in ("none", *MASKS, "mask_round_bpda"):
            plan = board_plan(registry, board, defense, seeds, sweep=False)
            if attacks is not None:
                plan.attacks = [a for a in plan.attacks if a.name in attacks]
            summaries[defense] = summarize(runner.run(plan))
    epsilon = plan.epsilons[0]
    assign_ranks(summaries, epsilon)
    return summaries, epsilon


def worst(summary, epsilon):
    return next(w["robust"]["mean"] for w in summary["worst_case"] if w["epsilon"] == epsilon)


def check_board(summaries, epsilon, n):
    base = worst(summaries["none"], epsilon)
    assert not summaries["none"]["flags"]["unreliable"], summaries["none"]["flags"]
    for mask in MASKS:
        s = summaries[mask]
        pgd = next(a["robust"]["mean"] for a in s["attacks"] if a["attack"] == "pgd" and a["epsilon"] == epsilon)
        # the mask fools the gradient attack...
        assert pgd > base + 0.03, (mask, pgd, base)
        # ...but not the suite: the worst case is within noise of none's, and the mask is flagged
        assert abs(worst(s, epsilon) - base) <= tolerance(base, n), (mask, worst(s, epsilon), base)
        assert s["flags"]["unreliable"] and any(r.startswith("gradient") for r in s["flags"]["reasons"])
        assert s["rank"]["group"] == "unreliable"
        assert int(s["rank"]["label"].lstrip("=")) > int(summaries["none"]["rank"]["label"].lstrip("="))
    # the same rounding with its BPDA approximation declared: white-box PGD sees through it, nothing is flagged
    declared = summaries["mask_round_bpda"]
    pgd = next(a["robust"]["mean"] for a in declared["attacks"] if a["attack"] == "pgd" and a["epsilon"] == epsilon)
    assert abs(pgd - base) <= tolerance(base, n) and abs(worst(declared, epsilon) - base) <= tolerance(base, n)
    assert not any(r.startswith("gradient") for r in declared["flags"]["reasons"]), declared["flags"]


@pytest.mark.slow
def test_masking_defenses_on_moons_are_exposed_flagged_and_ranked_last(tmp_path):
    board = Board("qnn", "moons-qnn-angle", "moons", "qnn", model_options={"encoding": "angle"}, n_test=120)
    summaries, epsilon = run_board(tmp_path, board, [0])
    check_board(summaries, epsilon, 120)


@pytest.mark.slow
def test_masking_defenses_on_lenet_are_exposed_flagged_and_ranked_last(tmp_path):
    if not (SHARED_DATA / "mnist").exists():
        pytest.skip(f"MNIST is not in {SHARED_DATA}")
    board = Board("mapped-dnn", "mnist-lenet", "mnist", "lenet", n_test=100, epochs=1)
    summaries, epsilon = run_board(tmp_path, board, [0], data_dir=SHARED_DATA,
                                   attacks=("fgsm", "pgd", "twin-pgd", "twin-apgd-ce"))
    check_board(summaries, epsilon, 100)


def test_plugin_authors_guard_catches_masking_before_submission():
    from qbench.contract.testing import check_gradients, tiny_split

    data = tiny_split(n_features=4)
    for masked in (masking_plugins.RoundInput, masking_plugins.DetachedStage):
        with pytest.raises(AssertionError, match="gradient masking"):
            check_gradients(masked, data)
    assert check_gradients(masking_plugins.RoundInputBPDA, data) == 1.0
    from qbench_plugins.defenses.none import NoDefense

    assert check_gradients(NoDefense, data) == 1.0


def test_the_large_epsilon_probe_runs_on_unbounded_domains_scaled_to_the_data():
    from qbench.contract.context import Context
    from qbench.running.grid import BOARDS, add_probe

    registry = load_registry()
    board = next(b for b in BOARDS["qnn"] if b.name == "moons-qnn-angle")
    plan = board_plan(registry, board, "none", [0], sweep=False)
    data = plan.dataset.load(Context(seed=0))
    assert data.domain.kind == "unbounded"
    add_probe(plan, data, registry)
    spread = float((data.x_train.max(dim=0).values - data.x_train.min(dim=0).values).max())
    assert plan.probe.name == "pgd" and plan.probe_epsilon == pytest.approx(spread / 2, abs=1e-5)
    assert plan.probe_epsilon > 1.0  # moons' features span about 3 units: far beyond the ranking epsilon
