"""The bridge to the Adversarial Robustness Toolbox: a qbench model as an ART ``PyTorchClassifier``.

Attack plugins call :func:`art_classifier` and hand the result to ART's attack classes. For a stochastic
model the classifier's loss gradient is the mean over ``n_eot`` forward samples (expectation over
transformation, Athalye et al. 2018): the batch is tiled ``n_eot`` times and run in one forward, since
every forward draws fresh noise per example.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from art.estimators.classification import PyTorchClassifier

from qbench.model import is_stochastic

if TYPE_CHECKING:
    from qbench.context import Context


class EOTPyTorchClassifier(PyTorchClassifier):
    """ART's PyTorchClassifier whose loss and class gradients average ``n_eot`` stochastic forwards."""

    def __init__(self, *args, n_eot: int = 1, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.n_eot = n_eot

    def _tiled(self, x: np.ndarray) -> np.ndarray:
        return np.concatenate([x] * self.n_eot, axis=0)

    def _mean(self, grads: np.ndarray, n: int) -> np.ndarray:
        return grads.reshape(self.n_eot, n, *grads.shape[1:]).mean(axis=0)

    def loss_gradient(self, x, y, training_mode: bool = False, **kwargs):
        if self.n_eot <= 1:
            return super().loss_gradient(x, y, training_mode=training_mode, **kwargs)
        n = x.shape[0]
        is_tensor = isinstance(x, torch.Tensor)
        xt = torch.cat([x] * self.n_eot) if is_tensor else self._tiled(x)
        yt = torch.cat([y] * self.n_eot) if isinstance(y, torch.Tensor) else np.concatenate([y] * self.n_eot)
        grads = super().loss_gradient(xt, yt, training_mode=training_mode, **kwargs)
        if is_tensor:
            return grads.reshape(self.n_eot, n, *grads.shape[1:]).mean(dim=0)
        return self._mean(grads, n)

    def class_gradient(self, x, label=None, training_mode: bool = False, **kwargs):
        if self.n_eot <= 1:
            return super().class_gradient(x, label=label, training_mode=training_mode, **kwargs)
        n = x.shape[0]
        if label is not None and not isinstance(label, (int, np.integer)):
            label = np.concatenate([np.asarray(label)] * self.n_eot)
        grads = super().class_gradient(self._tiled(x), label=label, training_mode=training_mode, **kwargs)
        return self._mean(grads, n)


def art_classifier(model: torch.nn.Module, ctx: "Context", n_eot: int | None = None) -> PyTorchClassifier:
    """Wrap ``model`` (logits ``(N, C)``) for ART with the cell's domain bounds.

    ``n_eot`` defaults to ``ctx.n_eot`` for a stochastic model and 1 otherwise; pass 1 to get the plain
    (non-adaptive) gradient of a stochastic model, as a paper's own protocol may.
    """
    if ctx.data is None:
        raise ValueError("the context carries no dataset split; the runner sets ctx.data for attack cells")
    if n_eot is None:
        n_eot = ctx.n_eot if is_stochastic(model) else 1
    dtype = next(model.parameters()).dtype if any(True for _ in model.parameters()) else torch.float32
    return EOTPyTorchClassifier(
        model=model,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=tuple(ctx.data.input_shape),
        nb_classes=ctx.data.n_classes,
        clip_values=ctx.data.domain.clip_values,
        device_type="cpu",
        n_eot=n_eot,
    )
