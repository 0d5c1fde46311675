"""``noiseless-fgsm`` and ``noiseless-pgd``: the QNAD paper's threat model for the mapped-DNN track.

The adversary crafts FGSM or PGD on the noiseless DNN (the network before its hardware mapping, see
:func:`qbench.noiseless_source`) and the examples are evaluated on the noisy mapped model. Against a model
with no mapping they are plain FGSM / PGD. The adaptive counterparts are ``fgsm``/``pgd``/``apgd-*``
through the noisy mapping with EOT.
"""

from __future__ import annotations

from dataclasses import dataclass

import qbench
from qbench import Attack, noiseless_source
from qbench_plugins.attacks.fgsm import FGSM
from qbench_plugins.attacks.iterative import PGD, PGDConfig


@dataclass(frozen=True)
class NoiselessFGSMConfig:
    """No options beyond epsilon."""


class NoiselessFGSM(Attack):
    """FGSM crafted on the noiseless DNN, evaluated on the deployed (noisy) model."""

    name = "noiseless-fgsm"
    description = "FGSM crafted on the noiseless DNN, evaluated on the noisy mapping (QNAD's threat model)"
    version = "1"
    tracks = ("mapped-dnn",)
    threat = "transfer"
    Config = NoiselessFGSMConfig

    def generate(self, model, x, y, epsilon, ctx):
        return FGSM().generate(noiseless_source(model), x, y, epsilon, ctx)


class NoiselessPGD(Attack):
    """PGD crafted on the noiseless DNN, evaluated on the deployed (noisy) model."""

    name = "noiseless-pgd"
    description = "PGD crafted on the noiseless DNN, evaluated on the noisy mapping (QNAD's threat model)"
    version = "1"
    tracks = ("mapped-dnn",)
    threat = "transfer"
    Config = PGDConfig

    def generate(self, model, x, y, epsilon, ctx):
        return PGD(self.config).generate(noiseless_source(model), x, y, epsilon, ctx)


@qbench.hookimpl
def register_attacks(register) -> None:
    register(NoiselessFGSM)
    register(NoiselessPGD)
