"""The data a dataset hands over: its fixed train/test split, and the default training schedule on it.

Apart from :mod:`.dataset` so that the context (which carries a cell's split) and the dataset contract (whose
``load`` takes a context) do not import each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from qbench.contract.domain import Domain


@dataclass(frozen=True)
class TrainingSchedule:
    """How a model is trained on a dataset by default (the paper protocol); ``--epochs`` etc. override.

    ``lr_decay``: ``constant``, or ``cosine`` (annealed to 0 over all the steps, Loshchilov & Hutter 2017).
    ``augment``: ``none``, or ``crop-flip`` (every training batch: a random crop of the 4-pixel zero-padded
    image and a horizontal flip with probability 1/2, He et al. 2016's CIFAR recipe).
    """

    epochs: int = 100
    lr: float = 0.005
    batch_size: int = 64
    optimizer: str = "adam"
    lr_decay: str = "constant"
    augment: str = "none"

    #: the fields every stored training's key has; later ones enter a key only when they differ from their
    #: defaults, so adding a schedule option never changes the key of a training stored before it
    KEYED_ALWAYS = ("epochs", "lr", "batch_size", "optimizer")

    def __post_init__(self) -> None:
        if self.lr_decay not in ("constant", "cosine"):
            raise ValueError(f"lr_decay must be 'constant' or 'cosine', not {self.lr_decay!r}")
        if self.augment not in ("none", "crop-flip"):
            raise ValueError(f"augment must be 'none' or 'crop-flip', not {self.augment!r}")

    def key_dict(self) -> dict:
        """The schedule as it enters a training's key and an entry's protocol (see ``KEYED_ALWAYS``)."""
        defaults = TrainingSchedule.__dataclass_fields__
        return {name: getattr(self, name) for name in defaults
                if name in self.KEYED_ALWAYS or getattr(self, name) != defaults[name].default}


@dataclass
class DataSplit:
    """The tensors of one dataset: a fixed train/test split, labels as int64 class indices."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int
    domain: Domain
    #: data files read, as ``{path: sha256}`` (provenance); empty for generated data
    files: dict[str, str] = field(default_factory=dict)
    #: anything a reader of a result must know about the split (e.g. "test = 20 per class of the train file")
    notes: str = ""

    def __post_init__(self) -> None:
        for name in ("x_train", "x_test"):
            if getattr(self, name).shape[0] != getattr(self, "y" + name[1:]).shape[0]:
                raise ValueError(f"{name} and its labels differ in length")

    def to(self, device: torch.device | str) -> "DataSplit":
        """This split with its four tensors on ``device`` (itself when they are already there)."""
        device = torch.device(device)
        if all(getattr(self, n).device == device for n in ("x_train", "y_train", "x_test", "y_test")):
            return self
        return replace(self, **{n: getattr(self, n).to(device) for n in ("x_train", "y_train", "x_test", "y_test")})

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input example."""
        return tuple(self.x_train.shape[1:])
