"""The defense contract: architecture change, training procedure and inference rule, all optional."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch

from qbench.component import Component

if TYPE_CHECKING:
    from qbench.context import Context
    from qbench.dataset import DataSplit, TrainingSchedule


class Defense(Component):
    """A registered defense. Every method has a neutral default, so ``Defense`` itself is "no defense".

    The runner calls, per (dataset, model, seed): ``prepare`` on the freshly built model, ``fit`` to train
    it, then for every test batch ``predict`` (clean and adversarial). Attacks see the prepared model's
    forward, so a randomised defense must put its randomness in the forward (and set the module's
    ``stochastic`` flag) for EOT to see it.
    """

    kind: ClassVar[str] = "defense"

    def prepare(self, model: torch.nn.Module, ctx: "Context") -> torch.nn.Module:
        """Change the architecture (noise layers, channels, a hardware mapping). Default: unchanged."""
        return model

    def fit(
        self, model: torch.nn.Module, data: "DataSplit", schedule: "TrainingSchedule", ctx: "Context"
    ) -> torch.nn.Module:
        """Train the prepared model. Default: standard training (:func:`qbench.training.train`)."""
        from qbench.training import train

        return train(model, data, schedule, ctx)

    def predict(self, model: torch.nn.Module, x: torch.Tensor, ctx: "Context") -> torch.Tensor:
        """Predicted labels for ``x``. Default: argmax of the logits, without gradients."""
        with torch.no_grad():
            return model(x).argmax(dim=1)

    def describe(self, model: torch.nn.Module) -> dict[str, Any]:
        """Facts about the trained defense worth storing with the result (e.g. learned noise scales)."""
        return {}
