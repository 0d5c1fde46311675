"""``alexnet``: AlexNet adapted to 32x32 inputs (QNAD's AlexNet-CIFAR-10).

Five convolutions (3x3 kernels, since 11x11 makes no sense at 32x32) with ReLU and three max-pools, then
three fully connected layers with dropout, as in the common CIFAR adaptations of Krizhevsky et al. 2012.
``width`` scales every channel count (1.0 = 64-192-384-256-256 and 4096-4096 hidden units); the default
0.5 keeps training on 2 CPU cores practical (documented in the README with the accuracy it reaches).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

import qbench
from qbench import DataSplit, Model


@dataclass(frozen=True)
class AlexNetConfig:
    """Channel-width multiplier and the hidden units of the classifier (before the multiplier)."""

    width: float = 0.5
    hidden: int = 1024

    def validate(self) -> None:
        if not 0 < self.width <= 4 or self.hidden < 8:
            raise ValueError("width must be in (0, 4] and hidden >= 8")


class AlexNet32(nn.Module):
    """AlexNet for 32x32 images; inputs in [0, 1] are standardised inside with the dataset statistics."""

    def __init__(self, in_channels: int, n_classes: int, width: float, hidden: int, mean, std) -> None:
        super().__init__()
        c = [max(8, int(round(k * width))) for k in (64, 192, 384, 256, 256)]
        self.register_buffer("mean", torch.as_tensor(mean).reshape(1, -1, 1, 1))
        self.register_buffer("std", torch.as_tensor(std).reshape(1, -1, 1, 1))
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c[0], 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c[0], c[1], 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c[1], c[2], 3, padding=1), nn.ReLU(),
            nn.Conv2d(c[2], c[3], 3, padding=1), nn.ReLU(),
            nn.Conv2d(c[3], c[4], 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        h = max(16, int(round(hidden * width)))
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Dropout(0.5), nn.Linear(c[4] * 4 * 4, h), nn.ReLU(),
            nn.Dropout(0.5), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features((x - self.mean) / self.std))


class AlexNet(Model):
    """AlexNet adapted to 32x32 colour images."""

    name = "alexnet"
    description = "AlexNet adapted to 32x32 images, width-scaled (QNAD's AlexNet-CIFAR-10)"
    version = "1"
    tracks = ("mapped-dnn",)
    Config = AlexNetConfig

    def build(self, data: DataSplit, ctx) -> nn.Module:
        if tuple(data.input_shape[-2:]) != (32, 32):
            raise qbench.UsageError(f"alexnet expects 32x32 images, the dataset has inputs of shape {data.input_shape}")
        mean = data.x_train.mean(dim=(0, 2, 3))
        std = data.x_train.std(dim=(0, 2, 3)).clamp_min(1e-3)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(ctx.rng.integers(2**31)))
            return AlexNet32(data.input_shape[0], data.n_classes, self.config.width, self.config.hidden, mean, std)


@qbench.hookimpl
def register_models(register) -> None:
    register(AlexNet)
