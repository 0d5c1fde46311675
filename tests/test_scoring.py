import numpy as np
import pytest

from qbench.scoring import estimate, relative_improvement, wilson_interval, worst_case


def test_worst_case_is_per_example_and():
    clean = np.array([1, 1, 1, 0], bool)
    a = np.array([1, 0, 1, 1], bool)
    b = np.array([1, 1, 0, 1], bool)
    assert worst_case([clean, a, b]).tolist() == [True, False, False, False]
    # the worst case can be strictly below every single attack
    assert worst_case([clean, a, b]).mean() < min(a.mean(), b.mean())


def test_wilson_interval_known_values():
    low, high = wilson_interval(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-3) and high == pytest.approx(0.5962, abs=1e-3)
    low, high = wilson_interval(0, 20)
    assert low == 0.0 and 0.1 < high < 0.2


def test_estimate_over_seeds_uses_t_interval():
    e = estimate([0.8, 0.82, 0.78], n_examples=200)
    assert e.mean == pytest.approx(0.8)
    assert e.std == pytest.approx(0.02)
    # t(0.975, 2) = 4.303; half-width = 4.303 * 0.02 / sqrt(3)
    assert e.ci_high - e.mean == pytest.approx(4.303 * 0.02 / 3**0.5, rel=1e-3)
    assert e.ci_method == "t" and e.n_seeds == 3


def test_single_seed_uses_wilson():
    e = estimate([0.5], n_examples=100)
    assert e.ci_method == "wilson" and e.std == 0.0
    assert e.ci_low == pytest.approx(0.4038, abs=1e-3)


def test_relative_improvement():
    assert relative_improvement(0.6, 0.2) == pytest.approx(200.0)
    assert relative_improvement(0.6, 0.0) is None


def test_worst_case_monotonicity_compares_like_with_like():
    from qbench.checks import run_checks

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


def test_training_cost_is_a_ratio_of_medians_so_one_slow_seed_does_not_decide_it():
    from qbench.summary import compare

    def summary(seconds):
        return {"training": {"median_seconds": float(np.median(seconds))}, "worst_case": []}

    # standard training's seed 0 ran under load (623 s against 62 s): the mean ratio would be 0.5x
    undefended, augmented = summary([623.4, 62.4, 62.9]), summary([121.4, 129.5, 121.7])
    compare(augmented, undefended)
    assert augmented["training"]["relative_cost"] == pytest.approx(121.7 / 62.9)


def test_relative_improvement_pairs_the_same_epsilons():
    from qbench.summary import compare

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
    from qbench.summary import add_paper_protocol

    row = {"attack": "noiseless-pgd", "epsilon": 8 / 255, "status": "ok", "robust": {"mean": 0.11}}
    summary = {"attacks": [row, {**row, "attack": "pgd", "robust": {"mean": 0.03}}]}
    add_paper_protocol(summary, ("noiseless-pgd", 0.1))  # CIFAR never ran the track's 0.1
    assert summary["paper_protocol"] is None
    add_paper_protocol(summary, ("noiseless-pgd", 0.1), ranking_epsilon=8 / 255)
    assert summary["paper_protocol"] == {"attack": "noiseless-pgd", "epsilon": 8 / 255, "robust": {"mean": 0.11}}
    summary["attacks"].append({**row, "epsilon": 0.1, "robust": {"mean": 0.5}})
    add_paper_protocol(summary, ("noiseless-pgd", 0.1), ranking_epsilon=8 / 255)
    assert summary["paper_protocol"]["epsilon"] == 0.1  # the track's epsilon first, where it ran
