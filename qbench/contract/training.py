"""Standard training, the loop every defense's ``fit`` starts from (public API for plugins).

A defense that changes only the loss (adversarial training, a combined loss, augmentation on the fly)
passes ``batch_loss``; the loop, the optimiser, the batching and the progress bar stay the same, so
training cost is comparable across defenses.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable

import torch
import torch.nn.functional as F

from qbench.contract.augmentation import crop_flip
from qbench.contract.checkpoint import resumable_epochs
from qbench.errors import ConfigError

if TYPE_CHECKING:
    from qbench.contract.context import Context
    from qbench.contract.dataset import DataSplit, TrainingSchedule

BatchLoss = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor, int], torch.Tensor]


def cross_entropy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epoch: int) -> torch.Tensor:
    """Mean cross-entropy of the model's logits (for a quantum classifier: the quantum cross-entropy)."""
    return F.cross_entropy(model(x), y)


def make_optimizer(model: torch.nn.Module, schedule: "TrainingSchedule") -> torch.optim.Optimizer:
    """The schedule's optimiser over the model's trainable parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    if schedule.optimizer == "adam":
        return torch.optim.Adam(params, lr=schedule.lr)
    if schedule.optimizer in ("sgd", "sgd-nesterov"):
        return torch.optim.SGD(params, lr=schedule.lr, momentum=0.9, weight_decay=5e-4,
                               nesterov=schedule.optimizer == "sgd-nesterov")
    raise ConfigError(f"unknown optimizer {schedule.optimizer!r} (adam, sgd, sgd-nesterov)")


def scheduled_lr(schedule: "TrainingSchedule", progress: float) -> float:
    """The learning rate once ``progress`` (a fraction in [0, 1]) of the schedule's epochs are done."""
    if schedule.lr_decay == "cosine":
        return schedule.lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    return schedule.lr


def train(
    model: torch.nn.Module,
    data: "DataSplit",
    schedule: "TrainingSchedule",
    ctx: "Context",
    batch_loss: BatchLoss = cross_entropy,
    description: str = "training",
    optimizer: torch.optim.Optimizer | None = None,
    epoch_offset: int = 0,
    total_epochs: int | None = None,
) -> torch.nn.Module:
    """Train ``model`` on ``data.x_train`` for ``schedule.epochs`` epochs of shuffled mini-batches.

    Shuffling (and the schedule's augmentation) uses ``ctx.generator`` only, so the same seed gives the same
    weights. Pass ``optimizer`` to continue with an existing optimiser (its state carries over), e.g. when
    the data changes per epoch; a defense that calls this one epoch at a time passes ``epoch_offset`` (the
    epochs done) and ``total_epochs`` (its whole schedule's), so that a decaying learning rate follows the
    whole schedule rather than restarting every epoch.
    Under a runner the epochs are checkpointed (``ctx.checkpoint``, :mod:`qbench.contract.checkpoint`): a
    stopped training resumes after its last saved epoch with the weights an uninterrupted run would reach.
    """
    optimizer = optimizer or make_optimizer(model, schedule)
    x, y = data.x_train, data.y_train
    n = x.shape[0]
    batches_per_epoch = (n + schedule.batch_size - 1) // schedule.batch_size
    total = total_epochs or schedule.epochs
    model.train()
    with ctx.progress.task(description, total=schedule.epochs * batches_per_epoch) as bar:
        done = 0
        for epoch in resumable_epochs(ctx, schedule.epochs, model=model, optimizer=optimizer):
            bar.advance((epoch - done) * batches_per_epoch)  # epochs a resumed checkpoint had done
            done = epoch + 1
            order = torch.randperm(n, generator=ctx.generator, device=ctx.generator.device)
            for batch, start in enumerate(range(0, n, schedule.batch_size)):
                idx = order[start : start + schedule.batch_size]
                xb = x[idx]
                if schedule.augment == "crop-flip":
                    xb = crop_flip(xb, ctx.generator)
                if schedule.lr_decay != "constant":
                    lr = scheduled_lr(schedule, (epoch_offset + epoch + batch / batches_per_epoch) / total)
                    for group in optimizer.param_groups:
                        group["lr"] = lr
                optimizer.zero_grad(set_to_none=True)
                loss = batch_loss(model, xb, y[idx], epoch)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"training loss became {loss.item()} at epoch {epoch}")
                loss.backward()
                optimizer.step()
                bar.advance()
    model.eval()
    return model


def bim_examples(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    epsilon: float,
    steps: int,
    step_size: float,
    domain,
    random_start: bool = False,
) -> torch.Tensor:
    """L-inf BIM/PGD adversarial examples for *training* (the inner maximisation of adversarial training).

    Written here rather than called through ART because it must run inside the training loop with the
    model in its current mode (a noise layer active in training draws noise at every step, seed paper eq.
    8) and without numpy round trips at every batch. Evaluation attacks go through ART.
    """
    was_training = model.training
    # only d loss / d input is needed: freezing the parameters keeps the circuit's matrix construction
    # out of the autograd graph, which halves the cost of each step for a quantum model
    frozen = [p for p in model.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        return _bim_steps(model, x, y, epsilon, steps, step_size, domain, random_start)
    finally:
        for p in frozen:
            p.requires_grad_(True)
        model.train(was_training)


def _bim_steps(model, x, y, epsilon, steps, step_size, domain, random_start) -> torch.Tensor:
    x0 = x.detach()
    adv = x0.clone()
    if random_start:
        adv = domain.project(adv + (torch.rand_like(adv) * 2 - 1) * epsilon)
    for _ in range(steps):
        adv.requires_grad_(True)
        loss = F.cross_entropy(model(adv), y)
        (grad,) = torch.autograd.grad(loss, adv)
        with torch.no_grad():
            adv = adv + step_size * grad.sign()
            adv = torch.max(torch.min(adv, x0 + epsilon), x0 - epsilon)
            adv = domain.project(adv)
    return adv.detach()
