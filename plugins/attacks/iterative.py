"""``bim``, ``pgd`` and ``mim``: ART's iterative L-inf attacks, every iterate projected into the domain.

All three run ART's ``ProjectedGradientDescentNumpy`` loop: BIM (Kurakin et al.) with no random start and
the seed paper's protocol (3 steps of 0.05), PGD (Madry et al.) with a random start and more steps, MIM
(Dong et al.) with momentum (ART's ``decay``). On a stochastic model the gradient is the EOT mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from art.attacks.evasion.projected_gradient_descent.projected_gradient_descent_numpy import (
    ProjectedGradientDescentNumpy,
)

import qbench
from qbench import Attack
from qbench.contract.art_bridge import EOTOption, art_classifier, to_numpy_inputs, with_domain
from qbench.contract.config import added_later


def _run_pgd(model, x, y, epsilon, ctx, *, steps, step_size, random_starts, decay=None, eot=None):
    classifier = art_classifier(model, ctx, n_eot=eot)
    attack = with_domain(ProjectedGradientDescentNumpy, ctx)(
        classifier, norm="inf", eps=epsilon, eps_step=step_size, max_iter=steps, num_random_init=random_starts,
        decay=decay, batch_size=len(x), verbose=False,
    )
    x_np, y_np = to_numpy_inputs(x, y, ctx.data.n_classes)
    return ctx.data.domain.project(torch.from_numpy(attack.generate(x_np, y=y_np)).to(x))


@dataclass(frozen=True)
class BIMConfig(EOTOption):
    """The seed paper's protocol: 3 iterations of step 0.05 (Huang & Zhang 2023, section 4.1).

    ``reference_epsilon`` (unset by default): scale the step with the attack's epsilon, ``step_size *
    epsilon / reference_epsilon`` (exactly ``step_size`` at the reference). Three fixed steps of 0.05 never
    leave the 0.15 ball, so the default's points above 0.15 repeat its 0.15 attack; the paper's curves
    (figures 7 and 9) fall above 0.15, which only a step that grows with epsilon can give.
    """

    steps: int = 3
    step_size: float = 0.05
    reference_epsilon: float | None = added_later(None)

    def validate(self) -> None:
        super().validate()
        if self.steps < 1 or self.step_size <= 0:
            raise ValueError("steps must be >= 1 and step_size > 0")
        if self.reference_epsilon is not None and self.reference_epsilon <= 0:
            raise ValueError("reference_epsilon must be > 0")

    def step_at(self, epsilon: float) -> float:
        """The step size at ``epsilon``."""
        if self.reference_epsilon is None or epsilon == self.reference_epsilon:
            return self.step_size
        return self.step_size * epsilon / self.reference_epsilon


class BIM(Attack):
    """Basic iterative method: repeated FGSM steps, clipped to the epsilon ball (no random start)."""

    name = "bim"
    description = "basic iterative method, the seed protocol: 3 steps of 0.05 (ART PGD loop, no random start)"
    version = "1"
    tracks = ("qnn", "mapped-dnn")
    threat = "white-box"
    iterative = True
    Config = BIMConfig

    def generate(self, model, x, y, epsilon, ctx):
        c = self.config
        return _run_pgd(model, x, y, epsilon, ctx, steps=c.steps, step_size=c.step_at(epsilon), random_starts=0,
                        eot=c.n_eot)


@dataclass(frozen=True)
class PGDConfig(EOTOption):
    """Madry-style PGD: random start, ``steps`` steps of ``step_fraction * epsilon``, ``restarts`` starts."""

    steps: int = 40
    step_fraction: float = 0.1
    restarts: int = 1

    def validate(self) -> None:
        super().validate()
        if self.steps < 1 or self.step_fraction <= 0 or self.restarts < 1:
            raise ValueError("steps and restarts must be >= 1 and step_fraction > 0")


class PGD(Attack):
    """Projected gradient descent with a random start (Madry et al. 2018)."""

    name = "pgd"
    description = "projected gradient descent, random start, 40 steps of eps/10 (ART)"
    version = "1"
    tracks = ("qnn", "mapped-dnn")
    threat = "white-box"
    iterative = True
    Config = PGDConfig

    def generate(self, model, x, y, epsilon, ctx):
        c = self.config
        return _run_pgd(
            model, x, y, epsilon, ctx, steps=c.steps, step_size=max(c.step_fraction * epsilon, 1e-12),
            random_starts=c.restarts, eot=c.n_eot,
        )


@dataclass(frozen=True)
class MIMConfig(EOTOption):
    """Momentum iterative method: ``steps`` steps of epsilon/steps with momentum ``decay`` (Dong et al. 2018)."""

    steps: int = 10
    decay: float = 1.0

    def validate(self) -> None:
        super().validate()
        if self.steps < 1 or self.decay < 0:
            raise ValueError("steps must be >= 1 and decay >= 0")


class MIM(Attack):
    """Momentum iterative method: gradient steps with an L1-normalised momentum term."""

    name = "mim"
    description = "momentum iterative method, 10 steps of eps/10, decay 1.0 (ART PGD loop with momentum)"
    version = "1"
    tracks = ("qnn", "mapped-dnn")
    threat = "white-box"
    iterative = True
    Config = MIMConfig

    def generate(self, model, x, y, epsilon, ctx):
        c = self.config
        return _run_pgd(
            model, x, y, epsilon, ctx, steps=c.steps, step_size=max(epsilon / c.steps, 1e-12), random_starts=0,
            decay=c.decay, eot=c.n_eot,
        )


@qbench.hookimpl
def register_attacks(register) -> None:
    register(BIM)
    register(PGD)
    register(MIM)
