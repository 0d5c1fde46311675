"""An example qbench plugin: one defense and one attack, registered through the ``qbench`` entry point."""

from __future__ import annotations

from dataclasses import dataclass

import torch

import qbench
from qbench import Attack, Defense


class _Rounded(torch.nn.Module):
    """Rounds inputs to a grid of ``step`` before the wrapped model."""

    def __init__(self, inner: torch.nn.Module, step: float) -> None:
        super().__init__()
        self.inner = inner
        self.step = step

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(torch.round(x / self.step) * self.step)


@dataclass(frozen=True)
class RoundingConfig:
    """Grid step of the rounding, in input units."""

    step: float = 0.25

    def validate(self) -> None:
        if self.step <= 0:
            raise ValueError("step must be > 0")


class InputRounding(Defense):
    """Rounds every input feature to a grid before the model (an input transformation defense)."""

    name = "input_rounding"
    description = "round inputs to a grid of step `step` before the model (feature-squeezing style)"
    version = "0.1.0"
    tracks = ("qnn", "mapped-dnn")
    Config = RoundingConfig

    def prepare(self, model: torch.nn.Module, ctx) -> torch.nn.Module:
        return _Rounded(model, self.config.step)

    def describe(self, model: torch.nn.Module) -> dict:
        return {"step": self.config.step}


@dataclass(frozen=True)
class RandomSignConfig:
    """Number of random draws; the first draw that fools the model is kept per example."""

    restarts: int = 1

    def validate(self) -> None:
        if self.restarts < 1:
            raise ValueError("restarts must be >= 1")


class RandomSign(Attack):
    """x + epsilon * random signs, keeping the first draw that is misclassified (gradient-free)."""

    name = "random_sign"
    description = "random corners of the epsilon box (gradient-free floor)"
    version = "0.1.0"
    tracks = ("qnn", "mapped-dnn")
    threat = "gradient-free"
    Config = RandomSignConfig

    def generate(self, model, x, y, epsilon, ctx):
        best = x.clone()
        fooled = torch.zeros(len(x), dtype=torch.bool)
        for _ in range(self.config.restarts):
            signs = torch.randint(0, 2, x.shape, generator=ctx.generator).to(x.dtype) * 2 - 1
            candidate = ctx.data.domain.project(x + epsilon * signs)
            with torch.no_grad():
                wrong = model(candidate).argmax(dim=1) != y
            take = wrong & ~fooled
            best[take] = candidate[take]
            best[~fooled & ~wrong] = candidate[~fooled & ~wrong]
            fooled |= wrong
        return best


@qbench.hookimpl
def register_defenses(register) -> None:
    register(InputRounding)


@qbench.hookimpl
def register_attacks(register) -> None:
    register(RandomSign)
