"""``intrinsic_noise``: the trained DNN executed through the noise of an IBM backend (QNAD's "inherent noise").

Training is standard (shared with ``none``); at deployment every weight and every MAC result is encoded
on a physical qubit of the backend and read back with the noise characterised on qiskit-aer (see
:mod:`qbench.hardware`), and a model's batch-norm statistics, if it has any, are re-measured through that
noise (:mod:`qbench.hardware.batch_norm`). The forward is random, so adaptive attacks use EOT through the mapping.
"""

from __future__ import annotations

from dataclasses import dataclass

import qbench
from qbench import Defense
from qbench_plugins.defenses.hardware_options import HardwareConfig, characterisation, deploy_mapped


@dataclass(frozen=True)
class IntrinsicNoiseConfig(HardwareConfig):
    """The backend and characterisation options (defaults: ibm_nairobi, 1024 shots)."""


class IntrinsicNoise(Defense):
    """Inference through the backend's calibrated noise, no crosstalk."""

    name = "intrinsic_noise"
    description = "DNN MACs read back through ibm_nairobi's calibrated noise (QNAD's inherent-noise case)"
    version = "1"
    tracks = ("mapped-dnn",)
    standard_training = True
    Config = IntrinsicNoiseConfig

    def deploy(self, model, data, ctx):
        return deploy_mapped(model, characterisation(self.config, ctx), self.config, data, ctx)

    def describe(self, model) -> dict:
        return {"backend": self.config.backend, "shots": self.config.shots}


@qbench.hookimpl
def register_defenses(register) -> None:
    register(IntrinsicNoise)
