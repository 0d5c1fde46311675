"""The seed paper's table 2 ablation on a reduced configuration: what happens to the noise scales beta."""

import numpy as np
import pytest
import torch

from qbench import TrainingSchedule
from qbench.registry import load_registry
from qbench.contract.testing import context

REGISTRY = load_registry()


@pytest.fixture(scope="module")
def betas():
    torch.set_num_threads(1)
    data = REGISTRY.create("dataset", "digits-1v9").load(context())
    out = {}
    for variant in ("QNN-V", "QNN-N", "QNN-C", "QNN-CN"):
        ctx = context(data, seed=0)
        torch.manual_seed(0)
        defense = REGISTRY.create("defense", "noise_layer", {"ablation": variant})
        model = defense.prepare(REGISTRY.create("model", "qnn", {"n_layers": 4}).build(data, ctx), ctx)
        model = defense.fit(model, data, TrainingSchedule(30, 0.005, 64), ctx)
        out[variant] = np.abs(np.array(defense.describe(model)["beta"]))
    return out


def test_beta_is_untouched_without_noise(betas):
    # no noise, no gradient reaches beta: it stays at its initial 0.25 (the paper: "fluctuates around 0.25")
    assert np.allclose(betas["QNN-V"], 0.25) and np.allclose(betas["QNN-C"], 0.25)


def test_beta_collapses_with_noise_and_no_combined_loss(betas):
    assert betas["QNN-N"].mean() < 0.05


def test_combined_loss_keeps_the_noise_on(betas):
    assert betas["QNN-CN"].mean() > 4 * betas["QNN-N"].mean()
    assert not np.allclose(betas["QNN-CN"], 0.25)


def test_ablation_switches():
    config = REGISTRY.create("defense", "noise_layer", {"ablation": "QNN-N"}).config
    assert config.switches == ("both", False)
    assert REGISTRY.create("defense", "noise_layer").config.switches == ("both", True)
