"""``adversarial_training``: quantum adversarial training (Lu et al. 2020), the seed paper's baseline.

At every epoch, BIM adversarial examples of the whole training set are generated against the current
model, and the model is trained for that epoch on the clean and adversarial examples together (seed paper
section 4.1, "Baseline"). On the mapped-DNN track the same defense is Madry-style PGD training: a random
start and more steps (``random_start=true``, ``steps=10``, ``step_size=0.01`` for images in [0, 1]).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

import qbench
from qbench import Defense, TrainingSchedule
from qbench.training import bim_examples, make_optimizer, train


@dataclass(frozen=True)
class AdversarialTrainingConfig:
    """Defaults: Lu et al. / Huang & Zhang's baseline: BIM, epsilon 0.15, 3 steps of 0.05, no random start."""

    epsilon: float = 0.15
    steps: int = 3
    step_size: float = 0.05
    random_start: bool = False

    def validate(self) -> None:
        if self.epsilon < 0 or self.steps < 1 or self.step_size <= 0:
            raise ValueError("epsilon >= 0, steps >= 1 and step_size > 0 are required")


class AdversarialTraining(Defense):
    """Each epoch: BIM examples of the training set against the current model, then train on clean + adversarial."""

    name = "adversarial_training"
    description = "quantum adversarial training (Lu et al. 2020): per epoch, train on clean + BIM examples"
    version = "1"
    tracks = ("qnn", "mapped-dnn")
    Config = AdversarialTrainingConfig

    def fit(self, model, data, schedule, ctx):
        c = self.config
        one_epoch = TrainingSchedule(1, schedule.lr, schedule.batch_size, schedule.optimizer)
        optimizer = make_optimizer(model, schedule)  # one optimiser, so Adam's moments carry across epochs
        with ctx.progress.task("adversarial training", total=schedule.epochs) as bar:
            for epoch in range(schedule.epochs):
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
                train(model, augmented, one_epoch, ctx, optimizer=optimizer, description=f"epoch {epoch + 1}")
                bar.advance()
        model.eval()
        return model


@qbench.hookimpl
def register_defenses(register) -> None:
    register(AdversarialTraining)
