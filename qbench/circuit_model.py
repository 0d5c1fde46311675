"""Variational circuit classifiers whose layers a defense can wrap without knowing the circuit.

A :class:`CircuitClassifier` is written as PennyLane operations: an encoding, ``n_layers`` layers, and a
Z-basis readout of ``ceil(log2 K)`` wires giving K class probabilities. Defenses add
:class:`LayerInsert` modules that contribute operations before or after every layer (noise rotations,
noise channels). The circuit runs on qbench's engine, or on a PennyLane device named by ``device_name``.
"""

from __future__ import annotations

import math
from typing import Literal, Sequence

import pennylane as qml
import torch

from qbench.engine import execute

Position = Literal["before", "after"]


class LayerInsert(torch.nn.Module):
    """Operations a defense places before or after each layer of a :class:`CircuitClassifier`.

    Subclasses implement :meth:`ops`; trainable parameters of the insert (e.g. a noise scale per layer)
    are ordinary torch parameters and are trained with the model. Set ``stochastic = True`` if ``ops``
    draws randomness (from torch's global generator, which the runner seeds per cell).
    """

    position: Position = "before"
    stochastic: bool = False

    def ops(self, layer: int, batch_size: int, wires: Sequence[int], dtype: torch.dtype) -> list:
        """PennyLane operations for layer ``layer`` (0-based); parameters may be shape ``(batch_size,)``."""
        raise NotImplementedError  # abstract


def wires_for(n_features: int, encoding: str) -> int:
    """Qubits an encoding needs: ceil(log2 F) for amplitude, F for angle; at least 2 (for entanglers)."""
    if encoding == "amplitude":
        return max(2, math.ceil(math.log2(max(n_features, 2))))
    return max(2, n_features)


class CircuitClassifier(torch.nn.Module):
    """Base of circuit classifiers: subclasses implement :meth:`encode` and :meth:`layer`."""

    def __init__(
        self, n_wires: int, n_classes: int, n_layers: int, readout_bias: bool = False,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if n_classes < 2:
            raise ValueError("a classifier needs at least 2 classes")
        self.n_wires = n_wires
        self.n_classes = n_classes
        self.n_layers = n_layers
        self.readout_wires = list(range(max(1, math.ceil(math.log2(n_classes)))))
        if len(self.readout_wires) > n_wires:
            raise ValueError(f"{n_classes} classes need {len(self.readout_wires)} readout wires, circuit has {n_wires}")
        self.inserts = torch.nn.ModuleList()
        # A trainable classical bias on the class log-probabilities (the "b" of Schuld et al. 2020's
        # circuit-centric classifier): it moves the decision threshold off p = 0.5, which one measured
        # qubit cannot do by itself.
        self.readout_bias = torch.nn.Parameter(torch.zeros(n_classes, dtype=dtype)) if readout_bias else None
        #: the real dtype the circuit runs in; None = that of the circuit's own weights (see
        #: :attr:`parameter_dtype`)
        self.dtype = dtype
        #: None = qbench's engine; otherwise a PennyLane device name
        self.device_name: str | None = None
        #: trajectories per example when the circuit has noise channels (engine's trajectory method)
        self.n_trajectories = 1
        #: "auto" (state vector, or trajectories when channels are present), "density", "trajectories"
        self.method = "auto"

    @property
    def stochastic(self) -> bool:
        """Whether the forward is random: a stochastic insert, or sampled noise channels."""
        return any(getattr(m, "stochastic", False) for m in self.inserts)

    #: "amplitude" or "angle" for the built-in encodings; a subclass may override :meth:`encode` instead
    encoding: str = "amplitude"

    def encode(self, x: torch.Tensor) -> list:
        """Operations that load a batch ``x`` into the circuit (must come first).

        Built in: amplitude encoding (features zero-padded to 2^n and normalised) and angle encoding (one
        ``RX(feature)`` per qubit), chosen by :attr:`encoding`.
        """
        flat = x.reshape(x.shape[0], -1)
        if self.encoding == "amplitude":
            return [self.amplitude_embedding(flat)]
        if self.encoding == "angle":
            return [qml.AngleEmbedding(flat, wires=list(range(flat.shape[1])), rotation="X")]
        raise ValueError(f"unknown encoding {self.encoding!r}")

    def amplitude_embedding(self, x: torch.Tensor):
        """``AmplitudeEmbedding`` of a batch (zero-padded, normalised); an all-zero input encodes as |0...0>.

        A zero vector has no state to normalise to; mapping it to the first basis state keeps the circuit
        defined (an input transformation such as rounding can produce one).
        """
        flat = x.reshape(x.shape[0], -1)
        zero = (flat.abs().sum(dim=1, keepdim=True) == 0).to(flat.dtype)
        if bool(zero.any()):
            first = torch.zeros_like(flat)
            first[:, 0] = 1
            flat = flat + zero * first
        return qml.AmplitudeEmbedding(flat, wires=list(range(self.n_wires)), pad_with=0.0, normalize=True)

    def layer(self, index: int) -> list:
        """The operations of layer ``index`` (0-based), with the model's own parameters."""
        raise NotImplementedError  # abstract

    def circuit(self, x: torch.Tensor) -> list:
        """The whole circuit for batch ``x``: encoding, then every layer wrapped by the inserts."""
        wires = list(range(self.n_wires))
        dtype = self.parameter_dtype
        ops = list(self.encode(x))
        for index in range(self.n_layers):
            for insert in self.inserts:
                if insert.position == "before":
                    ops.extend(insert.ops(index, x.shape[0], wires, dtype))
            ops.extend(self.layer(index))
            for insert in self.inserts:
                if insert.position == "after":
                    ops.extend(insert.ops(index, x.shape[0], wires, dtype))
        return ops

    @property
    def parameter_dtype(self) -> torch.dtype:
        """The real dtype the circuit runs in: :attr:`dtype` when given, else that of the circuit weights.

        The circuit weights are the model's own parameters other than the readout bias (a classical
        parameter created before the weights, in the default dtype) and the inserts' parameters (a
        defense's noise scales): a float64 circuit runs, and encodes its inputs, in float64 whatever they are.
        """
        if self.dtype is not None:
            return self.dtype
        for name, param in self.named_parameters():
            if name != "readout_bias" and not name.startswith("inserts."):
                return param.dtype
        return self.readout_bias.dtype if self.readout_bias is not None else torch.get_default_dtype()

    def class_probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, K)`` class probabilities from the readout wires' basis-state probabilities."""
        x = x.to(self.parameter_dtype)
        method = self.method
        if method == "auto" and self.n_trajectories > 1:
            method = "trajectories"
        result = execute(
            self.circuit(x), self.n_wires, self.readout_wires, method=method, batch_size=x.shape[0],
            n_trajectories=self.n_trajectories, device=self.device_name,
        )
        probs = result.probs[:, : self.n_classes]
        if self.n_classes < 2 ** len(self.readout_wires):
            probs = probs / probs.sum(dim=1, keepdim=True).clamp_min(1e-12)
        return probs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits = log class probabilities (+ the readout bias), so cross-entropy is the quantum cross-entropy."""
        return self.logits_from(self.class_probabilities(x))

    def logits_from(self, probabilities: torch.Tensor) -> torch.Tensor:
        """Logits from class probabilities or measured class frequencies (shot counts / shots)."""
        logits = torch.log(probabilities.clamp_min(1e-12))
        if self.readout_bias is not None:
            logits = logits + self.readout_bias.to(logits.dtype)
        return logits
