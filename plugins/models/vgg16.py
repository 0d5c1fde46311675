"""``vgg16``: VGG16 with batch normalisation for 32x32 inputs (QNAD's VGG16-CIFAR-100).

The thirteen 3x3 convolutions of Simonyan & Zisserman 2014 (configuration D) in five blocks with max-pools,
batch normalisation after each convolution (as CIFAR adaptations do), and one hidden fully connected
layer. ``width`` scales every channel count (1.0 = 64...512); the default 0.25 keeps training on 2 CPU
cores practical, and the README states the accuracy it reaches.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

import qbench
from qbench import DataSplit, Model

CONFIG_D = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


@dataclass(frozen=True)
class VGGConfig:
    """Channel-width multiplier."""

    width: float = 0.25

    def validate(self) -> None:
        if not 0 < self.width <= 2:
            raise ValueError("width must be in (0, 2]")


class VGG16(nn.Module):
    """VGG16-BN for 32x32 images; inputs in [0, 1] are standardised inside with the dataset statistics."""

    def __init__(self, in_channels: int, n_classes: int, width: float, mean, std) -> None:
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean).reshape(1, -1, 1, 1))
        self.register_buffer("std", torch.as_tensor(std).reshape(1, -1, 1, 1))
        layers: list[nn.Module] = []
        channels = in_channels
        for item in CONFIG_D:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            out = max(8, int(round(item * width)))
            layers += [nn.Conv2d(channels, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU()]
            channels = out
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(channels, channels), nn.ReLU(), nn.Dropout(0.5), nn.Linear(channels, n_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features((x - self.mean) / self.std))


class VGG(Model):
    """VGG16 with batch normalisation for 32x32 colour images."""

    name = "vgg16"
    description = "VGG16-BN for 32x32 images, width-scaled (QNAD's VGG16-CIFAR-100)"
    version = "1"
    tracks = ("mapped-dnn",)
    Config = VGGConfig

    def build(self, data: DataSplit, ctx) -> nn.Module:
        if tuple(data.input_shape[-2:]) != (32, 32):
            raise qbench.UsageError(f"vgg16 expects 32x32 images, the dataset has inputs of shape {data.input_shape}")
        mean = data.x_train.mean(dim=(0, 2, 3))
        std = data.x_train.std(dim=(0, 2, 3)).clamp_min(1e-3)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(ctx.rng.integers(2**31)))
            return VGG16(data.input_shape[0], data.n_classes, self.config.width, mean, std)


@qbench.hookimpl
def register_models(register) -> None:
    register(VGG)
