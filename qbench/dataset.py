"""The dataset contract: a named loader of train/test tensors plus their input domain."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import torch

from qbench.component import Component
from qbench.domain import Domain

if TYPE_CHECKING:
    from qbench.context import Context


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

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input example."""
        return tuple(self.x_train.shape[1:])


class Dataset(Component):
    """A registered dataset. Subclasses set the class attributes and implement :meth:`load`.

    ``load`` must be deterministic for a given config and data directory (the split is seed-fixed by the
    config, not by the cell's seed), and must read files only from ``ctx.data_dir``, raising
    :class:`qbench.errors.DataError` naming any missing or corrupt file and where it was looked for.
    """

    kind: ClassVar[str] = "dataset"
    #: the default training schedule for models on this dataset
    training: ClassVar[TrainingSchedule] = TrainingSchedule()
    #: the dataset's default evaluation epsilons and robustness-curve sweep (None: the track's)
    epsilons: ClassVar[tuple[float, ...] | None] = None
    sweep: ClassVar[tuple[float, ...] | None] = None

    def load(self, ctx: "Context") -> DataSplit:
        """Return the train/test split."""
        raise NotImplementedError  # abstract
