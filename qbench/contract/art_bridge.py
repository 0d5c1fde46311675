"""The bridge to the Adversarial Robustness Toolbox: a qbench model as an ART ``PyTorchClassifier``.

Attack plugins call :func:`art_classifier` and hand the result to ART's attack classes. For a stochastic
model the classifier's loss, loss gradient and class gradients are means over ``n_eot`` forward samples
(expectation over transformation, Athalye et al. 2018): ``n_eot`` separate forwards, each drawing fresh
noise (per example and per weight read-back alike).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from art.estimators.classification import PyTorchClassifier
from art.metrics.gradient_check import loss_gradient_check

from qbench.contract.model import is_stochastic


@dataclass(frozen=True)
class EOTOption:
    """Config mix-in for gradient attacks: EOT samples per gradient on a stochastic model.

    ``None`` takes the run's ``--n-eot``; ``1`` gives the plain single-sample gradient a paper's own
    protocol may have used. Subclasses that define ``validate`` call ``super().validate()``.
    """

    n_eot: int | None = None

    def validate(self) -> None:
        if self.n_eot is not None and self.n_eot < 1:
            raise ValueError("n_eot must be >= 1")

if TYPE_CHECKING:
    from qbench.contract.context import Context


class EOTPyTorchClassifier(PyTorchClassifier):
    """ART's PyTorchClassifier whose loss, loss gradient and class gradients average ``n_eot`` forwards.

    The samples are ``n_eot`` separate forwards of the batch, not one forward of the batch tiled ``n_eot``
    times: a model that draws noise per forward rather than per example (the mapped-DNN track's weight
    read-back noise) would otherwise share one draw across all copies, and the "expectation" would be one
    sample. Separate forwards also keep each batch the size the model was written for.
    """

    def __init__(self, *args, n_eot: int = 1, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.n_eot = n_eot

    def _average(self, compute):
        total = compute()
        for _ in range(self.n_eot - 1):
            total = total + compute()
        return total / self.n_eot

    def loss_gradient(self, x, y, training_mode: bool = False, **kwargs):
        if self.n_eot <= 1:
            return super().loss_gradient(x, y, training_mode=training_mode, **kwargs)
        return self._average(lambda: super(EOTPyTorchClassifier, self).loss_gradient(
            x, y, training_mode=training_mode, **kwargs))

    def compute_loss(self, x, y, reduction: str = "none", **kwargs):
        """The loss per example averaged over ``n_eot`` forward samples, then reduced by ``reduction``.

        ART's APGD decides its step sizes and its best iterate from this loss; one noisy forward would
        make those decisions on a single sample of a stochastic model.
        """
        if self.n_eot <= 1:
            return super().compute_loss(x, y, reduction=reduction, **kwargs)
        if reduction not in ("none", "mean", "sum"):
            raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
        per_example = self._average(lambda: super(EOTPyTorchClassifier, self).compute_loss(
            x, y, reduction="none", **kwargs))
        if reduction == "mean":
            return per_example.mean()
        if reduction == "sum":
            return per_example.sum()
        return per_example

    def class_gradient(self, x, label=None, training_mode: bool = False, **kwargs):
        if self.n_eot <= 1:
            return super().class_gradient(x, label=label, training_mode=training_mode, **kwargs)
        return self._average(lambda: super(EOTPyTorchClassifier, self).class_gradient(
            x, label=label, training_mode=training_mode, **kwargs))


class BPDA(torch.nn.Module):
    """Backward-pass differentiable approximation (Athalye et al. 2018) of a deployed model.

    A defense whose forward has non-differentiable parts (quantisation, sampling of a discrete code, a
    detached stage) may declare their differentiable approximation by setting ``bpda`` on the deployed
    module: a module with the same inputs and outputs. Gradient attacks then see the real forward's values
    and the approximation's gradient (straight-through: ``approx(x) + (model(x) - approx(x)).detach()``).
    """

    def __init__(self, model: torch.nn.Module, approximation: torch.nn.Module) -> None:
        super().__init__()
        self.model, self.approximation = model, approximation
        self.stochastic = is_stochastic(model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        approx = self.approximation(x)
        return approx + (self.model(x) - approx).detach()


def declared_bpda(model: torch.nn.Module) -> torch.nn.Module | None:
    """The differentiable approximation a deployed model declares (its ``bpda`` attribute), if any."""
    approximation = getattr(model, "bpda", None)
    return approximation if isinstance(approximation, torch.nn.Module) else None


def art_classifier(model: torch.nn.Module, ctx: "Context", n_eot: int | None = None) -> PyTorchClassifier:
    """Wrap ``model`` (logits ``(N, C)``) for ART with the cell's domain bounds.

    ``n_eot`` defaults to ``ctx.n_eot`` for a stochastic model and 1 otherwise; pass 1 to get the plain
    (non-adaptive) gradient of a stochastic model, as a paper's own protocol may.
    """
    if ctx.data is None:
        raise ValueError("the context carries no dataset split; the runner sets ctx.data for attack cells")
    if n_eot is None:
        n_eot = ctx.n_eot if is_stochastic(model) else 1
    approximation = declared_bpda(model)
    if approximation is not None:
        model = BPDA(model, approximation)
    return EOTPyTorchClassifier(
        model=model,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=tuple(ctx.data.input_shape),
        nb_classes=ctx.data.n_classes,
        clip_values=ctx.data.domain.clip_values,
        device_type=art_device_type(ctx.device),
        n_eot=n_eot,
    )


def art_device_type(device: torch.device) -> str:
    """ART's name for ``device``: "gpu" (its current CUDA device, which the task has set) or "cpu"."""
    return "gpu" if device.type == "cuda" else "cpu"


