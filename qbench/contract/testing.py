"""Contract checks and fixtures for plugin authors: test your plugin the way qbench will use it.

In your plugin's tests::

    from qbench.contract.testing import check_attack, check_defense, check_dataset, check_model

    def test_my_defense_follows_the_contract():
        check_defense(MyDefense)

Each ``check_*`` runs the component on small generated data through the same calls the runner makes and
raises ``AssertionError`` naming the broken rule. ``tiny_split`` and ``TinyLinear`` are the fixtures.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from qbench.contract.attack import Attack
from qbench.contract.component import Component
from qbench.contract.context import Context
from qbench.contract.dataset import DataSplit, Dataset, TrainingSchedule
from qbench.contract.defense import Defense
from qbench.contract.domain import Domain
from qbench.contract.model import Model, is_stochastic
from qbench.contract.tracks import TRACKS


def tiny_split(n_train: int = 64, n_test: int = 32, n_features: int = 4, seed: int = 0, domain: Domain | None = None) -> DataSplit:
    """A linearly separable 2-class problem with features in [0, 1] (a box domain by default)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n_train + n_test, n_features, generator=g)
    y = (x[:, 0] + 0.3 * x[:, 1] > 0.65).long()
    domain = domain or Domain("box", 0.0, 1.0)
    if domain.kind == "sphere":
        x = domain.project(x)
    return DataSplit(x[:n_train], y[:n_train], x[n_train:], y[n_train:], n_classes=2, domain=domain, notes="tiny generated")


class TinyLinear(torch.nn.Module):
    """A linear classifier: the simplest model an attack or defense must handle."""

    def __init__(self, n_features: int, n_classes: int = 2, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.linear = torch.nn.Linear(n_features, n_classes)
        with torch.no_grad():
            self.linear.weight.copy_(torch.randn(n_classes, n_features, generator=g))
            self.linear.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.reshape(x.shape[0], -1))


def context(data: DataSplit | None = None, seed: int = 0, **kwargs: Any) -> Context:
    """A context like the runner's, for tests (small EOT and repetition counts by default)."""
    kwargs.setdefault("n_eot", 4)
    kwargs.setdefault("n_repeat", 2)
    return Context(seed=seed, data=data, **kwargs)


def check_component(cls: type[Component]) -> None:
    """The registration rules: name, one-line description, version, tracks, a dataclass Config that builds."""
    assert isinstance(cls.name, str) and cls.name.strip(), f"{cls.__name__} has no name"
    assert cls.description and "\n" not in cls.description, f"{cls.name}: description must be one line"
    assert isinstance(cls.version, str) and cls.version, f"{cls.name}: version must be a non-empty string"
    assert cls.tracks and all(t in TRACKS for t in cls.tracks), f"{cls.name}: tracks must be among {TRACKS}"
    assert all(t in cls.tracks and isinstance(v, str) and v and v != cls.version
               for t, v in cls.track_versions.items()), \
        f"{cls.name}: track_versions must map tracks it supports to versions other than its own"
    assert dataclasses.is_dataclass(cls.Config), f"{cls.name}: Config must be a dataclass"
    cls.from_options({})  # the defaults must validate


def check_dataset(cls: type[Dataset], ctx: Context | None = None) -> DataSplit:
    """Loads the dataset and checks shapes, labels, dtypes and that every input lies in its domain."""
    check_component(cls)
    data = cls.from_options({}).load(ctx or context())
    assert data.x_train.shape[0] == data.y_train.shape[0] > 0, "train split is empty or mismatched"
    assert data.x_test.shape[0] == data.y_test.shape[0] > 0, "test split is empty or mismatched"
    assert data.y_train.dtype == torch.int64, "labels must be int64 class indices"
    for y in (data.y_train, data.y_test):
        assert int(y.min()) >= 0 and int(y.max()) < data.n_classes, "labels out of range"
    for x in (data.x_train, data.x_test):
        assert data.domain.contains(x, atol=1e-5), f"inputs outside the declared {data.domain.kind} domain"
    return data


def check_model(cls: type[Model], data: DataSplit | None = None) -> torch.nn.Module:
    """Builds the model and checks logits shape, finiteness and a non-zero input gradient."""
    check_component(cls)
    data = data or tiny_split()
    ctx = context(data)
    model = cls.from_options({}).build(data, ctx)
    x = data.x_test[:8].clone().requires_grad_(True)
    logits = model(x)
    assert logits.shape == (8, data.n_classes), f"logits must be (N, {data.n_classes}), got {tuple(logits.shape)}"
    assert torch.isfinite(logits).all(), "logits are not finite"
    torch.nn.functional.cross_entropy(logits, data.y_test[:8]).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0, "the loss has no gradient w.r.t. the input"
    return model


