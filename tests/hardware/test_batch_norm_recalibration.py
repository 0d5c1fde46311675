"""Batch-norm statistics re-measured through the read-back noise when a DNN is deployed on the device."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from qbench import Context, DataSplit, Domain, noiseless_source
from qbench.contract.config import added_later, config_to_dict
from qbench.hardware import map_to_hardware, recalibrate_batch_norm
from qbench.registry import load_registry

from test_hardware_mapping import small_cnn, synthetic

REGISTRY = load_registry()
STORE = Path(__file__).resolve().parents[2] / "leaderboards" / "store"
CHEAP = {"grid": 5, "repeats": 2, "shots": 256}


def conv_bn(dropout: float = 0.5) -> torch.nn.Module:
    """A 1x1 convolution, dropout, then batch norm, whose statistics are the noiseless ones."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1), torch.nn.Dropout(dropout), torch.nn.BatchNorm2d(2))
    model.train()
    with torch.no_grad():
        for _ in range(20):
            model(torch.rand(64, 1, 4, 4))
    return model.eval()


def shifted() -> object:
    """A read-back that adds 0.2 to every value, without spread: the noisy forward is deterministic."""
    return synthetic(bias=lambda q, v: 0.2 + 0 * v)


def test_the_statistics_become_those_of_the_noisy_activations_and_dropout_stays_off():
    model = conv_bn()
    mapped = map_to_hardware(model, shifted())
    x = torch.rand(256, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    seen = []
    conv = mapped.model[0]
    handle = conv.register_forward_hook(lambda m, i, out: seen.append(out.detach()))
    with torch.no_grad():
        mapped(x)
    handle.remove()
    noisy = seen[0]  # what the batch norm receives on the device (dropout is off in evaluation)
    assert recalibrate_batch_norm(mapped, x, batch_size=128) == 1
    bn = mapped.model[2]
    assert torch.allclose(bn.running_mean, noisy.mean(dim=(0, 2, 3)), atol=1e-6)
    per_batch = [noisy[:128].var(dim=(0, 2, 3)), noisy[128:].var(dim=(0, 2, 3))]
    assert torch.allclose(bn.running_var, (per_batch[0] + per_batch[1]) / 2, rtol=1e-4)
    assert not bn.training and not mapped.model[1].training and bn.momentum == 0.1  # modes restored
    # the noiseless model keeps its own statistics, which no longer match the device
    assert not torch.allclose(model[2].running_mean, bn.running_mean, atol=1e-3)


def test_a_model_without_batch_norm_draws_nothing_and_is_unchanged():
    mapped = map_to_hardware(small_cnn(), synthetic(sd=lambda q, v: 0.05 + 0 * v))
    before = {k: v.clone() for k, v in mapped.state_dict().items()}
    g = torch.Generator().manual_seed(3)
    state = g.get_state()
    assert recalibrate_batch_norm(mapped, torch.rand(40, 1, 8, 8), generator=g) == 0
    assert torch.equal(g.get_state(), state)
    assert all(torch.equal(before[k], v) for k, v in mapped.state_dict().items())


def test_the_recalibration_draws_its_noise_from_the_given_generator_and_restores_the_models():
    mapped = map_to_hardware(conv_bn(), synthetic(sd=lambda q, v: 0.05 + 0 * v))
    own = torch.Generator().manual_seed(9)
    mapped.generator = own
    x = torch.rand(64, 1, 4, 4, generator=torch.Generator().manual_seed(2))
    means = []
    for _ in range(2):
        recalibrate_batch_norm(mapped, x, generator=torch.Generator().manual_seed(5))
        means.append(mapped.model[2].running_mean.clone())
    assert torch.equal(means[0], means[1])  # the same generator seed, the same statistics
    assert mapped.generator is own


def blobs(n: int = 200) -> DataSplit:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 1, 4, 4, generator=g)
    y = (x.mean(dim=(1, 2, 3)) > 0.5).long()
    return DataSplit(x[:150], y[:150], x[150:], y[150:], 2, Domain("box", 0.0, 1.0))


