"""``depolarizing``: depolarizing noise in the circuit as a defense (Du et al. 2021, Phys. Rev. Research 3, 023153).

A depolarizing channel of probability ``p`` on every qubit after each layer (``placement=layers``) or only
before the measurement (``placement=measurement``).

Du et al.'s defense is the channel itself, so the deployed model is the channel: ``deploy`` switches the
circuit to the engine's exact density-matrix execution. Its forward is deterministic and exact: attacks
see the exact channel (no EOT is needed), and the deployed prediction is the board's readout of the
channel's class probabilities (``ctx.shots`` single shots, or the exact probabilities), like every other
defense's. (Version 1 deployed one sampled Pauli trajectory per forward: a random circuit, not the channel,
whose clean prediction was right in all repetitions only 5-14% of the time.)

Training runs by default on the engine's trajectory path (each forward samples Pauli insertions per
example: an unbiased estimate of the channel's output, as cheap as a pure state vector); ``exact=true``
trains on the exact channel (the density matrix) too, at the density matrix's cost (B x 4^n amplitudes).
Winderl, Franco & Lorenz (arXiv 2311.17458) report that the robustness argument does not carry over to
multi-class problems; qbench's numbers on binary tasks should be read with that in mind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pennylane as qml

import qbench
from qbench import CircuitClassifier, Defense, LayerInsert, UsageError


class Depolarizing(LayerInsert):
    """A depolarizing channel of probability ``p`` on every qubit after the chosen layers.

    ``stochastic`` says whether the circuit samples the channel (Pauli trajectories) rather than applying
    it exactly (density matrix); the owner sets it together with the model's ``method``.
    """

    position = "after"

    def __init__(self, p: float, last_layer_only: int | None, sampled: bool) -> None:
        super().__init__()
        self.p = p
        self.last_layer_only = last_layer_only
        self.stochastic = sampled

    def ops(self, layer: int, batch_size: int, wires, dtype) -> list:
        if self.last_layer_only is not None and layer != self.last_layer_only:
            return []
        return [qml.DepolarizingChannel(self.p, wires=w) for w in wires]


def use_density(model: CircuitClassifier, exact: bool) -> None:
    """Run ``model``'s channels exactly (density matrix) or sampled (one Pauli trajectory per example)."""
    model.method = "density" if exact else "trajectories"
    for insert in model.inserts:
        if isinstance(insert, Depolarizing):
            insert.stochastic = not exact


@dataclass(frozen=True)
class DepolarizingConfig:
    """Channel probability, placement, and whether training too runs the exact channel (density matrix).

    The deployed model always runs the exact channel; ``exact=false`` (default) trains on sampled Pauli
    trajectories, ``exact=true`` on the density matrix.
    """

    p: float = 0.05
    placement: Literal["layers", "measurement"] = "layers"
    exact: bool = False

    def validate(self) -> None:
        if not 0 <= self.p <= 1:
            raise ValueError("p must be in [0, 1]")


class DepolarizingNoise(Defense):
    """Depolarizing channels in the circuit (after each layer, or before measurement); deployed exactly."""

    name = "depolarizing"
    description = "depolarizing channels of probability p after each layer, deployed exactly (Du et al. 2021)"
    #: 2: the deployed model runs the exact channel (density matrix), not one sampled trajectory
    version = "2"
    tracks = ("qnn",)
    Config = DepolarizingConfig

    def prepare(self, model, ctx):
        if not isinstance(model, CircuitClassifier):
            raise UsageError("depolarizing needs a circuit classifier (a qbench.CircuitClassifier model)")
        c = self.config
        last = model.n_layers - 1 if c.placement == "measurement" else None
        model.inserts.append(Depolarizing(c.p, last, sampled=not c.exact))
        use_density(model, c.exact)
        return model

    def deploy(self, model, data, ctx):
        """The exact channel: density-matrix execution, a deterministic forward."""
        use_density(model, True)
        return model

    def describe(self, model) -> dict:
        return {
            "p": self.config.p, "placement": self.config.placement, "exact": self.config.exact,
            "trained_on": "density" if self.config.exact else "trajectories", "deployed": "density",
        }


@qbench.hookimpl
def register_defenses(register) -> None:
    register(DepolarizingNoise)
