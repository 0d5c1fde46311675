"""``nes``: a gradient-free PGD whose gradient is estimated from model outputs only (Ilyas et al. 2018).

The gradient of the loss is estimated by natural evolution strategies: ``samples`` antithetic Gaussian
probes of scale ``sigma`` around the input, weighted by the loss they give. The estimate replaces the
classifier's ``loss_gradient`` and ART's PGD loop does the rest, so the attack never touches the model's
autograd: a defense that only masks or randomises its gradient gains nothing against it. ART has no NES
estimator, which is why the estimator (not the attack loop) is written here.

The probe scale (version 2). Version 1 used Ilyas et al.'s ``sigma = 0.001`` in input units whatever the
epsilon and the domain. A defense that quantises its input to a grid of step ``h`` (or any
piecewise-constant transform) gives every probe much smaller than ``h`` the same output as the centre,
so the finite differences are exactly zero and the "gradient-free" attack is masked as well: on moons
(features of order 1, epsilon 0.15) a 0.1 grid zeroed it. Now ``sigma`` is ``sigma_fraction * epsilon``
(default 0.5), i.e. the probes explore the same neighbourhood the attack may move in: a transform whose
step is comparable to epsilon, the only kind that can hide an adversarial example inside the ball, is
crossed by a good fraction of the probes, and the estimate is that of the loss smoothed at the scale of
the ball, which on a smooth model points the same way as the gradient (sign steps only use its signs).
The scale is relative to epsilon, so it follows the domain's units (pixels in [0, 1], amplitudes of a
quantum state, raw features). Every probe is projected into the domain (clipped to a box, renormalised
onto the sphere) so the model is only queried on valid inputs. ``sigma`` (absolute, input units) still
overrides the fraction when given.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from art.attacks.evasion.projected_gradient_descent.projected_gradient_descent_numpy import (
    ProjectedGradientDescentNumpy,
)

import qbench
from qbench import Attack
from qbench.contract.art_bridge import EOTPyTorchClassifier, art_device_type, to_numpy_inputs, with_domain


class NESClassifier(EOTPyTorchClassifier):
    """An ART classifier whose loss gradient is a NES estimate from forward passes only.

    ``domain`` (optional) projects every probe into the input domain before it is queried.
    """

    def __init__(self, *args, samples: int, sigma: float, rng: np.random.Generator, domain=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.samples = samples
        self.sigma = sigma
        self.rng = rng
        self.domain = domain

    def loss_gradient(self, x, y, training_mode: bool = False, **kwargs):
        x = np.asarray(x, dtype=np.float32)
        labels = torch.from_numpy(np.argmax(np.asarray(y), axis=1)).to(self.device)
        half = max(1, self.samples // 2)
        noise = self.rng.standard_normal((half, *x.shape)).astype(np.float32)
        probes = np.concatenate([x[None] + self.sigma * noise, x[None] - self.sigma * noise])  # (2h, N, ...)
        probes = torch.from_numpy(probes.reshape(-1, *x.shape[1:])).to(self.device)
        if self.domain is not None:
            probes = self.domain.project(probes)
        with torch.no_grad():
            logits = self.model(probes)
            losses = torch.nn.functional.cross_entropy(logits, labels.repeat(2 * half), reduction="none")
        losses = losses.reshape(2 * half, x.shape[0]).cpu().numpy()
        weights = (losses[:half] - losses[half:]).reshape(half, x.shape[0], *([1] * (x.ndim - 1)))
        return (weights * noise).mean(axis=0) / (2 * self.sigma)


@dataclass(frozen=True)
class NESConfig:
    """PGD steps on the NES estimate; probes of scale ``sigma_fraction * epsilon`` (``sigma``, in input
    units, overrides it when set)."""

    steps: int = 20
    step_fraction: float = 0.15
    samples: int = 100
    sigma_fraction: float = 0.5
    sigma: float | None = None

    def validate(self) -> None:
        if self.steps < 1 or self.samples < 2 or self.step_fraction <= 0 or self.sigma_fraction <= 0:
            raise ValueError("steps >= 1, samples >= 2, step_fraction > 0 and sigma_fraction > 0 are required")
        if self.sigma is not None and self.sigma <= 0:
            raise ValueError("sigma must be > 0 (or unset: sigma_fraction * epsilon)")


class NES(Attack):
    """PGD on a natural-evolution-strategies gradient estimate: queries outputs only, never gradients."""

    name = "nes"
    description = "gradient-free PGD on a NES estimate (Ilyas et al. 2018), probes of eps/2, 20 steps x 100 queries"
    version = "2"
    tracks = ("qnn", "mapped-dnn")
    threat = "gradient-free"
    Config = NESConfig

    def generate(self, model, x, y, epsilon, ctx):
        if epsilon == 0:
            return x.clone()
        c = self.config
        sigma = c.sigma if c.sigma is not None else c.sigma_fraction * epsilon
        classifier = NESClassifier(
            model=model, loss=torch.nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]),
            nb_classes=ctx.data.n_classes, clip_values=ctx.data.domain.clip_values, device_type=art_device_type(ctx.device),
            samples=c.samples, sigma=sigma, rng=ctx.rng, domain=ctx.data.domain,
        )
        attack = with_domain(ProjectedGradientDescentNumpy, ctx)(
            classifier, norm="inf", eps=epsilon, eps_step=c.step_fraction * epsilon, max_iter=c.steps,
            num_random_init=0, batch_size=len(x), verbose=False,
        )
        x_np, y_np = to_numpy_inputs(x, y, ctx.data.n_classes)
        return ctx.data.domain.project(torch.from_numpy(attack.generate(x_np, y=y_np)).to(x))


@qbench.hookimpl
def register_attacks(register) -> None:
    register(NES)
