"""``transfer-fnn`` and ``transfer-cnn``: black-box transfer attacks from classical surrogates (Lu et al. 2020).

The surrogates are the classical networks of Lu et al. used in Huang & Zhang 2023 (section 4.1 and table
4): an FNN with hidden layers of 512 and 53 units and dropout, and a CNN with three convolutions of 64,
128 and 64 filters of 8x8, 4x4 and 2x2 ("same" padding, stride 1), both ending in one output per class.
Each is trained on the target's own training data and cached per (data, seed, architecture); FGSM, BIM
or MIM (ART) is crafted on the surrogate and the examples are evaluated on the target.
"""

from __future__ import annotations

import hashlib
import math
import os
import warnings
from dataclasses import dataclass
from typing import Literal

import torch
from art.attacks.evasion import FastGradientMethod
from art.attacks.evasion.projected_gradient_descent.projected_gradient_descent_numpy import (
    ProjectedGradientDescentNumpy,
)
from safetensors.torch import load_model, save_model

import qbench
from qbench import Attack, AttackSkipped, TrainingSchedule
from qbench.contract.art_bridge import art_classifier, to_numpy_inputs, with_domain
from qbench.hashing import config_hash
from qbench.contract.rng import isolated_rng
from qbench.contract.training import train
from qbench_plugins.attacks.square import image_shape


class SurrogateFNN(torch.nn.Module):
    """Lu et al.'s FNN: 512 and 53 hidden units with ReLU and dropout 0.5 (softmax is in the loss)."""

    def __init__(self, n_in: int, n_classes: int) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Flatten(), torch.nn.Linear(n_in, 512), torch.nn.ReLU(), torch.nn.Dropout(0.5),
            torch.nn.Linear(512, 53), torch.nn.ReLU(), torch.nn.Dropout(0.5), torch.nn.Linear(53, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SurrogateCNN(torch.nn.Module):
    """Lu et al.'s CNN: convolutions of 64 (8x8), 128 (4x4), 64 (2x2) filters, flatten, one linear layer."""

    def __init__(self, view: tuple[int, int, int], n_classes: int) -> None:
        super().__init__()
        c, h, w = view
        self.view = view
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(c, 64, 8, padding="same"), torch.nn.ReLU(),
            torch.nn.Conv2d(64, 128, 4, padding="same"), torch.nn.ReLU(),
            torch.nn.Conv2d(128, 64, 2, padding="same"), torch.nn.ReLU(),
            torch.nn.Flatten(), torch.nn.Linear(64 * h * w, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with warnings.catch_warnings():
            # torch notes that "same" padding with even kernels copies the input; that is expected here
            warnings.filterwarnings("ignore", message="Using padding='same' with even kernel")
            return self.net(x.reshape(x.shape[0], *self.view))


@dataclass(frozen=True)
class TransferConfig:
    """Crafting method on the surrogate and its training schedule."""

    method: Literal["fgsm", "bim", "mim"] = "bim"
    steps: int = 10
    surrogate_epochs: int = 30

    def validate(self) -> None:
        if self.steps < 1 or self.surrogate_epochs < 1:
            raise ValueError("steps and surrogate_epochs must be >= 1")


class _Transfer(Attack):
    Config = TransferConfig
    # 2: surrogates are trained per run seed (version 1 cells all used run seed 0's surrogate)
    version = "2"
    tracks = ("qnn",)
    threat = "transfer"
    architecture = "fnn"

    def surrogate(self, data) -> torch.nn.Module:
        n_in = math.prod(data.input_shape)
        if self.architecture == "fnn":
            return SurrogateFNN(n_in, data.n_classes)
        view = image_shape(tuple(data.input_shape))
        if min(view[1:]) < 2:
            raise AttackSkipped(f"transfer-cnn needs image-like input; inputs here have shape {data.input_shape}")
        return SurrogateCNN(view, data.n_classes)

    def trained_surrogate(self, ctx) -> torch.nn.Module:
        data = ctx.data
        model = self.surrogate(data)
        fingerprint = config_hash(
            {
                "arch": self.architecture, "epochs": self.config.surrogate_epochs, "seed": ctx.run_seed,
                "x": hashlib.sha256(data.x_train.cpu().numpy().tobytes()).hexdigest(),
                "y": hashlib.sha256(data.y_train.cpu().numpy().tobytes()).hexdigest(), "version": self.version,
            }
        )
        path = ctx.cache_dir / "surrogates" / f"{self.architecture}-{fingerprint}.safetensors" if ctx.cache_dir else None
        if path is not None and path.exists():
            load_model(model, str(path))
            return model.eval()
        # Seeded from the run's seed alone, so whichever cell trains the surrogate first, it is the same one.
        own = ctx.for_run("surrogate", self.architecture)
        schedule = TrainingSchedule(epochs=self.config.surrogate_epochs, lr=1e-3, batch_size=64)
        with isolated_rng(own.seed):
            model = self.surrogate(data)
            train(model, data, schedule, own, description=f"surrogate {self.architecture}")
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            # a name of this process's own: two workers may train the same surrogate at once
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            save_model(model, str(tmp))
            tmp.replace(path)
        return model.eval()

    def generate(self, model, x, y, epsilon, ctx):
        surrogate = self.trained_surrogate(ctx)
        if epsilon == 0:
            return x.clone()
        classifier = art_classifier(surrogate, ctx, n_eot=1)
        c = self.config
        if c.method == "fgsm":
            attack = with_domain(FastGradientMethod, ctx)(classifier, norm="inf", eps=epsilon, batch_size=len(x))
        else:
            attack = with_domain(ProjectedGradientDescentNumpy, ctx)(
                classifier, norm="inf", eps=epsilon, eps_step=epsilon / c.steps * (2.5 if c.method == "bim" else 1.0),
                max_iter=c.steps, num_random_init=0, decay=1.0 if c.method == "mim" else None,
                batch_size=len(x), verbose=False,
            )
        x_np, y_np = to_numpy_inputs(x, y, ctx.data.n_classes)
        return ctx.data.domain.project(torch.from_numpy(attack.generate(x_np, y=y_np)).to(x))


class TransferFNN(_Transfer):
    """Adversarial examples crafted on a classical FNN surrogate trained on the same data."""

    name = "transfer-fnn"
    description = "black-box transfer from Lu et al.'s FNN surrogate (512-53), BIM/FGSM/MIM crafted with ART"
    architecture = "fnn"


class TransferCNN(_Transfer):
    """Adversarial examples crafted on a classical CNN surrogate trained on the same data."""

    name = "transfer-cnn"
    description = "black-box transfer from Lu et al.'s CNN surrogate (64-128-64 convs), crafted with ART"
    architecture = "cnn"


@qbench.hookimpl
def register_attacks(register) -> None:
    register(TransferFNN)
    register(TransferCNN)
