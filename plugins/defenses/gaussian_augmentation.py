"""``gaussian_augmentation``: train on clean data plus Gaussian-noised copies (Zantedeschi et al. 2017).

The augmented set comes from ART's ``GaussianAugmentation`` (``sigma``, ``ratio`` of noisy copies to
clean examples), clipped to box domains and renormalised for quantum-state domains; inference is
unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from art.defences.preprocessor import GaussianAugmentation as ARTGaussianAugmentation

import qbench
from qbench import Defense
from qbench.contract.rng import isolated_rng
from qbench.contract.training import train


@dataclass(frozen=True)
class GaussianAugmentationConfig:
    """Noise scale (input units) and how many noisy copies per clean example."""

    sigma: float = 0.1
    ratio: float = 1.0

    def validate(self) -> None:
        if self.sigma <= 0 or self.ratio <= 0:
            raise ValueError("sigma and ratio must be > 0")


class GaussianAugmentation(Defense):
    """Standard training on the training set plus Gaussian-noised copies of it; standard inference."""

    name = "gaussian_augmentation"
    description = "train on clean + Gaussian-noised copies (Zantedeschi et al. 2017; ART GaussianAugmentation)"
    version = "1"
    tracks = ("qnn", "mapped-dnn")
    Config = GaussianAugmentationConfig

    def fit(self, model, data, schedule, ctx):
        augmenter = ARTGaussianAugmentation(
            sigma=self.config.sigma, augmentation=True, ratio=self.config.ratio,
            clip_values=data.domain.clip_values,
        )
        # ART draws from numpy's global generator: seed it from this cell's stream.
        with isolated_rng(int(ctx.rng.integers(2**31))):
            x_aug, y_aug = augmenter(data.x_train.cpu().numpy(), data.y_train.cpu().numpy())
        x_aug = data.domain.project(torch.from_numpy(np.ascontiguousarray(x_aug)).to(data.x_train))
        augmented = replace(data, x_train=x_aug, y_train=torch.from_numpy(np.asarray(y_aug)).to(data.y_train))
        return train(model, augmented, schedule, ctx, description="training (Gaussian augmentation)")

    def describe(self, model) -> dict:
        return {"sigma": self.config.sigma, "ratio": self.config.ratio}


@qbench.hookimpl
def register_defenses(register) -> None:
    register(GaussianAugmentation)
