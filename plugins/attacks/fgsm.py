"""``fgsm``: the fast gradient sign method (Goodfellow et al. 2015) through ART's ``FastGradientMethod``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from art.attacks.evasion import FastGradientMethod

import qbench
from qbench import Attack, art_classifier


@dataclass(frozen=True)
class FGSMConfig:
    """FGSM has no options beyond epsilon, which the protocol sets per cell."""


class FGSM(Attack):
    """One signed-gradient step of size epsilon (L-infinity), then the projection into the domain."""

    name = "fgsm"
    description = "fast gradient sign method, one L-inf step (ART FastGradientMethod)"
    version = "1"
    tracks = ("qnn", "mapped-dnn")
    threat = "white-box"
    Config = FGSMConfig

    def generate(self, model, x: torch.Tensor, y: torch.Tensor, epsilon: float, ctx) -> torch.Tensor:
        classifier = art_classifier(model, ctx)
        attack = FastGradientMethod(classifier, norm="inf", eps=epsilon, targeted=False, batch_size=len(x))
        x_np = x.detach().cpu().numpy().astype("float32")
        onehot = np.eye(ctx.data.n_classes, dtype="float32")[y.numpy()]
        adv = torch.from_numpy(attack.generate(x_np, y=onehot)).to(x.dtype)
        return ctx.data.domain.project(adv)


@qbench.hookimpl
def register_attacks(register) -> None:
    register(FGSM)
