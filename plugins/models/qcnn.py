"""``qcnn``: a quantum convolutional neural network in the style of Cong et al. 2019 (seed paper figure 3b).

Each stage is a convolution — the same two-qubit block on neighbouring pairs of the active qubits, first
on even then on odd pairs (weights shared within the stage, as in Cong et al.) — followed by pooling,
which entangles each discarded qubit into its kept partner (``Rot`` on both, ``CNOT``, ``Rot`` on the kept
one) and drops the discarded one. 8 qubits pool to 4, 2, then 1: stages = ceil(log2 n_wires); the last
remaining qubit(s) are measured. A defense's per-layer inserts (noise layers) act before each stage,
i.e. before each quantum convolution.

The two-qubit block is the universal three-CNOT decomposition of SU(4) (Vatan & Williams 2004): 15
parameters, so the convolution can express any two-qubit unitary.
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

BLOCK_PARAMS = 15
POOL_PARAMS = 9


def su4_block(w: torch.Tensor, a: int, b: int) -> list:
    """Universal two-qubit block on wires (a, b) from 15 parameters."""
    return [
        qml.Rot(w[0], w[1], w[2], wires=a), qml.Rot(w[3], w[4], w[5], wires=b),
        qml.CNOT(wires=[b, a]), qml.RZ(w[6], wires=a), qml.RY(w[7], wires=b),
        qml.CNOT(wires=[a, b]), qml.RY(w[8], wires=b), qml.CNOT(wires=[b, a]),
        qml.Rot(w[9], w[10], w[11], wires=a), qml.Rot(w[12], w[13], w[14], wires=b),
    ]


def pool_block(w: torch.Tensor, discarded: int, kept: int) -> list:
    """Entangle ``discarded`` into ``kept`` before ``discarded`` leaves the circuit."""
    return [
        qml.Rot(w[0], w[1], w[2], wires=kept), qml.Rot(w[3], w[4], w[5], wires=discarded),
        qml.CNOT(wires=[discarded, kept]), qml.Rot(w[6], w[7], w[8], wires=kept),
    ]


@dataclass(frozen=True)
class QCNNConfig:
    """Encoding and precision; the depth follows from the number of qubits."""

    encoding: Literal["amplitude", "angle"] = "amplitude"
    dtype: Literal["float32", "float64"] = "float32"
    #: a trainable bias on the class log-probabilities (Schuld et al. 2020); False = the bare readout
    readout_bias: bool = True


class QuantumCNN(CircuitClassifier):
    """Convolution + pooling stages down to the readout qubit(s)."""

    def __init__(self, n_features: int, n_classes: int, config: QCNNConfig, generator: torch.Generator) -> None:
        n_wires = wires_for(n_features, config.encoding)
        readout = max(1, math.ceil(math.log2(n_classes)))
        # stages until no more than the readout wires stay active
        active = list(range(n_wires))
        schedule = []
        while len(active) > readout:
            kept = active[::2]
            discarded = active[1::2]
            schedule.append((list(active), list(zip(discarded, kept))))
            active = kept
        super().__init__(n_wires, n_classes, len(schedule), config.readout_bias)
        self.encoding = config.encoding
        self._schedule = schedule
        dtype = getattr(torch, config.dtype)
        g = torch.rand(len(schedule), BLOCK_PARAMS + POOL_PARAMS, generator=generator, dtype=torch.float64, device=generator.device)
        self.weights = torch.nn.Parameter((g * 2 * math.pi).to(dtype))

    def layer(self, index: int) -> list:
        active, pools = self._schedule[index]
        w = self.weights[index]
        ops = []
        pairs = [(active[i], active[i + 1]) for i in range(0, len(active) - 1, 2)]
        pairs += [(active[i], active[i + 1]) for i in range(1, len(active) - 1, 2)]
        for a, b in pairs:
            ops += su4_block(w[:BLOCK_PARAMS], a, b)
        for discarded, kept in pools:
            ops += pool_block(w[BLOCK_PARAMS:], discarded, kept)
        return ops


class QCNN(Model):
    """Quantum convolutional neural network (Cong et al. 2019): SU(4) convolutions and pooling."""

    name = "qcnn"
    description = "quantum CNN (Cong et al. 2019): shared SU(4) convolutions + pooling down to the readout"
    version = "1"
    tracks = ("qnn",)
    Config = QCNNConfig

    def build(self, data: DataSplit, ctx) -> torch.nn.Module:
        model = QuantumCNN(math.prod(data.input_shape), data.n_classes, self.config, ctx.generator)
        model.device_name = ctx.quantum_device
        return model


@qbench.hookimpl
def register_models(register) -> None:
    register(QCNN)
