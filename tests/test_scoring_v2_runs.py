"""Scoring v2 on real runs: stored per-draw bits, common random numbers, and what the worst case does.

A stochastic defense written the way a third party would (Gaussian noise on the logits, ``stochastic``
flag set) on the tiny generated problem, and the real moons QNN, run through the runner into a real
SQLite store.
"""

from __future__ import annotations

import fault_plugins
from conftest import moons_angle_plan
import numpy as np
import pytest
import torch

import qbench
from qbench import Attack, Defense
from qbench.contract.dataset import TrainingSchedule
from qbench.registry import load_registry
from qbench.running.runner import Plan, Runner
from qbench.running.store import Store
from qbench.publishing.summary import summarize


class _NoisyLogits(torch.nn.Module):
    stochastic = True

    def __init__(self, inner: torch.nn.Module, sigma: float) -> None:
        super().__init__()
        self.inner, self.sigma = inner, sigma

    def forward(self, x):
        logits = self.inner(x)
        return logits + self.sigma * torch.randn_like(logits)


class NoisyLogits(Defense):
    """Gaussian noise on the logits at every forward: a stochastic defense."""

    name = "v2_noisy_logits"
    description = "Gaussian noise (sigma 1.5) on the logits"
    tracks = ("qnn",)

    def prepare(self, model, ctx):
        return _NoisyLogits(model, 1.5)


class Identity(Attack):
    """Returns its input: an attack that does nothing."""

    name = "v2_identity"
    description = "returns the clean input"
    tracks = ("qnn",)
    threat = "white-box"
    iterative = False

    def generate(self, model, x, y, epsilon, ctx):
        return x.clone()


class IdentityTransfer(Identity):
    """A transfer attack whose points are the clean inputs: weak, and last in the suite."""

    name = "v2_identity_transfer"
    description = "returns the clean input, declared a transfer attack"
    threat = "transfer"
    iterative = True


class _Plugins:
    @qbench.hookimpl
    def register_defenses(self, register):
        register(NoisyLogits)

    @qbench.hookimpl
    def register_attacks(self, register):
        register(Identity)
        register(IdentityTransfer)


@pytest.fixture(scope="module")
def registry():
    return load_registry([("faults", fault_plugins), ("v2", _Plugins())])


def tiny_plan(registry, defense: str, attacks: list[str], epsilons=(0.0, 0.3), seeds=(0, 1)) -> Plan:
    create = registry.create
    return Plan(
        track="qnn", dataset=create("dataset", "tiny_box"), model=create("model", "tiny_linear"),
        defense=create("defense", defense), epsilons=list(epsilons), seeds=list(seeds),
        attacks=[create("attack", a, {"steps": 5} if a == "pgd" else {}) for a in attacks],
        schedule=TrainingSchedule(epochs=3, lr=0.05, batch_size=16), n_eot=2, n_repeat=6,
    )


def worst(summary, epsilon):
    return next(w for w in summary["worst_case"] if w["epsilon"] == epsilon)


def test_a_do_nothing_attack_leaves_every_worst_case_unchanged(registry, tmp_path):
    with Store.open(tmp_path / "s.sqlite") as store:
        runner = Runner(store)
        base = summarize(runner.run(tiny_plan(registry, "v2_noisy_logits", ["fgsm", "pgd"])))
        more = summarize(runner.run(tiny_plan(registry, "v2_noisy_logits", ["fgsm", "v2_identity", "pgd"])))
    for eps in (0.0, 0.3):
        assert worst(more, eps)["robust"] == worst(base, eps)["robust"]
        assert worst(more, eps)["strict"] == worst(base, eps)["strict"]
    # the identity's own number is exactly the clean accuracy (common random numbers)
    identity = next(a for a in more["attacks"] if a["attack"] == "v2_identity" and a["epsilon"] == 0.3)
    assert identity["robust"] == more["clean"]


