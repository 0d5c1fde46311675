"""``twin-pgd`` and ``twin-apgd-ce``: transfer from the undefended twin (DESIGN section 4, issue 18).

The board's ``none`` model — same data, architecture, seed and standard training — is attacked white-box
(PGD: random start, 40 steps of eps/10; APGD-CE: 100 iterations), and the adversarial examples are evaluated
on the defended model. The attack needs nothing from the defense: no gradient, no query. It is exactly
what breaks a defense that only masks the gradients of a copy of the undefended model (a non-differentiable
input transform, a detached stage), and a standard member of every suite, so masking cannot top a board.
The twin comes from the runner (``ctx.undefended_twin``): the ``none`` training's own weights. Its gradient
is the EOT mean if the twin itself is stochastic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from art.attacks.evasion.projected_gradient_descent.projected_gradient_descent_numpy import (
    ProjectedGradientDescentNumpy,
)

import qbench
from qbench import Attack, AttackSkipped, prediction_is_random
from qbench.contract.art_bridge import art_classifier, eot_estimator_like, to_numpy_inputs, with_domain
from qbench_plugins.attacks.apgd import apgd_best_iterate, art_apgd


@dataclass(frozen=True)
class TwinConfig:
    """Iterations of the white-box attack crafted on the twin."""

    steps: int = 40

    def validate(self) -> None:
        if self.steps < 1:
            raise ValueError("steps must be >= 1")


@dataclass(frozen=True)
class TwinAPGDConfig(TwinConfig):
    """APGD iterations on the twin (AutoAttack's 100)."""

    steps: int = 100


class _Twin(Attack):
    Config = TwinConfig
    version = "1"
    tracks = ("qnn", "mapped-dnn")
    threat = "transfer"
    iterative = True

    def twin(self, ctx) -> torch.nn.Module:
        if ctx.undefended_twin is None:
            raise AttackSkipped(f"{self.name} needs the runner's undefended twin (ctx.undefended_twin)")
        return ctx.undefended_twin()

    def generate(self, model, x, y, epsilon, ctx):
        twin = self.twin(ctx)
        if epsilon == 0:
            return x.clone()
        x_np, y_np = to_numpy_inputs(x, y, ctx.data.n_classes)
        adv = self.craft(twin, x_np, y_np, epsilon, ctx)
        return ctx.data.domain.project(torch.from_numpy(adv).to(x))

    def craft(self, twin, x_np, y_np, epsilon, ctx) -> np.ndarray:
        raise NotImplementedError  # abstract


class TwinPGD(_Twin):
    """PGD crafted on the undefended twin, evaluated on the defended model."""

    name = "twin-pgd"
    description = "transfer from the undefended twin: PGD (random start, 40 x eps/10) on the board's none model"

    def craft(self, twin, x_np, y_np, epsilon, ctx):
        attack = with_domain(ProjectedGradientDescentNumpy, ctx)(
            art_classifier(twin, ctx), norm="inf", eps=epsilon, eps_step=epsilon / 10, max_iter=self.config.steps,
            num_random_init=1, batch_size=len(x_np), verbose=False,
        )
        return attack.generate(x_np, y=y_np)


class TwinAPGD(_Twin):
    """APGD-CE crafted on the undefended twin, evaluated on the defended model."""

    name = "twin-apgd-ce"
    description = "transfer from the undefended twin: APGD-CE (100 iterations) on the board's none model"
    Config = TwinAPGDConfig
    #: version 2 on the QNN track: crafted as apgd-ce's best iterate where the twin's prediction is random
    track_versions = {"qnn": "2"}

    def craft(self, twin, x_np, y_np, epsilon, ctx):
        classifier = art_classifier(twin, ctx)
        if prediction_is_random(twin, ctx.shots):  # as apgd-ce does there: the best iterate by its loss
            return apgd_best_iterate(classifier, x_np, y_np, epsilon, self.config.steps, 1)
        attack = art_apgd(classifier, epsilon, len(x_np), self.config.steps, 1)
        if classifier.n_eot > 1:
            attack._estimator = eot_estimator_like(attack.estimator, classifier.n_eot)
        return attack.generate(x_np, y=y_np)


@qbench.hookimpl
def register_attacks(register) -> None:
    register(TwinPGD)
    register(TwinAPGD)
