"""``qnn``: the multi-layer variational classifier of Lu et al. 2020 used by Huang & Zhang 2023 (figure 3a).

Each of the P layers is a rotation unit (an arbitrary single-qubit rotation, ``qml.Rot``, on every qubit)
followed by an entangling unit (CNOTs between neighbours, closed into a ring on 3+ qubits). Inputs are
amplitude-encoded (features zero-padded to 2^n and normalised; at least 2 qubits) or angle-encoded (one
RX per feature). The readout is the Z-basis measurement of the first qubit(s).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import pennylane as qml
import torch

import qbench
from qbench import CircuitClassifier, DataSplit, Model
from qbench.contract.circuit_model import wires_for


@dataclass(frozen=True)
class QNNConfig:
    """Depth and encoding of the circuit (defaults: the seed paper: depth 10, amplitude encoding)."""

    n_layers: int = 10
    encoding: Literal["amplitude", "angle"] = "amplitude"
    dtype: Literal["float32", "float64"] = "float32"
    #: a trainable bias on the class log-probabilities (Schuld et al. 2020); False = the bare readout
    readout_bias: bool = True

    def validate(self) -> None:
        if self.n_layers < 1:
            raise ValueError("n_layers must be >= 1")


class LayeredQNN(CircuitClassifier):
    """P layers of Rot on every qubit + a CNOT ring, after an amplitude or angle encoding."""

    def __init__(self, n_features: int, n_classes: int, config: QNNConfig, generator: torch.Generator) -> None:
        n_wires = wires_for(n_features, config.encoding)
        super().__init__(n_wires, n_classes, config.n_layers, config.readout_bias)
        self.encoding = config.encoding
        self.n_features = n_features
        dtype = getattr(torch, config.dtype)
        init = torch.rand(config.n_layers, n_wires, 3, generator=generator, dtype=torch.float64, device=generator.device) * 2 * math.pi
        self.weights = torch.nn.Parameter(init.to(dtype))
        pairs = [(i, i + 1) for i in range(n_wires - 1)]
        if n_wires > 2:
            pairs.append((n_wires - 1, 0))
        # parameter-free gates are built once: constructing PennyLane operators costs ~27 us each
        self._entangler = [qml.CNOT(wires=list(p)) for p in pairs]
        self._views: tuple[torch.Tensor, ...] = ()

    def circuit(self, x: torch.Tensor) -> list:
        # one unbind per forward: scalar views of one base tensor, which the engine reads back in one step
        self._views = self.weights.reshape(-1).unbind()
        try:
            return super().circuit(x)
        finally:
            # views of this forward's weights only: a later layer() (the cached unitary's) reads them afresh,
            # so a weight tensor swapped in since (``param.data = ...``, ``module.to(...)``) is never missed
            self._views = ()

    def layer(self, index: int) -> list:
        v = self._views or self.weights.reshape(-1).unbind()
        base = index * self.n_wires * 3
        ops = [qml.Rot(v[base + 3 * q], v[base + 3 * q + 1], v[base + 3 * q + 2], wires=q) for q in range(self.n_wires)]
        return ops + self._entangler


class QNN(Model):
    """Multi-layer variational quantum classifier (rotation units + CNOT entangling units)."""

    name = "qnn"
    description = "multi-layer variational circuit, Rot + CNOT ring per layer, amplitude/angle encoding"
    version = "1"
    tracks = ("qnn",)
    Config = QNNConfig

    def build(self, data: DataSplit, ctx) -> torch.nn.Module:
        n_features = math.prod(data.input_shape)
        model = LayeredQNN(n_features, data.n_classes, self.config, ctx.generator)
        model.device_name = ctx.quantum_device
        return model


@qbench.hookimpl
def register_models(register) -> None:
    register(QNN)
