"""``lenet``: LeNet-5 (LeCun et al. 1998) for 28x28 single-channel images (the QNAD paper's LeNet-MNIST)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

import qbench
from qbench import DataSplit, Model


@dataclass(frozen=True)
class LeNetConfig:
    """LeNet-5 has no options; the dataclass exists for the contract."""


class LeNet5(nn.Module):
    """conv 6@5x5 (padded) - pool - conv 16@5x5 - pool - fc 120 - fc 84 - fc classes, ReLU activations."""

    def __init__(self, in_channels: int, n_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class LeNet(Model):
    """LeNet-5 for MNIST-sized images."""

    name = "lenet"
    description = "LeNet-5 for 28x28 images (QNAD's LeNet-MNIST)"
    version = "1"
    tracks = ("mapped-dnn",)
    Config = LeNetConfig

    def build(self, data: DataSplit, ctx) -> nn.Module:
        if tuple(data.input_shape[-2:]) != (28, 28):
            raise qbench.UsageError(f"lenet expects 28x28 images, the dataset has inputs of shape {data.input_shape}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(ctx.rng.integers(2**31)))
            return LeNet5(data.input_shape[0] if len(data.input_shape) == 3 else 1, data.n_classes)


@qbench.hookimpl
def register_models(register) -> None:
    register(LeNet)
