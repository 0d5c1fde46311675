"""``apgd-ce`` and ``apgd-dlr``: auto-PGD (Croce & Hein 2020) through ART's AutoProjectedGradientDescent.

ART builds its own classifier around the model to swap in the loss; qbench puts the EOT gradient back on
that classifier for stochastic models. APGD clips to box bounds itself but has no per-iteration hook for
other domains, so on a quantum-state domain the renormalisation is applied to its output; every iterate
is still evaluated as a normalised state because amplitude encodings normalise their input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from art.attacks.evasion import AutoProjectedGradientDescent

import qbench
from qbench import Attack, AttackSkipped
from qbench.art_bridge import EOTOption, art_classifier, eot_estimator_like, to_numpy_inputs


@dataclass(frozen=True)
class APGDConfig(EOTOption):
    """AutoAttack's settings for APGD: 100 iterations, one restart; step size adapts by itself."""

    steps: int = 100
    restarts: int = 1

    def validate(self) -> None:
        super().validate()
        if self.steps < 1 or self.restarts < 1:
            raise ValueError("steps and restarts must be >= 1")


class _APGD(Attack):
    loss_type = "cross_entropy"
    Config = APGDConfig
    version = "1"
    tracks = ("qnn", "mapped-dnn")
    threat = "white-box"
    iterative = True

    def generate(self, model, x, y, epsilon, ctx):
        if epsilon == 0:
            return x.clone()
        c = self.config
        classifier = art_classifier(model, ctx, n_eot=c.n_eot)
        attack = AutoProjectedGradientDescent(
            classifier, norm=np.inf, eps=epsilon, eps_step=2 * epsilon, max_iter=c.steps, targeted=False,
            nb_random_init=c.restarts, batch_size=len(x), loss_type=self.loss_type, verbose=False,
        )
        if classifier.n_eot > 1:
            attack._estimator = eot_estimator_like(attack.estimator, classifier.n_eot)
        x_np, y_np = to_numpy_inputs(x, y, ctx.data.n_classes)
        adv = torch.from_numpy(attack.generate(x_np, y=y_np)).to(x.dtype)
        return ctx.data.domain.project(adv)


class APGDCE(_APGD):
    """Auto-PGD on the cross-entropy loss."""

    name = "apgd-ce"
    description = "auto-PGD, cross-entropy loss, 100 iterations (Croce & Hein 2020; ART)"


class APGDDLR(_APGD):
    """Auto-PGD on the difference-of-logits-ratio loss (needs at least 3 classes)."""

    name = "apgd-dlr"
    description = "auto-PGD, DLR loss, 100 iterations; skipped on tasks with fewer than 3 classes"
    loss_type = "difference_logits_ratio"

    def generate(self, model, x, y, epsilon, ctx):
        if ctx.data.n_classes < 3:
            raise AttackSkipped(f"apgd-dlr needs at least 3 classes; this task has {ctx.data.n_classes}")
        return super().generate(model, x, y, epsilon, ctx)


@qbench.hookimpl
def register_attacks(register) -> None:
    register(APGDCE)
    register(APGDDLR)
