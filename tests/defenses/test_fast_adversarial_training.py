"""fast_adversarial_training (FGSM with a random start, Wong et al. 2020) through the real runner."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from conftest import moons_angle_plan

from qbench.contract.dataset import TrainingSchedule
from qbench.registry import load_registry
from qbench.running.runner import Runner
from qbench.running.store import Store
from qbench.publishing.summary import summarize
from qbench.contract.testing import check_defense, check_gradients, context, tiny_split
from qbench_plugins.defenses import fast_adversarial_training as fat_module
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


def _train_with_guard(monkeypatch, accuracies, epochs=4, data=None):
    """Train a tiny model with the guard's accuracies made up; the weights after each epoch, the model."""
    defense = FastAdversarialTraining.from_options({"epsilon": 0.1})
    data = data or tiny_split(n_train=200)
    model = defense.prepare(torch.nn.Sequential(torch.nn.Linear(4, 2)), context(data))
    snapshots = []
    made_up = iter(accuracies)

    def fake_guard(m, x, y, domain):
        snapshots.append({k: v.clone() for k, v in m.state_dict().items()})
        return next(made_up)

    monkeypatch.setattr(defense, "guard_accuracy", fake_guard)
    trained = defense.fit(model, data, TrainingSchedule(epochs=epochs, lr=0.05, batch_size=32), context(data))
    return defense, snapshots, trained


def _same_weights(model, snapshot) -> bool:
    names = {FastAdversarialTraining.GUARD_BUFFER, *FastAdversarialTraining.RECORD_BUFFERS}
    return all(torch.equal(v, snapshot[k]) for k, v in model.state_dict().items() if k not in names)


def test_the_guard_stops_on_a_collapse_from_the_previous_epoch_and_restores_it(monkeypatch):
    # epoch 3 falls 0.25 below epoch 2 (more than 0.2): Wong et al.'s rule stops and goes back to epoch 2
    defense, snapshots, trained = _train_with_guard(monkeypatch, [0.6, 0.7, 0.45, 0.9])
    assert len(snapshots) == 3  # epoch 4 never ran
    assert _same_weights(trained, snapshots[1]) and not _same_weights(trained, snapshots[2])
    info = defense.describe(trained)
    assert info["guard_stopped_at_epoch"] == 3
    assert (info["guard_final_accuracy"], info["guard_peak_accuracy"], info["guard_peak_epoch"]) == (0.45, 0.7, 2)


def test_without_a_collapse_the_final_weights_are_kept_not_the_best_epochs(monkeypatch):
    # a slow decline from the peak (0.9 at epoch 2) never falls 0.2 below the previous epoch: version 1
    # compared with the best epoch (stopping at epoch 4 here) and restored the best epoch's weights
    defense, snapshots, trained = _train_with_guard(monkeypatch, [0.5, 0.9, 0.75, 0.6])
    assert len(snapshots) == 4
    assert _same_weights(trained, snapshots[3]) and not _same_weights(trained, snapshots[1])
    info = defense.describe(trained)
    assert info["guard_stopped_at_epoch"] == 0
    assert (info["guard_final_accuracy"], info["guard_peak_accuracy"], info["guard_peak_epoch"]) == (0.6, 0.9, 2)


def test_the_guard_slice_is_random_so_a_class_sorted_split_keeps_every_class_in_training(monkeypatch):
    data = tiny_split(n_train=200)
    order = torch.argsort(data.y_train, stable=True)  # stored class by class, as the CIFAR-100 subset is
    data = replace(data, x_train=data.x_train[order], y_train=data.y_train[order])
    seen = {}

    def spy_train(model, train_data, schedule, ctx, loss, **kwargs):
        seen["train"] = train_data.y_train.clone()

    monkeypatch.setattr(fat_module, "train", spy_train)
    defense = FastAdversarialTraining.from_options({"epsilon": 0.1})

    def spy_guard(m, x, y, domain):
        seen["guard"] = y.clone()
        return 0.5

    monkeypatch.setattr(defense, "guard_accuracy", spy_guard)
    model = defense.prepare(torch.nn.Sequential(torch.nn.Linear(4, 2)), context(data))
    defense.fit(model, data, TrainingSchedule(epochs=1, lr=0.05, batch_size=32), context(data))
    assert len(seen["guard"]) == 40 and len(seen["train"]) == 160  # a fifth of 200
    assert set(seen["guard"].tolist()) == {0, 1} and set(seen["train"].tolist()) == {0, 1}
    # the last 40 examples of the sorted split are all of class 1: version 1's slice
    assert set(data.y_train[-40:].tolist()) == {1}
    # the same seed gives the same slice (a resumed training holds out the same examples)
    idx_a = FastAdversarialTraining.guard_slice(200, 40, context(data), data.x_train.device)[0]
    idx_b = FastAdversarialTraining.guard_slice(200, 40, context(data), data.x_train.device)[0]
    assert torch.equal(idx_a, idx_b) and not torch.equal(idx_a, torch.arange(160, 200))


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
    info = fast["training"]["defense_info"][0]
    assert info["epsilon"] == 0.15 and info["guard_examples"] == 256
    # the guard's record, read back from the stored weights of the deployed model
    assert 1 <= info["guard_peak_epoch"] <= 30 and 0 <= info["guard_final_accuracy"] <= info["guard_peak_accuracy"] <= 1
    assert info["guard_stopped_at_epoch"] in range(0, 31)
