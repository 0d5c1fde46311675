"""``depolarizing``: depolarizing noise in the circuit as a defense (Du et al. 2021, Phys. Rev. Research 3, 023153).

A depolarizing channel of probability ``p`` on every qubit after each layer (``placement=layers``) or only
before the measurement (``placement=measurement``). By default the channel runs on the engine's trajectory
path (each forward samples Pauli insertions per example — unbiased, and as cheap as a pure state vector),
so the model is stochastic and attacked with EOT; ``exact=true`` uses the density matrix instead.
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
    """A depolarizing channel of probability ``p`` on every qubit after the chosen layers."""

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


@dataclass(frozen=True)
class DepolarizingConfig:
    """Channel probability, placement, and exact (density matrix) or sampled (trajectories) execution."""

    p: float = 0.05
    placement: Literal["layers", "measurement"] = "layers"
    exact: bool = False

    def validate(self) -> None:
        if not 0 <= self.p <= 1:
            raise ValueError("p must be in [0, 1]")


class DepolarizingNoise(Defense):
    """Depolarizing channels in the circuit (after each layer, or before measurement)."""

    name = "depolarizing"
    description = "depolarizing channels of probability p after each layer (Du et al. 2021)"
    version = "1"
    tracks = ("qnn",)
    Config = DepolarizingConfig

    def prepare(self, model, ctx):
        if not isinstance(model, CircuitClassifier):
            raise UsageError("depolarizing needs a circuit classifier (a qbench.CircuitClassifier model)")
        c = self.config
        last = model.n_layers - 1 if c.placement == "measurement" else None
        model.inserts.append(Depolarizing(c.p, last, sampled=not c.exact))
        model.method = "density" if c.exact else "trajectories"
        return model

    def describe(self, model) -> dict:
        return {"p": self.config.p, "placement": self.config.placement, "exact": self.config.exact}


@qbench.hookimpl
def register_defenses(register) -> None:
    register(DepolarizingNoise)
