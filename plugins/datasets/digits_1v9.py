"""``digits-1v9``: scikit-learn's bundled 8x8 digits, 1 vs 9, upsampled to 16x16 — needs no data files.

An embedded stand-in for ``mnist-1v9`` (same task, same input shape) that runs without a data directory.
Label 0 is the digit 1, label 1 the digit 9. Pixels (0..16 in the bundle) are divided by 16, upsampled
bilinearly to ``size`` x ``size`` and clamped to [0, 1]; shape ``(N, size, size)`` float32.

The bundle holds only 182 ones and 180 nines (362 images), so the ``mnist-1v9`` protocol of 200 training
examples per digit cannot be met: by default 120 per digit train (240) and the remaining 122 (62 ones,
60 nines) are the test set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

import qbench
from qbench import DataError, DataSplit, Dataset, Domain, TrainingSchedule
from qbench_plugins.datasets.sampling import per_class_indices

DIGITS = (1, 9)


@dataclass(frozen=True)
class Digits1v9Config:
    """Training size (balanced, so even; the rest is the test set), split seed and the upsampled side."""

    n_train: int = 240
    split_seed: int = 0
    size: int = 16

    def validate(self) -> None:
        """The training size must be positive and even; the side at least 1."""
        if self.n_train <= 0 or self.n_train % 2:
            raise ValueError(f"n_train must be a positive even number (half per digit), not {self.n_train}")
        if self.size < 1:
            raise ValueError(f"size must be at least 1, not {self.size}")


def upsample(images: np.ndarray, size: int) -> torch.Tensor:
    """Digits ``(N, 8, 8)`` with values 0..16 to float32 ``(N, size, size)`` in [0, 1] (bilinear)."""
    x = torch.from_numpy(np.asarray(images, dtype=np.float32) / 16).unsqueeze(1)
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x.squeeze(1).clamp_(0.0, 1.0).contiguous()


class Digits1v9(Dataset):
    """scikit-learn digits 1 vs 9, 2 classes, 16x16 images in [0, 1]; embedded."""

    name = "digits-1v9"
    description = "scikit-learn 8x8 digits 1 vs 9 upsampled to 16x16 in [0, 1]; embedded, no files needed"
    version = "1"
    tracks = ("qnn",)
    Config = Digits1v9Config
    training = TrainingSchedule(epochs=200, lr=0.005, batch_size=64)

    def load(self, ctx) -> DataSplit:
        """Select the ones and nines of the bundle and split them: balanced training set, the rest test."""
        c = self.config
        bundle = load_digits()
        keep = np.isin(bundle.target, DIGITS)
        images, digits = bundle.images[keep], bundle.target[keep]
        per_digit = c.n_train // 2
        counts = {d: int((digits == d).sum()) for d in DIGITS}
        if any(per_digit >= n for n in counts.values()):
            raise DataError(
                f"n_train={c.n_train} leaves no test examples: scikit-learn's digits bundle holds "
                f"{counts[1]} ones and {counts[9]} nines (n_train must be below {2 * min(counts.values())})"
            )
        train = per_class_indices(digits, {d: per_digit for d in DIGITS}, c.split_seed)
        test = np.setdiff1d(np.arange(digits.size), train, assume_unique=True)
        label = lambda idx: torch.from_numpy((digits[idx] == DIGITS[1]).astype(np.int64))  # noqa: E731
        n_test = {d: counts[d] - per_digit for d in DIGITS}
        return DataSplit(
            upsample(images[train], c.size), label(train), upsample(images[test], c.size), label(test),
            n_classes=2, domain=Domain("box", 0.0, 1.0),
            notes=(
                f"scikit-learn load_digits, digits 1 (label 0) and 9 (label 1): {per_digit} per digit train, "
                f"the rest test ({n_test[1]} ones, {n_test[9]} nines; split_seed={c.split_seed}); "
                f"8x8 upsampled to {c.size}x{c.size} (bilinear)"
            ),
        )


@qbench.hookimpl
def register_datasets(register) -> None:
    """Register :class:`Digits1v9`."""
    register(Digits1v9)
