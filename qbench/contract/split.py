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
    """How a model is trained on a dataset by default (the paper protocol); ``--epochs`` etc. override."""

    epochs: int = 100
    lr: float = 0.005
    batch_size: int = 64
    optimizer: str = "adam"


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
