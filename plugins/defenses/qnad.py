"""``qnad``: intrinsic hardware noise plus crosstalk injected on the critical weights (Kundu et al., HOST 2024).

QNAD's algorithm 1: rank the trained DNN's weights by ``|dL/dw|`` over a batch of training inputs, take the
top ``level`` fraction, and on each one's qubit insert ``k`` pairs of CNOTs with an available neighbour
(1 or 2 hops on the coupling map), whose extra error was characterised on qiskit-aer. Everything else is
``intrinsic_noise``.

The crosstalk level is chosen, unless given, on a validation set and never on the test split: a
seed-fixed subset of the *training* examples (the split has no separate validation part; the DNN has seen
these examples, which favours no level in particular), attacked with FGSM crafted on the noiseless DNN (the
seed's threat model) at ``select_epsilon``, by default the evaluation's own (largest) epsilon: 0.1 on
MNIST, 8/255 on CIFAR (until 2026-12-01 it was 0.1 everywhere, three times CIFAR's epsilon, where every level
left the validation set at chance and the choice was noise); the level with the best accuracy wins, ties
to the smaller level. The whole validation curve is stored with the result.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from art.attacks.evasion import FastGradientMethod

import qbench
from qbench import Defense, hardware
from qbench.contract.art_bridge import art_classifier, to_numpy_inputs
from qbench_plugins.defenses.hardware_options import HardwareConfig, characterisation, deploy_mapped


@dataclass(frozen=True)
class QNADConfig(HardwareConfig):
    """Crosstalk level (fraction of weights) or None to select it; CNOT pairs; the selection protocol."""

    level: float | None = None
    k: int = 4
    max_hops: int = 2
    levels: tuple[float, ...] = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2)
    #: the FGSM epsilon of the selection (None: the evaluation's largest epsilon, filled in by ``at_threat``)
    select_epsilon: float | None = None
    validation_size: int = 500
    importance_size: int = 512
    #: noise draws averaged per level when selecting
    select_repeats: int = 3

    def validate(self) -> None:
        super().validate()
        if self.level is not None and not 0 <= self.level <= 1:
            raise ValueError("level must be in [0, 1]")
        if self.k < 1 or self.max_hops not in (1, 2) or not self.levels or any(not 0 <= v <= 1 for v in self.levels):
            raise ValueError("k >= 1, max_hops 1 or 2, and levels in [0, 1] are required")
        negative = self.select_epsilon is not None and self.select_epsilon < 0
        if negative or self.validation_size < 1 or self.importance_size < 1 or self.select_repeats < 1:
            raise ValueError("select_epsilon >= 0 and positive sizes are required")


class QNAD(Defense):
    """Intrinsic noise + CNOT-pair crosstalk on the weights with the largest loss gradients."""

    name = "qnad"
    description = "QNAD: hardware noise + crosstalk on gradient-critical weights, level picked on validation"
    version = "1"
    tracks = ("mapped-dnn",)
    standard_training = True
    compare_with = ("intrinsic_noise",)

    def at_threat(self, epsilon: float) -> "QNAD":
        # the filled-in config is what cell keys hold: on MNIST (0.1) it equals the old default, so those
        # cells keep their keys; on CIFAR it changes, as the behaviour does
        if self.config.select_epsilon is not None:
            return self
        return type(self)(replace(self.config, select_epsilon=epsilon))
    Config = QNADConfig

    def deploy(self, model, data, ctx):
        c = self.config
        char = characterisation(c, ctx, ks=(c.k,))
        order = torch.randperm(len(data.x_train), generator=ctx.generator, device=ctx.generator.device)
        imp_idx = order[: c.importance_size]
        x_imp, y_imp = data.x_train[imp_idx], data.y_train[imp_idx]

        def mapped_at(level: float):
            plan = hardware.qnad_crosstalk(model, x_imp, y_imp, char, level, c.k, c.max_hops) if level > 0 else None
            return deploy_mapped(model, char, c, data, ctx, crosstalk=plan), plan

        curve = None
        level = c.level
        if level is None:
            val_idx = order[-c.validation_size :]
            curve = self._validation_curve(model, data.x_train[val_idx], data.y_train[val_idx], mapped_at, ctx)
            level = max(curve, key=lambda row: (row["accuracy"], -row["level"]))["level"]
        mapped, plan = mapped_at(level)
        mapped.qnad_report = {
            "level": level,
            "selected_on": "validation" if curve is not None else "given",
            "validation_curve": curve,
            "crosstalk": plan.summary() if plan is not None else None,
        }
        return mapped

    def _validation_curve(self, model, x, y, mapped_at, ctx) -> list[dict]:
        c = self.config
        if c.select_epsilon is None:
            raise ValueError("qnad: select_epsilon unset (the plan fills it from its epsilons; pass it to select alone)")
        ctx_val = ctx.child("qnad-validation")
        ctx_val.data = ctx.data
        classifier = art_classifier(model, ctx_val, n_eot=1)
        x_np, y_np = to_numpy_inputs(x, y, ctx.data.n_classes)
        x_adv = torch.from_numpy(FastGradientMethod(classifier, eps=c.select_epsilon, batch_size=256).generate(x_np, y=y_np)).to(x)
        curve = []
        with ctx.progress.task("qnad: choosing the crosstalk level on validation data", total=len(c.levels)) as bar:
            for level in c.levels:
                mapped, plan = mapped_at(level)
                with torch.no_grad():
                    acc = sum(float((mapped(x_adv).argmax(1) == y).float().mean()) for _ in range(c.select_repeats))
                curve.append({
                    "level": level,
                    "accuracy": acc / c.select_repeats,
                    "affected_fraction": plan.affected_fraction if plan is not None else 0.0,
                })
                bar.advance()
        return curve

    def describe(self, model) -> dict:
        report = getattr(model, "qnad_report", {})
        return {"backend": self.config.backend, "k": self.config.k, **report}


@qbench.hookimpl
def register_defenses(register) -> None:
    register(QNAD)
