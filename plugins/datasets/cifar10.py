"""``cifar10``: CIFAR-10 from Toronto's binary files, for the mapped-DNN track.

Images are ``(N, 3, 32, 32)`` float32 in [0, 1] (pixel / 255, no normalisation: a model may normalise
internally). Training examples come from whichever ``data_batch_*.bin`` files are present (the notes say
which: a partial copy, e.g. only ``data_batch_1.bin``, holds 10000 of the official 50000), test examples
from ``test_batch.bin``. ``n_train`` / ``n_test`` take a seed-fixed stratified subset. The schedule is
30 epochs of Adam, lr 0.001, batch 128.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

import qbench
from qbench import DataSplit, Dataset, Domain, TrainingSchedule
from qbench_plugins.datasets.cifar_binary import CIFAR10_TRAIN, find_cifar10, read_cifar10_file
from qbench_plugins.datasets.provenance import file_records
from qbench_plugins.datasets.sampling import optional_subset


@dataclass(frozen=True)
class Cifar10Config:
    """Sizes of the split (None = every record read) and the seed of the subsets."""

    n_train: int | None = None
    n_test: int | None = None
    split_seed: int = 0

    def validate(self) -> None:
        """Sizes, when given, must be positive."""
        for option in ("n_train", "n_test"):
            value = getattr(self, option)
            if value is not None and value <= 0:
                raise ValueError(f"{option} must be positive (or none for every record)")


def _tensors(images: np.ndarray, labels: np.ndarray, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(images[idx]).to(torch.float32).div_(255)
    return x, torch.from_numpy(labels[idx].astype(np.int64))


class Cifar10(Dataset):
    """CIFAR-10, 10 classes, (3, 32, 32) images in [0, 1]."""

    name = "cifar10"
    description = "CIFAR-10, 32x32 RGB in [0, 1]: training batches present + test_batch (optionally subsets)"
    version = "1"
    tracks = ("mapped-dnn",)
    Config = Cifar10Config
    training = TrainingSchedule(epochs=30, lr=0.001, batch_size=128, optimizer="adam")
    #: 8/255, and the QNAD paper's sweep in 0-255 pixel units (its "6" read as 6/255)
    epsilons = (8 / 255,)
    sweep = (0.0, 1 / 255, 2 / 255, 4 / 255, 6 / 255, 8 / 255)

    def load(self, ctx) -> DataSplit:
        """Read the binary batches from ``ctx.data_dir`` and take the configured subsets."""
        c = self.config
        files = find_cifar10(ctx.data_dir)
        batches = [read_cifar10_file(path) for path in files.train]
        train_images = np.concatenate([b[0] for b in batches])
        train_labels = np.concatenate([b[1] for b in batches])
        test_images, test_labels = read_cifar10_file(files.test)
        folder = files.test.parent
        train_idx = optional_subset(train_labels, c.n_train, c.split_seed, "n_train", f"data_batch_*.bin in {folder}")
        test_idx = optional_subset(test_labels, c.n_test, c.split_seed, "n_test", f"{files.test.name} in {folder}")
        x_train, y_train = _tensors(train_images, train_labels, train_idx)
        x_test, y_test = _tensors(test_images, test_labels, test_idx)
        names = ", ".join(p.name for p in files.train)
        notes = (
            f"CIFAR-10: training from {names} ({len(files.train)} of the {len(CIFAR10_TRAIN)} official batches, "
            f"{train_labels.size} records), test from {files.test.name} ({test_labels.size} records); "
            f"using {len(y_train)} train / {len(y_test)} test"
        )
        if c.n_train is not None or c.n_test is not None:
            notes += f" (stratified subsets, split_seed={c.split_seed})"
        return DataSplit(
            x_train, y_train, x_test, y_test, n_classes=10, domain=Domain("box", 0.0, 1.0),
            files=file_records(ctx.data_dir, [*files.train, files.test]), notes=notes,
        )


@qbench.hookimpl
def register_datasets(register) -> None:
    """Register :class:`Cifar10`."""
    register(Cifar10)
