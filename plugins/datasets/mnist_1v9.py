"""``mnist-1v9``: MNIST digits 1 and 9 at 16x16, the binary task of Lu, Duan & Deng (2020) for QNNs.

Label 0 is the digit 1, label 1 the digit 9. Images are resized from 28x28 to ``size`` x ``size`` with
antialiased bilinear interpolation, pixels in [0, 1], shape ``(N, size, size)`` float32. The 400 training
examples (200 per digit) are drawn seed-fixed from the official training files, the 1000 test examples
(500 per digit) from the official test files.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

import qbench
from qbench import DataError, DataSplit, Dataset, Domain, TrainingSchedule
from qbench_plugins.datasets.idx import IdxSplit, load_mnist_split
from qbench_plugins.datasets.provenance import file_records
from qbench_plugins.datasets.sampling import per_class_indices

DIGITS = (1, 9)


@dataclass(frozen=True)
class Mnist1v9Config:
    """Split sizes (balanced, so even), the seed of the draw and the image side after resizing."""

    n_train: int = 400
    n_test: int = 1000
    split_seed: int = 0
    size: int = 16

    def validate(self) -> None:
        """Sizes must be positive and even (half per digit); the side must be in 1..28."""
        for option in ("n_train", "n_test"):
            value = getattr(self, option)
            if value <= 0 or value % 2:
                raise ValueError(f"{option} must be a positive even number (half per digit), not {value}")
        if not 1 <= self.size <= 28:
            raise ValueError(f"size must be between 1 and 28, not {self.size}")


def resize_images(images: np.ndarray, size: int) -> torch.Tensor:
    """uint8 images ``(N, H, W)`` to float32 ``(N, size, size)`` in [0, 1] (antialiased bilinear)."""
    x = torch.from_numpy(np.array(images)).to(torch.float32).div_(255).unsqueeze(1)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x.squeeze(1).clamp_(0.0, 1.0).contiguous()


def _balanced(split: IdxSplit, n: int, seed: int, option: str) -> tuple[torch.Tensor, torch.Tensor]:
    per_digit = n // 2
    try:
        idx = per_class_indices(split.labels, {d: per_digit for d in DIGITS}, seed)
    except ValueError:
        counts = ", ".join(f"{int((split.labels == d).sum())} of digit {d}" for d in DIGITS)
        path = split.paths[1]
        raise DataError(f"{option}={n} needs {per_digit} of each digit, but {path.name} in {path.parent} holds {counts}") from None
    y = torch.from_numpy((split.labels[idx] == DIGITS[1]).astype(np.int64))
    return split.images[idx], y


class Mnist1v9(Dataset):
    """MNIST 1 vs 9, 2 classes, 16x16 images in [0, 1] (Lu et al. 2020)."""

    name = "mnist-1v9"
    description = "MNIST 1 vs 9 at 16x16 in [0, 1]: 400 train / 1000 test, balanced, seed-fixed (Lu et al. 2020)"
    version = "1"
    tracks = ("qnn",)
    Config = Mnist1v9Config
    training = TrainingSchedule(epochs=200, lr=0.005, batch_size=64)

    def load(self, ctx) -> DataSplit:
        """Read the IDX files from ``ctx.data_dir``, draw the balanced subsets and resize them."""
        c = self.config
        train = load_mnist_split(ctx.data_dir, "train")
        test = load_mnist_split(ctx.data_dir, "test")
        x_train, y_train = _balanced(train, c.n_train, c.split_seed, "n_train")
        x_test, y_test = _balanced(test, c.n_test, c.split_seed, "n_test")
        return DataSplit(
            resize_images(x_train, c.size), y_train, resize_images(x_test, c.size), y_test,
            n_classes=2, domain=Domain("box", 0.0, 1.0),
            files=file_records(ctx.data_dir, [*train.paths, *test.paths]),
            notes=(
                f"MNIST digits 1 (label 0) and 9 (label 1): {c.n_train // 2} per digit from the training files, "
                f"{c.n_test // 2} per digit from the test files (split_seed={c.split_seed}); "
                f"28x28 resized to {c.size}x{c.size} (bilinear, antialiased)"
            ),
        )


@qbench.hookimpl
def register_datasets(register) -> None:
    """Register :class:`Mnist1v9`."""
    register(Mnist1v9)
