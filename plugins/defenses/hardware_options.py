"""Options shared by the defenses that run a trained DNN through an IBM backend's noise (DESIGN section 7)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from qbench import attach_noiseless_source, hardware
from qbench.contract.config import added_later


@dataclass(frozen=True)
class HardwareConfig:
    """Which backend, how its read-back is characterised, and what is mapped onto qubits."""

    backend: str = hardware.DEFAULT_BACKEND
    shots: int = hardware.DEFAULT_SHOTS
    grid: int = hardware.DEFAULT_GRID
    repeats: int = hardware.DEFAULT_REPEATS
    weights: bool = True
    activations: bool = True
    #: training examples whose noisy forwards re-estimate the batch-norm statistics on the device (0: keep
    #: the noiseless ones); a model without batch norm is unaffected (:mod:`qbench.hardware.batch_norm`)
    batch_norm_examples: int = added_later(2560)

    def validate(self) -> None:
        if self.shots < 1 or self.grid < 3 or self.repeats < 2:
            raise ValueError("shots >= 1, grid >= 3 and repeats >= 2 are required")
        if self.batch_norm_examples < 0:
            raise ValueError("batch_norm_examples must be >= 0")
        hardware.canonical_backend_name(self.backend)


def characterisation(config: HardwareConfig, ctx, ks: tuple[int, ...] = ()) -> "hardware.Characterisation":
    """The backend's characterisation (cached under the run's cache folder).

    Always with the default CNOT-pair counts plus ``ks``, so ``intrinsic_noise`` and ``qnad`` share one
    cached characterisation (its intrinsic part is the same circuit).
    """
    ks = tuple(sorted(set(hardware.DEFAULT_KS) | set(ks)))
    cache = ctx.cache_dir / "hardware" if ctx.cache_dir else None
    with ctx.progress.task(f"characterising {config.backend} on qiskit-aer (cached)", total=None):
        return hardware.characterise(
            config.backend, grid=config.grid, shots=config.shots, repeats=config.repeats, ks=ks, cache_dir=cache
        )


def deploy_mapped(model: torch.nn.Module, char: "hardware.Characterisation", config: HardwareConfig, data, ctx,
                  crosstalk: "hardware.CrosstalkPlan | None" = None) -> "hardware.MappedModel":
    """``model`` mapped onto the characterised backend, its batch norms (if any) recalibrated on the device.

    The recalibration's examples (a seed-fixed subset of the training split) and its noise come from a
    child of ``ctx``, so they are the same for every crosstalk level and draw nothing from ``ctx`` itself.
    """
    mapped = hardware.map_to_hardware(model, char, weights=config.weights, activations=config.activations,
                                      crosstalk=crosstalk)
    attach_noiseless_source(mapped, model)  # not a submodule: the recalibration below must not reach it
    if config.batch_norm_examples and hardware.batch_norm_layers(mapped):
        child = ctx.child("batch-norm-recalibration")
        order = torch.randperm(len(data.x_train), generator=child.generator, device=child.generator.device)
        order = order[: config.batch_norm_examples]
        hardware.recalibrate_batch_norm(mapped, data.x_train[order], generator=child.generator)
    return mapped
