"""The defense contract: architecture change, training procedure and inference rule, all optional."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch

from qbench.contract.component import Component

if TYPE_CHECKING:
    from qbench.contract.context import Context
    from qbench.contract.dataset import DataSplit, TrainingSchedule


class Defense(Component):
    """A registered defense. Every method has a neutral default, so ``Defense`` itself is "no defense".

    The runner calls, per (dataset, model, seed): ``prepare`` on the freshly built model, ``fit`` to train
    it (weights are cached after this), ``deploy`` on the trained model, then ``predict`` for every test
    batch (clean and adversarial). Attacks see what ``deploy`` returns (its forward), so a randomised
    defense must put its randomness in the forward (and set the module's ``stochastic`` flag) for EOT to
    see it, and a defense with a non-differentiable part may declare its differentiable approximation by
    setting ``bpda`` on the deployed module (:class:`qbench.contract.art_bridge.BPDA`).
    """

    kind: ClassVar[str] = "defense"
    #: True when ``prepare`` and ``fit`` are the standard ones (the defense acts only in ``deploy`` and
    #: ``predict``): the runner then shares the trained weights with every other such defense
    standard_training: ClassVar[bool] = False
    #: other defenses ``qbench evaluate`` shows next to this one (besides the undefended model), e.g. the
    #: ablation it builds on
    compare_with: ClassVar[tuple[str, ...]] = ()

    def prepare(self, model: torch.nn.Module, ctx: "Context") -> torch.nn.Module:
        """Change the architecture (noise layers, channels, a hardware mapping). Default: unchanged."""
        return model

    def fit(
        self, model: torch.nn.Module, data: "DataSplit", schedule: "TrainingSchedule", ctx: "Context"
    ) -> torch.nn.Module:
        """Train the prepared model. Default: standard training (:func:`qbench.contract.training.train`)."""
        from qbench.contract.training import train

        return train(model, data, schedule, ctx)

    def deploy(self, model: torch.nn.Module, data: "DataSplit", ctx: "Context") -> torch.nn.Module:
        """Change the trained model for inference (a hardware mapping, crosstalk on critical weights).

        Called after training and after cached weights are loaded; what it does is not cached, so it must
        be deterministic given ``ctx``. Default: unchanged.
        """
        return model

    def predict(self, model: torch.nn.Module, x: torch.Tensor, ctx: "Context") -> torch.Tensor:
        """Predicted labels for ``x`` under the board's readout (``ctx.shots``).

        Default: a quantum classifier is measured ``ctx.shots`` times and the most frequent class wins
        (exact probabilities when ``ctx.shots`` is None); a classical model predicts the argmax of its
        logits. A defense with its own inference rule must keep within the same measurement budget
        (DESIGN section 4, equal readout). Randomness must come from torch's global generator, which the
        runner seeds per evaluation draw.
        """
        from qbench.contract.readout import measure

        return measure(model, x, ctx.shots)

    def at_threat(self, epsilon: float) -> "Defense":
        """This defense configured for an evaluation at radius ``epsilon`` (the plan's largest).

        Called when a plan is made, so the result is part of the training's cache key. Defenses whose
        training depends on the threat model (adversarial training "at the evaluation epsilon") return a
        copy with that filled in. Default: unchanged.
        """
        return self

    def describe(self, model: torch.nn.Module) -> dict[str, Any]:
        """Facts about the trained defense worth storing with the result (e.g. learned noise scales)."""
        return {}