def _trained(cls: type[Defense], data: DataSplit | None, model: torch.nn.Module | None):
    """The defense's prepare and a 2-epoch fit on a tiny problem: (defense, data, ctx, trained model)."""
    check_component(cls)
    data = data or tiny_split()
    ctx = context(data)
    defense = cls.from_options({})
    model = defense.prepare(model or TinyLinear(data.x_train.shape[1]), ctx)
    return defense, data, ctx, defense.fit(model, data, TrainingSchedule(epochs=2, lr=0.05, batch_size=16), ctx)


def check_defense(cls: type[Defense], data: DataSplit | None = None, model: torch.nn.Module | None = None) -> torch.nn.Module:
    """Runs prepare, a 2-epoch fit and predict on a tiny problem; checks labels and the stochastic flag."""
    defense, data, ctx, model = _trained(cls, data, model)
    preds = defense.predict(model, data.x_test, ctx)
    assert preds.shape == data.y_test.shape and preds.dtype == torch.int64, "predict must return int64 labels (N,)"
    assert int(preds.min()) >= 0 and int(preds.max()) < data.n_classes, "predicted labels out of range"
    assert isinstance(defense.describe(model), dict), "describe must return a dict"
    is_stochastic(model)
    return model


def check_attack(cls: type[Attack], data: DataSplit | None = None, model: torch.nn.Module | None = None, epsilon: float = 0.1) -> torch.Tensor:
    """Runs generate on a linear model; checks shape, the epsilon ball and the domain."""
    check_component(cls)
    assert cls.threat in ("white-box", "transfer", "adaptive", "gradient-free"), f"{cls.name}: unknown threat"
    data = data or tiny_split()
    ctx = context(data)
    model = model or TinyLinear(data.x_train.shape[1])
    x, y = data.x_test, data.y_test
    adv = cls.from_options({}).generate(model, x.clone(), y.clone(), epsilon, ctx)
    assert adv.shape == x.shape, f"x_adv has shape {tuple(adv.shape)}, expected {tuple(x.shape)}"
    assert torch.isfinite(adv).all(), "x_adv is not finite"
    assert data.domain.contains(adv, atol=1e-5), "x_adv leaves the domain"
    if data.domain.kind != "sphere":
        assert float((adv - x).abs().max()) <= epsilon + 1e-5, "x_adv leaves the epsilon ball"
    return adv


#: fraction of examples with a zero or non-finite input gradient above which :func:`check_gradients` fails
MASKED_FRACTION = 0.5


def check_gradients(
    cls: type[Defense], data: DataSplit | None = None, model: torch.nn.Module | None = None, n: int = 32,
) -> float:
    """Fails when the deployed defense's input gradient is zero or non-finite on most examples.

    Run it in your defense's tests before submitting: qbench's sanity checks flag such an entry
    ``unreliable`` and rank it by the attacks that need no gradient from it (transfer from the undefended
    twin, gradient-free search). If your forward has a non-differentiable part on purpose, declare its
    differentiable approximation (BPDA) by setting ``bpda`` on the deployed module; white-box attacks then
    use it, and this check passes. Returns the fraction of examples with a usable gradient.
    """
    from qbench.contract.art_bridge import art_classifier, to_numpy_inputs

    defense, data, ctx, model = _trained(cls, data, model)
    model = defense.deploy(model, data, ctx)
    x, y = data.x_test[:n], data.y_test[:n]
    x_np, y_np = to_numpy_inputs(x, y, data.n_classes)
    grads = art_classifier(model, ctx).loss_gradient(x_np, y_np).reshape(len(x), -1)
    usable = (torch.from_numpy(grads).abs().sum(dim=1) > 0) & torch.isfinite(torch.from_numpy(grads)).all(dim=1)
    fraction = float(usable.float().mean())
    assert fraction >= 1 - MASKED_FRACTION, (
        f"{cls.name}: the input gradient is zero or non-finite on {1 - fraction:.0%} of examples: attacks cannot use "
        "it (gradient masking). Declare the differentiable approximation of the non-differentiable part by setting "
        "`bpda` on the deployed module (docs/plugins.md), or the entry will be flagged unreliable"
    )
    return fraction