@pytest.mark.parametrize("options, recalibrated", [({}, True), ({"batch_norm_examples": 0}, False)])
def test_intrinsic_noise_re_measures_the_statistics_on_the_device_by_default(tmp_path, options, recalibrated):
    model, data = conv_bn(dropout=0.0), blobs()
    defense = REGISTRY.create("defense", "intrinsic_noise", {**CHEAP, **options}, "mapped-dnn")
    ctx = Context(seed=0, data=data, cache_dir=tmp_path)
    state = ctx.generator.get_state()
    noiseless = {k: v.clone() for k, v in model.state_dict().items()}
    mapped = defense.deploy(model, data, ctx)
    assert torch.equal(ctx.generator.get_state(), state)  # its draws come from a child context
    same = torch.equal(mapped.model[2].running_mean, model[2].running_mean)
    assert same is not recalibrated
    assert mapped.noiseless_model is model and noiseless_source(mapped) is model
    # the noiseless network is referenced, not owned: the re-measurement on the device leaves its statistics
    # as trained (until 2026-12-07 it was a submodule and they were reset to mean 0, variance 1)
    assert all(torch.equal(v, noiseless[k]) for k, v in model.state_dict().items())
    assert not any(m is model for m in mapped.modules())
    assert not any(p is q for p in mapped.parameters() for q in model.parameters())
    assert ("batch_norm_examples" in defense.config_dict()) is bool(options)


def test_qnad_re_measures_them_for_its_crosstalk_level(tmp_path):
    model, data = conv_bn(dropout=0.0), blobs()
    model = torch.nn.Sequential(*model, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(2, 2)).eval()
    defense = REGISTRY.create("defense", "qnad", {**CHEAP, "level": 0.5, "importance_size": 32}, "mapped-dnn")
    noiseless = {k: v.clone() for k, v in model.state_dict().items()}
    mapped = defense.deploy(model, data, Context(seed=0, data=data, cache_dir=tmp_path))
    assert mapped.plan is not None
    assert not torch.equal(mapped.model[2].running_mean, model[2].running_mean)
    assert all(torch.equal(v, noiseless[k]) for k, v in model.state_dict().items())


def test_qnad_choosing_its_level_ranks_and_attacks_the_trained_noiseless_network(tmp_path):
    """Choosing the level deploys at every level: none of those deployments may touch the trained network,
    whose gradients rank the critical weights and on which the validation attack is crafted."""
    model, data = conv_bn(dropout=0.0), blobs()
    model = torch.nn.Sequential(*model, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(2, 2)).eval()
    noiseless = {k: v.clone() for k, v in model.state_dict().items()}
    options = {**CHEAP, "importance_size": 32, "validation_size": 40, "levels": [0.0, 0.25, 0.5]}
    defense = REGISTRY.create("defense", "qnad", options, "mapped-dnn").at_threat(0.1)
    mapped = defense.deploy(model, data, Context(seed=0, data=data, cache_dir=tmp_path))
    assert [row["level"] for row in defense.describe(mapped)["validation_curve"]] == [0.0, 0.25, 0.5]
    assert all(torch.equal(v, noiseless[k]) for k, v in model.state_dict().items())
    assert noiseless_source(mapped) is model


@pytest.mark.parametrize("defense", ["intrinsic_noise", "qnad"])
def test_the_published_cells_of_the_hardware_defenses_keep_their_keys(defense):
    """The new option is left out of the config at its default, so the committed cells' specs still match."""
    specs = [json.loads(line)["spec"] for line in (STORE / "mapped-dnn" / "mnist-lenet" / "cells.jsonl").open()]
    stored = [s["defense"]["config"] for s in specs if s["defense"]["name"] == defense]
    created = REGISTRY.create("defense", defense, {}, "mapped-dnn").at_threat(0.1)
    assert created.config_dict() in stored


def test_an_added_later_field_enters_the_dict_only_when_set():
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Config:
        a: int = 1
        b: tuple = (1, 2)
        c: int = added_later(5)

    assert config_to_dict(Config()) == {"a": 1, "b": [1, 2]}
    assert config_to_dict(Config(c=6)) == {"a": 1, "b": [1, 2], "c": 6}
    assert np.isclose(Config().c, 5)
