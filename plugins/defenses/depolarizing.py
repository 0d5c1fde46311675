"""``depolarizing``: depolarizing noise in the circuit as a defense (Du et al. 2021, Phys. Rev. Research 3, 023153).

A depolarizing channel of probability ``p`` on every qubit after each layer (``placement=layers``) or only
before the measurement (``placement=measurement``).

Du et al.'s defense is the channel itself, so the deployed model is the channel, measured as the board
measures every defense (DESIGN section 4, equal readout):

* the exact channel (the density matrix) wherever it is affordable: a deterministic forward, whose
  gradient the attacks get exactly; its probabilities are read out like every defense's. Always under the
  exact readout (``ctx.shots=None``).
* under a shot readout (``ctx.shots`` single shots, the QNN track's default) on a circuit where the
  density matrix (B x 4^n amplitudes) costs more than sampling (``attack_view="auto"``: 2^n larger than
  ``trajectories`` x the board's EOT samples, so the 8-qubit MNIST boards, where one forward and backward
  of the density matrix took 50-65 s and 16 GB at batch 250), the channel sampled: each shot is taken
  from its own Pauli trajectory. The channel is the average of its trajectories, so every such shot has
  exactly the channel's outcome distribution and the shots are independent: the deployed prediction has
  the same distribution as ``ctx.shots`` shots of the density matrix. What the attacks differentiate is
  then an estimate of the channel's class probabilities from ``trajectories`` trajectories per example
  (unbiased, each trajectory's gradient exact), a stochastic forward, averaged over the board's EOT
  samples like every stochastic defense's; ``benchmarks/depolarizing_gradients.py`` measures how close
  that gradient is to the exact one (docs/protocol.md quotes it).

(Version 1 deployed one sampled Pauli trajectory per *forward*: a random circuit, not the channel, whose
clean prediction was right in all repetitions only 5-14% of the time. Version 2 deployed the density
matrix on every board, which the MNIST boards cannot afford.)

Training runs by default on the engine's trajectory path (each forward samples Pauli insertions per
example: an unbiased estimate of the channel's output, as cheap as a pure state vector); ``exact=true``
trains on the exact channel (the density matrix) too, at the density matrix's cost (B x 4^n amplitudes).
Winderl, Franco & Lorenz (arXiv 2311.17458) report that the robustness argument does not carry over to
multi-class problems; qbench's numbers on binary tasks should be read with that in mind.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Literal

import pennylane as qml
import torch

import qbench
from qbench import CircuitClassifier, Defense, LayerInsert, UsageError, is_stochastic
from qbench.contract.readout import frequencies, label_from_frequencies, measure


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


def use_density(model: CircuitClassifier, exact: bool, trajectories: int = 1) -> None:
    """Run ``model``'s channels exactly (density matrix) or sampled (``trajectories`` Pauli trajectories per
    example, averaged in each forward)."""
    model.method = "density" if exact else "trajectories"
    model.n_trajectories = 1 if exact else trajectories
    for insert in model.inserts:
        if isinstance(insert, Depolarizing):
            insert.stochastic = not exact


@contextmanager
def one_trajectory_per_row(model: CircuitClassifier) -> Iterator[None]:
    """Every row of a forward gets its own single Pauli trajectory (restores the model's count after)."""
    before = model.n_trajectories
    model.n_trajectories = 1
    try:
        yield
    finally:
        model.n_trajectories = before


@dataclass(frozen=True)
class DepolarizingConfig:
    """Channel probability, placement, whether training runs the exact channel, and what the attacks see.

    ``exact=false`` (default) trains on sampled Pauli trajectories, ``exact=true`` on the density matrix.
    ``attack_view``: what the deployed forward is under a shot readout, so what an attack differentiates:
    ``"exact"`` the channel (density matrix), ``"sampled"`` an estimate from ``trajectories`` Pauli
    trajectories per example and forward (averaged by the attacks over their EOT samples), ``"auto"``
    whichever costs less per gradient (see :func:`sampling_is_cheaper`), so exact wherever it is affordable.
    """

    p: float = 0.05
    placement: Literal["layers", "measurement"] = "layers"
    exact: bool = False
    attack_view: Literal["auto", "exact", "sampled"] = "auto"
    trajectories: int = 10

    def validate(self) -> None:
        if not 0 <= self.p <= 1:
            raise ValueError("p must be in [0, 1]")
        if self.trajectories < 1:
            raise ValueError("trajectories must be >= 1")


def sampling_is_cheaper(n_wires: int, trajectories: int, n_eot: int) -> bool:
    """Whether ``trajectories`` x ``n_eot`` state vectors (2^n amplitudes each) per attack gradient cost less
    than one exact density matrix (4^n amplitudes): ``2^n > trajectories * n_eot``.

    The engine's cost per amplitude is about the same on both paths (the density matrix is a state vector on
    2n wires), so this compares the arithmetic; ``benchmarks/depolarizing_gradients.py`` measures both side
    by side (8 qubits, 10 trajectories, EOT-20: the sampled gradient in 0.18x the exact one's time; 2-4
    qubits: the exact one is 5-10x cheaper).
    """
    return 2 ** n_wires > trajectories * n_eot


class DepolarizingNoise(Defense):
    """Depolarizing channels in the circuit (after each layer, or before measurement), deployed as the channel:
    the density matrix where affordable, else one Pauli trajectory per shot (exactly the channel's shots)."""

    name = "depolarizing"
    description = ("depolarizing channels of probability p after each layer, deployed as the channel; sampled per "
                   "shot where the density matrix is dear (Du et al. 2021)")
    #: 3: under a shot readout a circuit too large for the density matrix deploys the channel sampled (a
    #: trajectory per shot, the attacks an estimate from ``trajectories`` of them); version 2 always
    #: deployed the density matrix
    version = "3"
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
        """The channel: the density matrix, or sampled under a shot readout (see ``attack_view``)."""
        use_density(model, not self.deploys_sampled(model.n_wires, ctx), self.config.trajectories)
        return model

    def deploys_sampled(self, n_wires: int, ctx) -> bool:
        """Whether the deployed channel is sampled (trajectories) rather than exact, for ``ctx``'s readout."""
        view = self.config.attack_view
        if ctx.shots is None or view == "exact":
            return False  # the exact readout needs the exact probabilities
        return view == "sampled" or sampling_is_cheaper(n_wires, self.config.trajectories, ctx.n_eot)

    def predict(self, model, x, ctx):
        """``ctx.shots`` single shots, each from its own Pauli trajectory: exactly the channel's shots.

        Every example is repeated ``ctx.shots`` times, each copy runs one sampled trajectory and is measured
        once; the frequencies decide the label (through the model's readout bias). On the exact channel
        (density matrix) this is the board's plain readout. Randomness comes from torch's global generator.
        """
        shots = ctx.shots
        if shots is None or not is_stochastic(model):
            return measure(model, x, shots)
        with torch.no_grad(), one_trajectory_per_row(model):
            probs = model.class_probabilities(x.repeat_interleave(shots, dim=0))
        single = frequencies(probs, 1)  # one shot per trajectory: (N * J, K) one-hot outcomes
        return label_from_frequencies(model, single.reshape(len(x), shots, probs.shape[1]).mean(dim=1))

    def describe(self, model) -> dict:
        c = self.config
        sampled = model.method != "density"
        return {
            "p": c.p, "placement": c.placement, "exact": c.exact, "attack_view": c.attack_view,
            "trained_on": "density" if c.exact else "trajectories",
            "deployed": "trajectory per shot" if sampled else "density",
            "attack_trajectories": model.n_trajectories if sampled else 0,
        }


@qbench.hookimpl
def register_defenses(register) -> None:
    register(DepolarizingNoise)
