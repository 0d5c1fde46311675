"""Two gradient-masking defenses written the way a third party would, from docs/plugins.md alone.

Both train exactly like ``none`` (``standard_training``) and change only the deployed forward, so they are
no more robust than ``none``: one rounds the input to a grid (a non-differentiable transform, Athalye et
al. 2018's textbook case), the other puts a detached stage in front of the model. Gradient attacks see a
zero gradient through both.
"""

from __future__ import annotations

import torch

import qbench
from qbench import Defense


class _Rounded(torch.nn.Module):
    def __init__(self, inner: torch.nn.Module, step: float) -> None:
        super().__init__()
        self.inner, self.step = inner, step

    def forward(self, x):
        return self.inner(torch.round(x / self.step) * self.step)

    def class_probabilities(self, x):  # keep the board's shot readout of a quantum classifier
        return self.inner.class_probabilities(torch.round(x / self.step) * self.step)

    def logits_from(self, p):
        return self.inner.logits_from(p)


class _Detached(torch.nn.Module):
    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x.detach() + 0 * x)

    def class_probabilities(self, x):
        return self.inner.class_probabilities(x.detach() + 0 * x)

    def logits_from(self, p):
        return self.inner.logits_from(p)


class _Masking(Defense):
    tracks = ("qnn", "mapped-dnn")
    standard_training = True

    def predict(self, model, x, ctx):
        if hasattr(model.inner, "class_probabilities"):
            return super().predict(model, x, ctx)
        with torch.no_grad():
            return model(x).argmax(dim=1)


class RoundInput(_Masking):
    """Rounds every input to a grid before the trained model (zero input gradient)."""

    name = "mask_round"
    description = "rounds the input to a grid of 0.05 before the model (finer than epsilon: no robustness)"

    def deploy(self, model, data, ctx):
        return _Rounded(model, 0.05)


class RoundInputBPDA(RoundInput):
    """The same rounding, with its differentiable approximation declared (the identity: BPDA)."""

    name = "mask_round_bpda"
    description = "rounds the input to a grid of 0.05, declaring the identity as its BPDA approximation"

    def deploy(self, model, data, ctx):
        rounded = _Rounded(model, 0.05)
        rounded.bpda = model  # straight-through: the rounding's gradient is taken as the identity's
        return rounded


class DetachedStage(_Masking):
    """A detached stage in front of the trained model (zero input gradient)."""

    name = "mask_detach"
    description = "a detached identity stage in front of the model"

    def deploy(self, model, data, ctx):
        return _Detached(model)


class _Plugins:
    @qbench.hookimpl
    def register_defenses(self, register):
        register(RoundInput)
        register(DetachedStage)
        register(RoundInputBPDA)


plugins = _Plugins()
