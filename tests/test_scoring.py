"""Scoring v2 as pure functions of per-example, per-draw bits (qbench.running.scoring)."""

import numpy as np
import pytest

from qbench.running.checks import run_checks
from qbench.running.scoring import (
    compare_paired, draw_sets, estimate, expected_correct, relative_improvement, shared_ranks, strict_correct,
    white_box_first, wilson_interval, worst_case,
)


def one_draw(values):
    """A deterministic cell: one draw in each set, the same bit in both."""
    v = np.asarray(values, bool)[:, None]
    return np.concatenate([v, v], axis=1)


def test_deterministic_worst_case_is_autoattacks_per_example_and():
    clean = one_draw([1, 1, 1, 0])
    a = one_draw([1, 0, 1, 1])
    b = one_draw([1, 1, 0, 1])
    w = worst_case([clean, a, b])
    assert w.value.tolist() == [1.0, 0.0, 0.0, 0.0]
    assert w.strict.tolist() == [True, False, False, False]
    # strictly below every single attack, as the AND is
    assert w.value.mean() < min(expected_correct(a).mean(), expected_correct(b).mean())


def test_selection_on_set_a_reporting_on_set_b():
    # example 0: the attack looks worst on A (0/2) but is right on B (2/2); the clean point is 2/2, 1/2
    clean = np.array([[1, 1, 1, 0]], bool)
    attack = np.array([[0, 0, 1, 1]], bool)
    w = worst_case([clean, attack])
    assert w.selected.tolist() == [1]
    assert w.value.tolist() == [1.0]  # B of the selected point, not its (winner's-curse) A score
    assert w.strict.tolist() == [True]
    a, b = draw_sets(attack)
    assert a.tolist() == [[False, False]] and b.tolist() == [[True, True]]
    assert strict_correct(clean).tolist() == [False]


def test_identical_candidates_change_nothing():
    rng = np.random.default_rng(0)
    clean = rng.random((50, 10)) < 0.7
    attack = rng.random((50, 10)) < 0.4
    before = worst_case([clean, attack])
    after = worst_case([clean, attack, clean.copy(), attack.copy()])
    assert np.array_equal(before.value, after.value) and np.array_equal(before.strict, after.strict)


def test_equal_set_a_scores_go_to_the_iterative_white_box_attack_not_the_last_transfer():
    # three examples, two draws per set. On examples 0 and 1 every point is right in both set-A draws, so
    # they tie there; PGD's point is wrong in set B on them (it sits near the boundary), the transfer
    # point, last in suite order, is right in every draw. Example 2: FGSM's point is the only zero on A.
    clean = np.ones((3, 4), bool)
    fgsm = np.array([[1, 1, 1, 1], [1, 1, 1, 1], [0, 0, 0, 1]], bool)
    pgd = np.array([[1, 1, 0, 0], [1, 1, 0, 1], [1, 1, 1, 1]], bool)
    square = np.ones((3, 4), bool)
    transfer = np.ones((3, 4), bool)
    cells = [clean, fgsm, pgd, square, transfer]
    preference = white_box_first([None, "white-box", "white-box", "gradient-free", "transfer"],
                                 [None, False, True, None, True])
    assert preference.tolist() == [4, 1, 0, 2, 3]
    w = worst_case(cells, preference)
    assert w.selected.tolist() == [2, 2, 1]
    assert w.value.tolist() == [0.0, 0.5, 0.5]
    assert w.value.mean() <= expected_correct(pgd).mean()  # here not above PGD alone
    # the rule of entries built before 2026-12-02: the last of equals, the transfer point, right on B
    last = worst_case(cells)
    assert last.selected.tolist() == [4, 4, 1]
    assert last.value.tolist() == [1.0, 1.0, 0.5]
    # within a kind the later candidate first: two iterative white-box attacks, the later one wins ties
    assert white_box_first([None, "white-box", "white-box"], [None, True, True]).tolist() == [2, 1, 0]
    with pytest.raises(ValueError, match="preference"):
        worst_case([clean, pgd], [0, 0])


def test_the_tie_rule_changes_no_number_of_a_deterministic_model():
    rng = np.random.default_rng(3)
    cells = [one_draw(rng.random(200) < p) for p in (0.9, 0.5, 0.4, 0.6)]
    preference = white_box_first([None, "white-box", "transfer", "gradient-free"], [None, True, True, None])
    a, b = worst_case(cells, preference), worst_case(cells)
    assert np.array_equal(a.value, b.value) and np.array_equal(a.strict, b.strict)
    assert not np.array_equal(a.selected, b.selected)  # only the attribution of equals moves


def test_worst_case_rejects_mismatched_draws():
    with pytest.raises(ValueError):
        worst_case([np.ones((4, 2), bool), np.ones((4, 4), bool)])
    with pytest.raises(ValueError):
        draw_sets(np.ones((4, 3), bool))


def test_wilson_interval_known_values():
    low, high = wilson_interval(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-3) and high == pytest.approx(0.5962, abs=1e-3)
    low, high = wilson_interval(0, 20)
    assert low == 0.0 and 0.1 < high < 0.2