class DomainProjection:
    """Mixin for ART's gradient attacks (FastGradientMethod, ProjectedGradientDescentNumpy): after every
    iteration's step and epsilon-ball projection, project the iterate into the dataset's domain.

    ART clips to box bounds itself; a quantum-state domain also needs the renormalisation onto the unit
    sphere (Lu et al.'s projection) inside every iteration, which ART has no hook for but ``_compute``,
    the method its FGSM/BIM/PGD/MIM loops call once per step.
    """

    qbench_domain = None

    def _compute(self, *args, **kwargs):  # ART's per-iteration step
        x_adv = super()._compute(*args, **kwargs)
        if self.qbench_domain is None or self.qbench_domain.kind != "sphere":
            return x_adv
        return self.qbench_domain.project(torch.from_numpy(np.ascontiguousarray(x_adv))).cpu().numpy()


def with_domain(attack_cls: type, ctx: "Context") -> type:
    """A subclass of an ART attack class that projects every iterate into ``ctx.data.domain``."""
    return type(f"DomainProjected{attack_cls.__name__}", (DomainProjection, attack_cls), {"qbench_domain": ctx.data.domain})


def to_numpy_inputs(x: torch.Tensor, y: torch.Tensor, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs as float32 and labels as one-hot, the forms ART's attacks take without guessing."""
    return x.detach().cpu().numpy().astype(np.float32), np.eye(n_classes, dtype=np.float32)[y.cpu().numpy()]


def eot_estimator_like(
    estimator: PyTorchClassifier, n_eot: int, cls: type[EOTPyTorchClassifier] = EOTPyTorchClassifier,
) -> EOTPyTorchClassifier:
    """An EOT copy (of class ``cls``) of an ART classifier an attack built internally (APGD swaps in its
    own loss)."""
    copy = cls(
        model=estimator.model,
        loss=estimator._loss,
        input_shape=estimator.input_shape,
        nb_classes=estimator.nb_classes,
        clip_values=estimator.clip_values,
        device_type=art_device_type(estimator.device),
        n_eot=n_eot,
    )
    for flag in ("_reduce_labels", "_int_labels", "_probability_labels"):
        setattr(copy, flag, getattr(estimator, flag))
    return copy


def gradient_check(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: "Context") -> dict[str, float]:
    """Fractions of examples whose loss gradient w.r.t. the input is all zero, has a NaN or an infinity.

    ART's ``loss_gradient_check`` on the classifier the attacks use (EOT gradients for stochastic models).
    """
    if len(x) == 0:
        return {"zero": 0.0, "nan": 0.0, "inf": 0.0, "n": 0}
    x_np, y_np = to_numpy_inputs(x, y, ctx.data.n_classes)
    bad = loss_gradient_check(art_classifier(model, ctx), x_np, y_np, verbose=False)
    return {"zero": float(bad[:, 0].mean()), "nan": float(bad[:, 1].mean()), "inf": float(bad[:, 2].mean()), "n": len(x)}
