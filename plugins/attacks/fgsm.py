"""``fgsm``: the fast gradient sign method (Goodfellow et al. 2015) through ART's ``FastGradientMethod``."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from art.attacks.evasion import FastGradientMethod

import qbench
from qbench import Attack
from qbench.contract.art_bridge import art_classifier, to_numpy_inputs, with_domain


@dataclass(frozen=True)
class FGSMConfig:
    """FGSM has no options beyond epsilon, which the protocol sets per cell."""


class FGSM(Attack):
    """One signed-gradient step of size epsilon (L-infinity), projected into the domain."""

    name = "fgsm"
    description = "fast gradient sign method, one L-inf step (ART FastGradientMethod)"
    version = "1"
    tracks = ("qnn", "mapped-dnn")
    threat = "white-box"
    iterative = False
    Config = FGSMConfig

    def generate(self, model, x: torch.Tensor, y: torch.Tensor, epsilon: float, ctx) -> torch.Tensor:
        classifier = art_classifier(model, ctx)
        attack = with_domain(FastGradientMethod, ctx)(classifier, norm="inf", eps=epsilon, batch_size=len(x))
        x_np, y_np = to_numpy_inputs(x, y, ctx.data.n_classes)
        adv = torch.from_numpy(attack.generate(x_np, y=y_np)).to(x)
        return ctx.data.domain.project(adv)


@qbench.hookimpl
def register_attacks(register) -> None:
    register(FGSM)
