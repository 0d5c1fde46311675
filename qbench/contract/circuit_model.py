"""Variational circuit classifiers whose layers a defense can wrap without knowing the circuit.

A :class:`CircuitClassifier` is written as PennyLane operations: an encoding, ``n_layers`` layers, and a
Z-basis readout of ``ceil(log2 K)`` wires giving K class probabilities. Defenses add
:class:`LayerInsert` modules that contribute operations before or after every layer (noise rotations,
noise channels). The circuit runs on qbench's engine, or on a PennyLane device named by ``device_name``.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator, Literal, Sequence

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
        #: build the layers' unitary once and reuse it while the circuit parameters are unchanged, where
        #: that is exact (see :meth:`frozen_unitary`); the runner turns it on while an attack runs
        self.reuse_unitary = False
        self._unitary: tuple[tuple, torch.Tensor] | None = None
        self._real_unitary: tuple[torch.Tensor, torch.Tensor] | None = None

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
        return qml.AmplitudeEmbedding(_nonzero(x), wires=list(range(self.n_wires)), pad_with=0.0, normalize=True)

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
        unitary = self.frozen_unitary()
        if unitary is not None:
            probs = self._probabilities_through(unitary, x)
        else:
            method = self.method
            if method == "auto" and self.n_trajectories > 1:
                method = "trajectories"
            probs = execute(
                self.circuit(x), self.n_wires, self.readout_wires, method=method, batch_size=x.shape[0],
                n_trajectories=self.n_trajectories, device=self.device_name,
            ).probs
        probs = probs[:, : self.n_classes]
        if self.n_classes < 2 ** len(self.readout_wires):
            probs = probs / probs.sum(dim=1, keepdim=True).clamp_min(1e-12)
        return probs

    def frozen_unitary(self) -> torch.Tensor | None:
        """The unitary of all layers, built once while the circuit parameters stay unchanged, or None.

        Only when :attr:`reuse_unitary` is on and it is exact: the built-in encoding (the one input-dependent
        part, first), no inserts (a defense's per-example or random operations), qbench's engine (not a
        named PennyLane device), a pure state, and no circuit parameter needing a gradient. An attack then
        pays one (B, 2^n) x (2^n, 2^n) product per forward instead of every gate (issue 17: 5-10x per input
        gradient). The matrix comes from PennyLane (``qml.matrix``), keyed by the parameters' identity and
        in-place version, so any update of the weights rebuilds it.
        """
        if not self.reuse_unitary or self.inserts or self.device_name is not None or self.n_trajectories > 1:
            return None
        if type(self).encode is not CircuitClassifier.encode or self.encoding not in ("amplitude", "angle"):
            return None
        params = [p for name, p in self.named_parameters() if name != "readout_bias"]
        if torch.is_grad_enabled() and any(p.requires_grad for p in params):
            return None
        # the storage too: ``param.data = ...`` (as ``module.to(device)`` does) keeps the id and the version
        key = (self.parameter_dtype, tuple((id(p), p._version, p.data_ptr(), p.device) for p in params))
        if self._unitary is None or self._unitary[0] != key:
            with torch.no_grad():
                ops = [op for index in range(self.n_layers) for op in self.layer(index)]
                matrix = qml.matrix(qml.tape.QuantumScript(ops), wire_order=list(range(self.n_wires)))
            device = params[0].device if params else torch.get_default_device()
            self._unitary = (key, torch.as_tensor(matrix).to(device=device, dtype=_complex(self.parameter_dtype)))
        return self._unitary[1]

    def _probabilities_through(self, unitary: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Readout-wire probabilities of the encoded batch ``x`` after ``unitary`` (wire 0 most significant)."""
        flat = x.reshape(x.shape[0], -1)
        blocks = 2 ** len(self.readout_wires)
        if self.encoding == "amplitude":
            flat = _nonzero(flat)
            padded = torch.nn.functional.pad(flat, (0, 2 ** self.n_wires - flat.shape[1]))
            state = padded / padded.norm(dim=1, keepdim=True)
            # a real state: one real product with [Re U^T | Im U^T] is half the arithmetic of a complex one
            if self._real_unitary is None or self._real_unitary[0] is not unitary:
                stacked = torch.cat([unitary.real.T, unitary.imag.T], dim=1).contiguous()
                self._real_unitary = (unitary, stacked)
            out = state.to(self._real_unitary[1].dtype) @ self._real_unitary[1]
            return out.square().reshape(flat.shape[0], 2, blocks, -1).sum(dim=(1, 3))
        else:  # RX(feature) on wire q: cos(f/2) |0> - i sin(f/2) |1>; wires beyond the features stay |0>
            half = flat / 2
            one = torch.zeros(2, dtype=unitary.dtype, device=unitary.device)
            one[0] = 1
            state = torch.ones(flat.shape[0], 1, dtype=unitary.dtype, device=unitary.device)
            for wire in range(self.n_wires):
                if wire < flat.shape[1]:
                    qubit = torch.stack([torch.cos(half[:, wire]).to(unitary.dtype),
                                         -1j * torch.sin(half[:, wire]).to(unitary.dtype)], dim=1)
                else:
                    qubit = one.expand(flat.shape[0], 2)
                state = (state[:, :, None] * qubit[:, None, :]).reshape(flat.shape[0], -1)
        out = state @ unitary.T
        probs = out.real ** 2 + out.imag ** 2
        return probs.reshape(flat.shape[0], blocks, -1).sum(dim=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits = log class probabilities (+ the readout bias), so cross-entropy is the quantum cross-entropy."""
        return self.logits_from(self.class_probabilities(x))

    def logits_from(self, probabilities: torch.Tensor) -> torch.Tensor:
        """Logits from class probabilities or measured class frequencies (shot counts / shots)."""
        logits = torch.log(probabilities.clamp_min(1e-12))
        if self.readout_bias is not None:
            logits = logits + self.readout_bias.to(logits.dtype)
        return logits


def _nonzero(x: torch.Tensor) -> torch.Tensor:
    """Flattened ``x`` with an all-zero row replaced by the first basis vector (see ``amplitude_embedding``)."""
    flat = x.reshape(x.shape[0], -1)
    zero = (flat.abs().sum(dim=1, keepdim=True) == 0).to(flat.dtype)
    if bool(zero.any()):
        first = torch.zeros_like(flat)
        first[:, 0] = 1
        flat = flat + zero * first
    return flat


def _complex(real: torch.dtype) -> torch.dtype:
    return torch.complex128 if real == torch.float64 else torch.complex64


@contextmanager
def reusing_unitaries(model: torch.nn.Module) -> Iterator[None]:
    """Turn :attr:`CircuitClassifier.reuse_unitary` on for every circuit inside ``model``, for a block."""
    circuits = [m for m in model.modules() if isinstance(m, CircuitClassifier)]
    before = [c.reuse_unitary for c in circuits]
    for circuit in circuits:
        circuit.reuse_unitary = True
    try:
        yield
    finally:
        for circuit, value in zip(circuits, before):
            circuit.reuse_unitary = value
