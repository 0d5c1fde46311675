"""``apgd-ce`` and ``apgd-dlr``: auto-PGD (Croce & Hein 2020) through ART's AutoProjectedGradientDescent.

ART builds its own classifier around the model to swap in the loss; qbench puts the EOT gradient back on
that classifier for stochastic models. APGD clips to box bounds itself but has no per-iteration hook for
other domains, so on a quantum-state domain the renormalisation is applied to its output; every iterate
is still evaluated as a normalised state because amplitude encodings normalise their input.

Deterministic models get ART's generate unchanged. On a stochastic model (version 2) ART's generate
would decide three things from single noisy samples: it attacks only the examples one noisy ``predict``
calls correct, it keeps the final iterate only where one noisy ``predict`` of it is wrong (returning the
random start otherwise), and its step-size schedule and best iterate follow ``compute_loss`` of one
forward. Version 1 was 8.7-20 points weaker than 40-step PGD there for those reasons. Now the classifier's
``compute_loss`` is the EOT mean as well, its ``predict`` answers the true labels (so ART attacks every
example and substitutes nothing), and each example's output is ART's best iterate under the EOT loss
(``x_max`` / ``f_max``); restarts run as separate ART generates, one random start each, and the
restart with the highest EOT loss wins per example. ART's own loop is used as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from art.attacks.evasion import AutoProjectedGradientDescent

import qbench
from qbench import Attack, AttackSkipped, is_stochastic
from qbench.art_bridge import EOTOption, EOTPyTorchClassifier, art_classifier, eot_estimator_like, to_numpy_inputs


@dataclass(frozen=True)
class APGDConfig(EOTOption):
    """AutoAttack's settings for APGD: 100 iterations, one restart; step size adapts by itself."""

    steps: int = 100
    restarts: int = 1

    def validate(self) -> None:
        super().validate()
        if self.steps < 1 or self.restarts < 1:
            raise ValueError("steps and restarts must be >= 1")


class _PinnedPredictions(EOTPyTorchClassifier):
    """An EOT classifier whose ``predict`` returns one-hot scores of the labels pinned on it.

    ART's APGD calls ``predict`` only to sort examples into robust and not: before a restart (attack only
    the correctly classified) and after it (keep the iterate only where it fools the model). On a
    stochastic model a single noisy forward must not make those calls; with the true labels pinned, every
    example is attacked and the best iterate is read from ``x_max`` instead.
    """

    pinned: np.ndarray | None = None

    def predict(self, x, batch_size: int = 128, training_mode: bool = False, **kwargs) -> np.ndarray:
        if self.pinned is None or len(x) != len(self.pinned):
            raise RuntimeError("predict called on inputs other than the pinned batch")
        return self.pinned.copy()


class _APGD(Attack):
    loss_type = "cross_entropy"
    Config = APGDConfig
    version = "2"
    tracks = ("qnn", "mapped-dnn")
    threat = "white-box"
    iterative = True

    def generate(self, model, x, y, epsilon, ctx):
        if epsilon == 0:
            return x.clone()
        c = self.config
        classifier = art_classifier(model, ctx, n_eot=c.n_eot)
        x_np, y_np = to_numpy_inputs(x, y, ctx.data.n_classes)
        if is_stochastic(model):
            adv_np = self._generate_stochastic(classifier, x_np, y_np, epsilon)
        else:
            attack = self._art_attack(classifier, epsilon, len(x), c.restarts)
            if classifier.n_eot > 1:
                attack._estimator = eot_estimator_like(attack.estimator, classifier.n_eot)
            adv_np = attack.generate(x_np, y=y_np)
        return ctx.data.domain.project(torch.from_numpy(adv_np).to(x.dtype))

    def _art_attack(self, classifier, epsilon, batch_size, restarts) -> AutoProjectedGradientDescent:
        return AutoProjectedGradientDescent(
            classifier, norm=np.inf, eps=epsilon, eps_step=2 * epsilon, max_iter=self.config.steps,
            targeted=False, nb_random_init=restarts, batch_size=batch_size, loss_type=self.loss_type,
            verbose=False,
        )

    def _generate_stochastic(self, classifier, x_np: np.ndarray, y_np: np.ndarray, epsilon: float) -> np.ndarray:
        """Per example, the best iterate under the EOT loss over ``restarts`` ART runs of one start each.

        With one batch (``batch_size=len(x)``) and every example "robust", ART's ``x_robust`` is the whole
        input in order, so ``x_max`` / ``f_max`` (the batch's best iterate and its EOT loss, which ART
        keeps inside the epsilon ball and the clip bounds) line up with ``x``.
        """
        attack = self._art_attack(classifier, epsilon, len(x_np), 1)
        estimator = eot_estimator_like(attack.estimator, classifier.n_eot, cls=_PinnedPredictions)
        estimator.pinned = y_np.astype(np.float32)
        attack._estimator = estimator
        best_x, best_f = None, None
        for _ in range(self.config.restarts):
            attack.generate(x_np, y=y_np)
            x_max, f_max = np.asarray(attack.x_max), np.asarray(attack.f_max).reshape(-1)
            if x_max.shape != x_np.shape or f_max.shape != (len(x_np),):
                raise RuntimeError("ART's APGD best iterate does not line up with the input batch")
            if best_x is None:
                best_x, best_f = x_max.copy(), f_max.copy()
            else:
                better = f_max > best_f
                best_x[better], best_f[better] = x_max[better], f_max[better]
        return best_x


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
