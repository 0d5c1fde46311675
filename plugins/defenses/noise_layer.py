"""``noise_layer``: noise layers with a trainable scale, Huang & Zhang 2023 (eqs. 5-9, algorithms 1-2).

Before each layer of a circuit classifier, every qubit gets ``RY(eta_i * beta_l)`` with ``eta_i ~ N(0,
sigma^2)`` drawn afresh at every forward and for every example, and ``beta_l`` one trainable scalar per
layer (initial 0.25). Training (algorithm 1) uses the combined loss of eq. 9,
``gamma * L(x_adv) + (1 - gamma) * L(x)``, with ``x_adv`` from BIM through the *noisy* model (eq. 8).
Inference (algorithm 2) measures the readout J times with the noise redrawn per shot and returns the
most frequent outcome. J is the board's readout, ``ctx.shots`` (equal readout, :mod:`qbench.contract.readout`: every
defense on a board predicts from the same measurement budget; the seed paper's J = 50 is the QNN track's
default); with ``ctx.shots = None`` the prediction is the argmax of the exact class probabilities of one
noisy forward.

The switches of the paper's ablations are options: ``noise`` (where the noise is active: both phases,
training only, testing only, or off — figure 7) and ``combined_loss`` (table 2: QNN-V = neither, QNN-N =
noise only, QNN-C = combined loss only, QNN-CN = both, the default; ``ablation`` sets both at once).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import pennylane as qml
import torch
import torch.nn.functional as F

import qbench
from qbench import CircuitClassifier, Defense, LayerInsert, UsageError
from qbench.contract.readout import frequencies, label_from_frequencies, measure
from qbench.contract.training import bim_examples, train

ABLATIONS = {
    # name: (noise, combined_loss)
    "QNN-V": ("off", False),
    "QNN-N": ("both", False),
    "QNN-C": ("off", True),
    "QNN-CN": ("both", True),
}


class NoiseLayers(LayerInsert):
    """``RY(eta * beta_l)`` on every qubit before every layer; ``beta`` is trained with the model."""

    position = "before"

    def __init__(self, n_layers: int, sigma2: float, beta_init: float, noise: str) -> None:
        super().__init__()
        self.beta = torch.nn.Parameter(torch.full((n_layers,), float(beta_init)))
        self.sigma = math.sqrt(sigma2)
        self.noise = noise

    @property
    def active(self) -> bool:
        """Whether noise is drawn in the current mode (training or evaluation)."""
        if self.noise == "both":
            return True
        if self.noise == "train":
            return self.training
        if self.noise == "test":
            return not self.training
        return False

    @property
    def stochastic(self) -> bool:  # type: ignore[override]
        return self.noise in ("both", "test")

    def ops(self, layer: int, batch_size: int, wires, dtype) -> list:
        if not self.active:
            return []
        beta = self.beta[layer].to(dtype)
        eta = torch.randn(len(wires), batch_size, dtype=dtype, device=self.beta.device) * self.sigma
        return [qml.RY(eta[i] * beta, wires=w) for i, w in enumerate(wires)]


@dataclass(frozen=True)
class NoiseLayerConfig:
    """Defaults: the seed paper (sigma^2 = 2 pi / 2^5, beta 0.25, gamma 0.5, BIM eps 0.15, 3 x 0.05)."""

    sigma2: float = 2 * math.pi / 2**5
    beta_init: float = 0.25
    noise: Literal["both", "train", "test", "off"] = "both"
    combined_loss: bool = True
    #: sets ``noise`` and ``combined_loss`` to one of table 2's variants (overrides them when given)
    ablation: Literal["QNN-V", "QNN-N", "QNN-C", "QNN-CN"] | None = None
    gamma: float = 0.5
    adv_epsilon: float = 0.15
    adv_steps: int = 3
    adv_step_size: float = 0.05

    def validate(self) -> None:
        if self.sigma2 < 0 or not 0 <= self.gamma <= 1:
            raise ValueError("sigma2 must be >= 0 and gamma in [0, 1]")
        if self.adv_epsilon < 0 or self.adv_steps < 1 or self.adv_step_size <= 0:
            raise ValueError("adv_epsilon >= 0, adv_steps >= 1 and adv_step_size > 0 are required")

    @property
    def switches(self) -> tuple[str, bool]:
        """(noise, combined_loss) after applying ``ablation``."""
        return ABLATIONS[self.ablation] if self.ablation else (self.noise, self.combined_loss)


class NoiseLayer(Defense):
    """Trainable-scale RY noise before every layer + combined-loss adversarial training + shot voting."""

    name = "noise_layer"
    description = "noise layers RY(eta*beta) with trainable beta, combined loss, J-shot voting (Huang & Zhang 2023)"
    #: 2: algorithm 2's J is the board's readout ``ctx.shots`` (the ``shots`` option is gone)
    version = "2"
    tracks = ("qnn",)
    Config = NoiseLayerConfig

    def prepare(self, model, ctx):
        if not isinstance(model, CircuitClassifier):
            raise UsageError("noise_layer needs a circuit classifier (a qbench.CircuitClassifier model)")
        noise, _ = self.config.switches
        model.inserts.append(NoiseLayers(model.n_layers, self.config.sigma2, self.config.beta_init, noise))
        return model

    def fit(self, model, data, schedule, ctx):
        c = self.config
        _, combined = c.switches
        if not combined:
            return train(model, data, schedule, ctx, description="training (noise layers)")

        def batch_loss(m, x, y, epoch):
            x_adv = bim_examples(m, x, y, c.adv_epsilon, c.adv_steps, c.adv_step_size, data.domain)
            return c.gamma * F.cross_entropy(m(x_adv), y) + (1 - c.gamma) * F.cross_entropy(m(x), y)

        return train(model, data, schedule, ctx, batch_loss, description="training (noise layers, combined loss)")

    def predict(self, model, x, ctx):
        """Algorithm 2 with J = ``ctx.shots``: J single shots, noise redrawn per shot, majority label.

        Every example is repeated J times and each copy gets its own noise draw and one single-shot
        measurement; the measured frequencies decide the label (through the model's readout bias, if
        any). Without noise at test time this is the board's plain readout of J shots. ``ctx.shots =
        None``: the argmax of the exact class probabilities of one noisy forward. Randomness (noise and
        shots) comes from torch's global generator.
        """
        shots = ctx.shots
        with torch.no_grad():
            if shots is None:
                return model(x).argmax(dim=1)
            if not model.stochastic:
                return measure(model, x, shots)
            probs = model.class_probabilities(x.repeat_interleave(shots, dim=0))
            single = frequencies(probs, 1)  # one shot per noisy copy: (N * J, K) one-hot outcomes
            freqs = single.reshape(len(x), shots, probs.shape[1]).mean(dim=1)
            return label_from_frequencies(model, freqs)

    def describe(self, model) -> dict:
        inserts = [m for m in model.inserts if isinstance(m, NoiseLayers)]
        noise, combined = self.config.switches
        return {
            "beta": [round(float(b), 6) for b in inserts[0].beta.detach()] if inserts else [],
            "noise": noise,
            "combined_loss": combined,
        }


@qbench.hookimpl
def register_defenses(register) -> None:
    register(NoiseLayer)
