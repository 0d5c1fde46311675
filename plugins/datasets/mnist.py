"""``mnist``: all ten MNIST digits at full resolution, for the mapped-DNN track.

Images are ``(N, 1, 28, 28)`` float32 in [0, 1] (pixel / 255, no normalisation: a model may normalise
internally), read from the official IDX files in the data directory. By default the whole official split
(60000 training, 10000 test images); ``n_train`` / ``n_test`` take a seed-fixed stratified subset instead.
The schedule (5 epochs of Adam, lr 0.001, batch 128) is enough for a LeNet to reach the ~98% test accuracy
of the paper's baseline (98.2%).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

import qbench
from qbench import DataSplit, Dataset, Domain, TrainingSchedule
from qbench_plugins.datasets.idx import IdxSplit, load_mnist_split
from qbench_plugins.datasets.provenance import file_records
from qbench_plugins.datasets.sampling import optional_subset


@dataclass(frozen=True)
class MnistConfig:
    """Sizes of the split (None = the whole official split) and the seed of the subsets."""

    n_train: int | None = None
    n_test: int | None = None
    split_seed: int = 0

    def validate(self) -> None:
        """Sizes, when given, must be positive."""
        for option in ("n_train", "n_test"):
            value = getattr(self, option)
            if value is not None and value <= 0:
                raise ValueError(f"{option} must be positive (or none for the whole split)")


def _take(split: IdxSplit, n: int | None, seed: int, option: str) -> tuple[torch.Tensor, torch.Tensor]:
    labels_path = split.paths[1]
    idx = optional_subset(split.labels, n, seed, option, f"{labels_path.name} in {labels_path.parent}")
    x = torch.from_numpy(split.images[idx]).to(torch.float32).div_(255).unsqueeze(1)
    y = torch.from_numpy(split.labels[idx].astype(np.int64))
    return x, y


class Mnist(Dataset):
    """MNIST, 10 classes, (1, 28, 28) images in [0, 1]."""

    name = "mnist"
    description = "MNIST digits 0-9, 28x28 in [0, 1], official 60000/10000 split (optionally a stratified subset)"
    version = "1"
    tracks = ("mapped-dnn",)
    Config = MnistConfig
    training = TrainingSchedule(epochs=5, lr=0.001, batch_size=128, optimizer="adam")
    #: QNAD evaluates MNIST at epsilon up to 0.3 in [0, 1] pixel units
    epsilons = (0.1,)
    sweep = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3)

    def load(self, ctx) -> DataSplit:
        """Read the IDX files from ``ctx.data_dir`` and take the configured subsets."""
        c = self.config
        train = load_mnist_split(ctx.data_dir, "train")
        test = load_mnist_split(ctx.data_dir, "test")
        x_train, y_train = _take(train, c.n_train, c.split_seed, "n_train")
        x_test, y_test = _take(test, c.n_test, c.split_seed, "n_test")
        parts = [
            f"{len(y_train)} of the {train.labels.size} official training images",
            f"{len(y_test)} of the {test.labels.size} official test images",
        ]
        subset = c.n_train is not None or c.n_test is not None
        notes = "MNIST: " + ", ".join(parts) + (f" (stratified subsets, split_seed={c.split_seed})" if subset else "")
        return DataSplit(
            x_train, y_train, x_test, y_test, n_classes=10, domain=Domain("box", 0.0, 1.0),
            files=file_records(ctx.data_dir, [*train.paths, *test.paths]), notes=notes,
        )


@qbench.hookimpl
def register_datasets(register) -> None:
    """Register :class:`Mnist`."""
    register(Mnist)