def test_bootstrap_interval_carries_the_test_set_sampling_error():
    # three identical seeds: no seed spread at all, yet 200 examples at 50% leave ~7 points of sampling error
    values = (np.arange(200) % 2).astype(float)
    e = estimate([values, values, values])
    assert e.mean == pytest.approx(0.5) and e.std == 0.0 and e.ci_method == "bootstrap"
    assert e.ci_high - e.ci_low == pytest.approx(2 * 1.96 * 0.5 / 200 ** 0.5, rel=0.15)
    # the same, one seed: the same width (Wilson would be the degenerate case only)
    one = estimate([values])
    assert one.n_seeds == 1 and one.ci_high - one.ci_low == pytest.approx(e.ci_high - e.ci_low, rel=0.15)


def test_bootstrap_interval_widens_with_seed_spread():
    rng = np.random.default_rng(1)
    tight = [rng.random(500) < 0.6 for _ in range(3)]
    spread = [rng.random(500) < p for p in (0.4, 0.6, 0.8)]
    t, s = estimate(tight), estimate(spread)
    assert s.std > 0.1 and (s.ci_high - s.ci_low) > 2 * (t.ci_high - t.ci_low)
    assert estimate(spread) == s  # a fixed bootstrap seed: recomputed exactly


def test_degenerate_estimate_has_a_wilson_interval_not_zero_width():
    e = estimate([np.zeros(200), np.zeros(200), np.zeros(200)])
    assert e.mean == 0.0 and e.ci_method == "wilson" and e.ci_low == 0.0 and 0.01 < e.ci_high < 0.03


def test_paired_comparison_separates_what_unpaired_intervals_cannot():
    rng = np.random.default_rng(2)
    base = [(rng.random(200) < 0.5).astype(float) for _ in range(3)]
    better = [np.maximum(b, (rng.random(200) < 0.08)) for b in base]  # a few more examples right, same seeds
    c = compare_paired(better, base)
    assert c.difference > 0 and c.separated
    same = compare_paired(base, [b.copy() for b in base])
    assert same.difference == 0 and not same.separated


def test_shared_ranks_group_against_the_group_leader():
    means = [0.60, 0.59, 0.58, 0.40, 0.39]

    def separated(i, k):
        return abs(means[i] - means[k]) > 0.015

    # 0.58 is within 0.015 of 0.59 but not of the leader 0.60: a new rank, no chain of ties
    assert shared_ranks(5, separated) == ["=1", "=1", "3", "=4", "=4"]
    assert shared_ranks(1, separated) == ["1"]
    assert shared_ranks(3, lambda i, k: True) == ["1", "2", "3"]


def test_relative_improvement():
    assert relative_improvement(0.6, 0.2) == pytest.approx(200.0)
    assert relative_improvement(0.6, 0.0) is None


def test_worst_case_monotonicity_compares_like_with_like():
    def est(v):
        return {"mean": v}

    summary = {
        "n_test": 1000,
        "attacks": [],
        "worst_case": [
            {"epsilon": 0.1, "robust": est(0.30), "attacks": ["fgsm", "pgd"]},
            {"epsilon": 0.15, "robust": est(0.10), "attacks": ["apgd-ce", "fgsm", "nes", "pgd"]},
            {"epsilon": 0.2, "robust": est(0.20), "attacks": ["fgsm", "pgd"]},
        ],
    }
    assert run_checks(summary, {}) == []  # 0.15 has the full suite: not comparable with 0.1 / 0.2
    summary["worst_case"][2]["robust"] = est(0.40)  # but 0.2 rising above 0.1 with the same attacks is flagged
    assert [f.check for f in run_checks(summary, {})] == ["monotone"]


def test_a_one_step_attack_overshooting_is_flagged_only_where_no_iterative_attack_covers_it():
    # Ising's undefended QNN: FGSM's curve rises past eps 0.2 (one step overshoots after the sphere
    # renormalisation) while PGD at the same eps leaves 0.7%; the evaluation did not weaken with eps
    def row(attack, eps, mean):
        return {"attack": attack, "epsilon": eps, "status": "ok", "robust": {"mean": mean}}

    kinds = {"fgsm": {"threat": "white-box", "iterative": False}, "pgd": {"threat": "white-box", "iterative": True},
             "nes": {"threat": "gradient-free", "iterative": True}}
    summary = {"n_test": 1000, "worst_case": [],
               "attacks": [row("fgsm", 0.2, 0.291), row("fgsm", 0.25, 0.347), row("pgd", 0.2, 0.043), row("pgd", 0.25, 0.007)]}
    assert run_checks(summary, kinds) == []
    # an iterative attack that does not reach the one step's value at the smaller eps leaves the flag
    summary["attacks"][2:] = [row("pgd", 0.25, 0.33)]
    found = run_checks(summary, kinds)
    assert [f.check for f in found] == ["monotone"] and "fgsm" in found[0].reason
    # a gradient-free attack does not excuse the step: only iterative white-box or adaptive ones do
    summary["attacks"][2] = row("nes", 0.25, 0.0)
    assert "monotone" in [f.check for f in run_checks(summary, kinds)]
    # an iterative attack's own rise is always flagged
    summary["attacks"] = [row("pgd", 0.2, 0.043), row("pgd", 0.25, 0.2), row("fgsm", 0.25, 0.3)]
    found = run_checks(summary, kinds)
    assert [f.check for f in found] == ["monotone"] and "pgd" in found[0].reason