def test_a_weak_transfer_attack_last_in_the_suite_does_not_win_the_ties(registry, tmp_path, monkeypatch):
    """Examples whose points tie on set A go to PGD's point, not to the suite's last, weaker candidate."""
    import qbench.publishing.summary as summary_module

    with Store.open(tmp_path / "s.sqlite") as store:
        runner = Runner(store)
        base = summarize(runner.run(tiny_plan(registry, "v2_noisy_logits", ["fgsm", "pgd"])))
        result = runner.run(tiny_plan(registry, "v2_noisy_logits", ["fgsm", "pgd", "v2_identity_transfer"]))
    more = summarize(result)
    assert more["protocol"]["worst_case_ties"] == "white-box-first"
    assert worst(more, 0.3)["robust"] == worst(base, 0.3)["robust"]
    assert "v2_identity_transfer" not in worst(more, 0.3)["selected"]
    # the rule before 2026-12-02 (the last of equals) hands the ties to the clean-input transfer points
    monkeypatch.setattr(summary_module, "white_box_first", lambda threats, iterative: None)
    last = summarize(result)
    assert worst(last, 0.3)["selected"].get("v2_identity_transfer", 0) > 0
    assert worst(last, 0.3)["robust"]["mean"] > worst(more, 0.3)["robust"]["mean"]


def test_stochastic_cells_store_both_draw_sets_and_epsilon_zero_is_clean(registry, tmp_path):
    with Store.open(tmp_path / "s.sqlite") as store:
        result = Runner(store).run(tiny_plan(registry, "v2_noisy_logits", ["fgsm", "pgd"]))
        cells = store.cells()
    summary = summarize(result)
    assert summary["protocol"]["draws_per_set"] == 6
    for c in cells:
        assert c.correct.shape == (32, 12)
    clean = next(c for c in cells if c.kind == "clean" and c.seed == 0)
    a, b = clean.correct[:, :6], clean.correct[:, 6:]
    assert not np.array_equal(a, b)  # two independent sets of draws
    assert 0.0 < clean.correct.mean() < 1.0  # the noise really flips predictions
    # every attack at epsilon 0 scores bit for bit like the clean input
    for c in cells:
        if c.kind == "attack" and c.epsilon == 0.0 and c.seed == 0:
            assert np.array_equal(c.correct, clean.correct)
    assert worst(summary, 0.0)["robust"]["mean"] == summary["clean"]["mean"]
    assert worst(summary, 0.0)["strict"]["mean"] == summary["clean_strict"]["mean"]
    assert summary["flags"]["reasons"] == [] or all("epsilon-zero" not in r for r in summary["flags"]["reasons"])
    # the clean accuracy is the mean of set B's bits over seeds and examples
    cleans = [c for c in cells if c.kind == "clean"]
    assert summary["clean"]["mean"] == pytest.approx(np.mean([c.correct[:, 6:].mean() for c in cleans]))


def test_a_deterministic_model_reduces_to_autoattacks_per_example_and(registry, tmp_path):
    with Store.open(tmp_path / "s.sqlite") as store:
        result = Runner(store).run(tiny_plan(registry, "none", ["fgsm", "pgd"], epsilons=(0.3,)))
        cells = store.cells()
    summary = summarize(result)
    assert summary["protocol"]["draws_per_set"] == 1
    per_seed = []
    for seed in (0, 1):
        mine = [c for c in cells if c.seed == seed and c.kind in ("clean", "attack")]
        for c in mine:
            assert c.correct.shape == (32, 2) and np.array_equal(c.correct[:, 0], c.correct[:, 1])
        per_seed.append(np.logical_and.reduce([c.correct[:, 0] for c in mine]).mean())
    w = worst(summary, 0.3)
    assert w["robust"]["mean"] == pytest.approx(np.mean(per_seed))
    assert w["strict"]["mean"] == w["robust"]["mean"]  # one draw: expected and strict coincide
    assert 0 < w["robust"]["mean"] < summary["clean"]["mean"]


@pytest.mark.slow
def test_a_noiseless_qnn_read_out_with_shots_is_scored_as_stochastic(tmp_path):
    registry = load_registry()

    def plan(shots):
        return moons_angle_plan(registry, "none", ["fgsm"], [0.0], epochs=2, n_eot=2, n_repeat=4, n_test=60, shots=shots)

    with Store.open(tmp_path / "s.sqlite") as store:
        runner = Runner(store)
        shot = summarize(runner.run(plan(50)))
        exact = summarize(runner.run(plan(None)))
    assert shot["protocol"]["draws_per_set"] == 4 and shot["protocol"]["shots"] == 50
    assert exact["protocol"]["draws_per_set"] == 1 and exact["protocol"]["shots"] is None
    # same trained weights; the shot readout only adds measurement noise around the exact prediction
    assert abs(shot["clean"]["mean"] - exact["clean"]["mean"]) < 0.1
    assert worst(shot, 0.0)["robust"] == shot["clean"]
