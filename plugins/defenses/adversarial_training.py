"""``adversarial_training``: quantum adversarial training (Lu et al. 2020), the seed paper's baseline.

At every epoch, BIM adversarial examples of the whole training set are generated against the current
model, and the model is trained for that epoch on the clean and adversarial examples together (seed paper
section 4.1, "Baseline"). On the mapped-DNN track the defense is Madry et al. 2018's PGD training: every
mini-batch is attacked against the current weights (a random start, 10 steps of 2.5 * epsilon / 10, at the
evaluation's epsilon: 0.1 on MNIST, 8/255 on CIFAR) and the model trains on the adversarial batch —
``refresh="batch"``; ``epsilon`` and ``step_size`` left empty (None) are filled in from the plan's threat
model. (Version 1 ran the per-epoch refresh on both tracks: on LeNet its examples were a whole epoch stale
by the end of each epoch, and its seeds spread from 36 to 74% under APGD-CE; see benchmarks/madry_plateau.py.)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import torch
import torch.nn.functional as F

import qbench
from qbench import Defense
from qbench.contract.checkpoint import resumable_epochs
from qbench.contract.training import bim_examples, make_optimizer, train


@dataclass(frozen=True)
class AdversarialTrainingConfig:
    """Defaults: Lu et al. / Huang & Zhang's baseline: BIM, epsilon 0.15, 3 steps of 0.05, no random start.

    ``epsilon=None`` trains at the evaluation's largest epsilon; ``step_size=None`` is Madry et al.'s
    2.5 * epsilon / steps.
    """

    epsilon: float | None = 0.15
    steps: int = 3
    step_size: float | None = 0.05
    random_start: bool = False
    #: when adversarial examples are made: ``epoch`` (Lu et al.: the whole training set against the weights at
    #: the start of each epoch, then an epoch on clean + adversarial) or ``batch`` (Madry et al.: each
    #: mini-batch against the current weights, trained on the adversarial batch)
    refresh: Literal["epoch", "batch"] = "epoch"

    def validate(self) -> None:
        if (self.epsilon is not None and self.epsilon < 0) or self.steps < 1 or (
            self.step_size is not None and self.step_size <= 0
        ):
            raise ValueError("epsilon >= 0, steps >= 1 and step_size > 0 are required")
        if self.refresh not in ("epoch", "batch"):
            raise ValueError("refresh must be 'epoch' or 'batch'")


class AdversarialTraining(Defense):
    """Each epoch: BIM examples of the training set against the current model, then train on clean + adversarial."""

    name = "adversarial_training"
    description = "quantum adversarial training (Lu et al. 2020): per epoch, train on clean + BIM examples"
    #: 2: the ``refresh`` option; the mapped-DNN track refreshes per batch (Madry), the QNN track per epoch
    version = "2"
    tracks = ("qnn", "mapped-dnn")
    Config = AdversarialTrainingConfig
    track_defaults = {
        "mapped-dnn": {"epsilon": None, "step_size": None, "steps": 10, "random_start": True, "refresh": "batch"},
    }

    def at_threat(self, epsilon: float) -> "AdversarialTraining":
        c = self.config
        eps = epsilon if c.epsilon is None else c.epsilon
        step = 2.5 * eps / c.steps if c.step_size is None else c.step_size
        return type(self)(replace(c, epsilon=eps, step_size=step))

    def fit(self, model, data, schedule, ctx):
        c = self.config
        if c.epsilon is None or c.step_size is None:
            raise ValueError("adversarial_training: epsilon/step_size unset (the plan fills them from its epsilons)")
        if c.refresh == "batch":
            return train(model, data, schedule, ctx, self.madry_loss(data.domain),
                         description="adversarial training (PGD per batch)")
        one_epoch = replace(schedule, epochs=1)  # lr decay and augmentation as the whole schedule's
        optimizer = make_optimizer(model, schedule)  # one optimiser, so Adam's moments carry across epochs
        with ctx.progress.task("adversarial training", total=schedule.epochs) as bar:
            for epoch in resumable_epochs(ctx, schedule.epochs, model=model, optimizer=optimizer):
                model.eval()
                chunks = []
                for i in range(0, len(data.x_train), 512):
                    xb, yb = data.x_train[i : i + 512], data.y_train[i : i + 512]
                    chunks.append(bim_examples(model, xb, yb, c.epsilon, c.steps, c.step_size, data.domain, c.random_start))
                augmented = replace(
                    data,
                    x_train=torch.cat([data.x_train, torch.cat(chunks)]),
                    y_train=torch.cat([data.y_train, data.y_train]),
                )
                train(model, augmented, one_epoch, ctx, optimizer=optimizer, description=f"epoch {epoch + 1}",
                      epoch_offset=epoch, total_epochs=schedule.epochs)
                bar.advance()
        model.eval()
        return model

    def madry_loss(self, domain):
        """The per-batch loss of ``refresh="batch"``: cross-entropy on the batch's PGD examples against the
        current weights (``qbench.contract.training.train``'s ``batch_loss``)."""
        c = self.config

        def batch_loss(model, x, y, epoch):
            x_adv = bim_examples(model, x, y, c.epsilon, c.steps, c.step_size, domain, c.random_start)
            return F.cross_entropy(model(x_adv), y)

        return batch_loss


@qbench.hookimpl
def register_defenses(register) -> None:
    register(AdversarialTraining)