def test_apgd_weaker_than_pgd_and_epsilon_zero_checks():
    def row(attack, eps, mean):
        return {"attack": attack, "epsilon": eps, "status": "ok", "robust": {"mean": mean}}

    kinds = {"pgd": {"threat": "white-box", "iterative": True}, "apgd-ce": {"threat": "white-box", "iterative": True}}
    summary = {"n_test": 200, "clean": {"mean": 0.9},
               "attacks": [row("pgd", 0.15, 0.50), row("apgd-ce", 0.15, 0.70)],
               "worst_case": [{"epsilon": 0.0, "robust": {"mean": 0.9}, "attacks": ["pgd"]}]}
    assert [f.check for f in run_checks(summary, kinds)] == ["apgd-weaker-than-pgd"]
    summary["attacks"][1]["robust"]["mean"] = 0.52  # within noise
    assert run_checks(summary, kinds) == []
    summary["worst_case"][0]["robust"]["mean"] = 0.85
    assert [f.check for f in run_checks(summary, kinds)] == ["epsilon-zero"]


def test_a_clean_accuracy_at_chance_is_flagged():
    """A guessing model keeps 1/K under any attack: flagged, with the binomial tolerance around chance."""
    summary = {"n_test": 1000, "n_classes": 2, "clean": {"mean": 0.514}, "attacks": [], "worst_case": []}
    found = run_checks(summary, {})
    assert [f.check for f in found] == ["clean-at-chance"] and "51.4%" in found[0].reason
    summary["clean"]["mean"] = 0.534  # chance + 2 standard errors (0.0316) + one example (0.001) = 0.5326
    assert run_checks(summary, {}) == []
    summary.update(n_classes=10, clean={"mean": 0.14}, n_test=200)  # 0.1 + 0.0424 + 0.005
    assert [f.check for f in run_checks(summary, {})] == ["clean-at-chance"]
    summary["clean"]["mean"] = 0.15
    assert run_checks(summary, {}) == []


def test_training_cost_is_a_ratio_of_medians_so_one_slow_seed_does_not_decide_it():
    from qbench.publishing.summary import compare

    def summary(seconds):
        return {"training": {"median_seconds": float(np.median(seconds))}, "worst_case": []}

    # standard training's seed 0 ran under load (623 s against 62 s): the mean ratio would be 0.5x
    undefended, augmented = summary([623.4, 62.4, 62.9]), summary([121.4, 129.5, 121.7])
    compare(augmented, undefended)
    assert augmented["training"]["relative_cost"] == pytest.approx(121.7 / 62.9)
def test_relative_improvement_pairs_the_same_epsilons():
    from qbench.publishing.summary import compare

    def summary(points):
        return {"training": {"median_seconds": 1.0},
                "worst_case": [{"epsilon": e, "robust": {"mean": v}} for e, v in points]}

    undefended = summary([(0.1, 0.40), (0.2, 0.10)])
    defended = summary([(0.05, 0.80), (0.1, 0.50), (0.2, 0.05)])  # swept one more epsilon
    compare(defended, undefended)
    assert defended["relative_improvement"] == [
        {"epsilon": 0.1, "relative_improvement_percent": pytest.approx(25.0)},
        {"epsilon": 0.2, "relative_improvement_percent": pytest.approx(-50.0)},
    ]


def test_paper_protocol_falls_back_to_the_ranking_epsilon():
    from qbench.publishing.summary import add_paper_protocol

    row = {"attack": "noiseless-pgd", "epsilon": 8 / 255, "status": "ok", "robust": {"mean": 0.11}}
    summary = {"attacks": [row, {**row, "attack": "pgd", "robust": {"mean": 0.03}}]}
    add_paper_protocol(summary, ("noiseless-pgd", 0.1))  # CIFAR never ran the track's 0.1
    assert summary["paper_protocol"] is None
    add_paper_protocol(summary, ("noiseless-pgd", 0.1), ranking_epsilon=8 / 255)
    assert summary["paper_protocol"] == {"attack": "noiseless-pgd", "epsilon": 8 / 255, "robust": {"mean": 0.11},
                                         "counting": "expected accuracy of one deployed prediction per example"}
    summary["attacks"].append({**row, "epsilon": 0.1, "robust": {"mean": 0.5}})
    add_paper_protocol(summary, ("noiseless-pgd", 0.1), ranking_epsilon=8 / 255)
    assert summary["paper_protocol"]["epsilon"] == 0.1  # the track's epsilon first, where it ran
