"""``square``: ART's Square Attack (Andriushchenko et al. 2020), a score-based attack that uses no gradient.

It is one of the suite's obfuscation checks: a defense that only hides its gradient falls to it. ART's
version takes image-shaped input, so single-channel images and square-length vectors are viewed as
``(1, H, W)`` images; inputs too small for square windows (fewer than 4x4) are skipped, and the ``nes``
attack covers them. A box is needed too, so quantum states get the [-1, 1] box then the renormalisation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from art.attacks.evasion import SquareAttack

import qbench
from qbench import Attack, AttackSkipped
from qbench.art_bridge import EOTPyTorchClassifier, to_numpy_inputs


class _AsImage(torch.nn.Module):
    """Presents a model that takes ``shape`` inputs as one that takes ``(1, H, W)`` images."""

    def __init__(self, inner: torch.nn.Module, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.inner = inner
        self.shape = shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.reshape(x.shape[0], *self.shape))


def image_shape(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """The ``(C, H, W)`` view of an input shape used for the square windows."""
    if len(shape) == 3:
        return shape
    if len(shape) == 2:
        return (1, *shape)
    n = math.prod(shape)
    side = math.isqrt(n)
    return (1, side, side) if side * side == n else (1, 1, n)


@dataclass(frozen=True)
class SquareConfig:
    """Query budget and the initial fraction of pixels changed (ART's defaults otherwise)."""

    max_iter: int = 1000
    p_init: float = 0.8
    restarts: int = 1

    def validate(self) -> None:
        if self.max_iter < 1 or self.restarts < 1 or not 0 < self.p_init <= 1:
            raise ValueError("max_iter and restarts must be >= 1, p_init in (0, 1]")


class Square(Attack):
    """Random square-shaped updates accepted when they lower the margin; gradient-free."""

    name = "square"
    description = "Square Attack, score-based and gradient-free, 1000 queries (ART SquareAttack)"
    version = "1"
    tracks = ("qnn", "mapped-dnn")
    threat = "gradient-free"
    Config = SquareConfig

    def generate(self, model, x, y, epsilon, ctx):
        if epsilon == 0:
            return x.clone()
        data = ctx.data
        shape = tuple(x.shape[1:])
        view = image_shape(shape)
        # ART's first square side is round(sqrt(p_init * H * W)); it must be smaller than the image
        first_side = round(math.sqrt(self.config.p_init * view[1] * view[2]))
        if min(view[1:]) < 4 or first_side >= min(view[1:]):
            raise AttackSkipped(
                f"square needs image-like input larger than its first {first_side}x{first_side} square "
                f"(and at least 4x4); inputs here have shape {shape}"
            )
        if data.domain.kind == "box":
            bounds = (data.domain.low, data.domain.high)
        elif data.domain.kind == "sphere":
            bounds = (-1.0, 1.0)
        else:
            bounds = (-np.inf, np.inf)
        classifier = EOTPyTorchClassifier(
            model=_AsImage(model, shape), loss=torch.nn.CrossEntropyLoss(), input_shape=view,
            nb_classes=data.n_classes, clip_values=bounds, device_type="cpu",
        )
        attack = SquareAttack(
            classifier, norm=np.inf, eps=epsilon, max_iter=self.config.max_iter, p_init=self.config.p_init,
            nb_restarts=self.config.restarts, batch_size=len(x), verbose=False,
        )
        x_np, y_np = to_numpy_inputs(x, y, data.n_classes)
        adv = attack.generate(x_np.reshape(len(x), *view), y=y_np).reshape(x.shape)
        return data.domain.project(torch.from_numpy(adv).to(x.dtype))


@qbench.hookimpl
def register_attacks(register) -> None:
    register(Square)
