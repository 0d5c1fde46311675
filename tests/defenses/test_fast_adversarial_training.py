"""fast_adversarial_training (FGSM with a random start, Wong et al. 2020) through the real runner."""

from __future__ import annotations

import pytest
import torch
from conftest import moons_angle_plan

from qbench.contract.dataset import TrainingSchedule
from qbench.registry import load_registry
from qbench.running.runner import Runner
from qbench.running.store import Store
from qbench.publishing.summary import summarize
from qbench.contract.testing import check_defense, check_gradients, context, tiny_split
from qbench_plugins.defenses.fast_adversarial_training import FastAdversarialTraining


def test_it_follows_the_defense_contract():
    check_defense(FastAdversarialTraining)
    check_gradients(FastAdversarialTraining)


def test_epsilon_comes_from_the_plan_and_an_unset_one_is_refused():
    defense = FastAdversarialTraining.from_options({"epsilon": None})  # the mapped-DNN track's default
    data = tiny_split()
    with pytest.raises(ValueError, match="epsilon unset"):
        defense.fit(torch.nn.Linear(4, 2), data, TrainingSchedule(epochs=1), context(data))
    assert defense.at_threat(0.2).config.epsilon == 0.2
    assert FastAdversarialTraining.from_options({"epsilon": 0.1}).at_threat(0.3).config.epsilon == 0.1
    assert load_registry().create("defense", "fast_adversarial_training", {}, "mapped-dnn").config.epsilon is None


def test_the_guard_restores_the_best_epoch_when_pgd_accuracy_collapses(monkeypatch):
    defense = FastAdversarialTraining.from_options({"epsilon": 0.1})
    data = tiny_split(n_train=200)
    model = defense.prepare(torch.nn.Sequential(torch.nn.Linear(4, 2)), context(data))
    snapshots = []
    accuracies = iter([0.6, 0.7, 0.2, 0.9])  # epoch 3 collapses: more than 0.2 below the best (0.7)

    def fake_guard(m, x, y, domain):
        snapshots.append({k: v.clone() for k, v in m.state_dict().items()})
        return next(accuracies)

    monkeypatch.setattr(defense, "guard_accuracy", fake_guard)
    trained = defense.fit(model, data, TrainingSchedule(epochs=4, lr=0.05, batch_size=32), context(data))
    assert len(snapshots) == 3  # stopped after epoch 3; epoch 4 never ran
    for key, value in trained.state_dict().items():
        if key != FastAdversarialTraining.GUARD_BUFFER:
            assert torch.equal(value, snapshots[1][key])  # epoch 2's weights, the best
    assert defense.describe(trained)["guard_stopped_at_epoch"] == 3


@pytest.mark.slow
def test_it_is_more_robust_than_standard_training_on_moons(tmp_path):
    registry = load_registry()

    def plan(defense):
        return moons_angle_plan(registry, defense, ["pgd"], [0.15], epochs=30, n_eot=1, n_repeat=1, n_test=200, shots=None)

    with Store.open(tmp_path / "s.sqlite") as store:
        runner = Runner(store)
        fast = summarize(runner.run(plan("fast_adversarial_training")))
        none = summarize(runner.run(plan("none")))
    pgd = {s["defense"]["name"]: s["attacks"][0]["robust"]["mean"] for s in (fast, none)}
    assert fast["clean"]["mean"] > 0.75
    assert pgd["fast_adversarial_training"] >= pgd["none"] - 0.02, pgd
    assert fast["training"]["defense_info"][0]["epsilon"] == 0.15
