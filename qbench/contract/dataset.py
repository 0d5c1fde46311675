"""The dataset contract: a named loader of train/test tensors plus their input domain."""

from __future__ import annotations

from typing import ClassVar

from qbench.contract.component import Component
from qbench.contract.context import Context
from qbench.contract.split import DataSplit, TrainingSchedule

__all__ = ["Dataset", "DataSplit", "TrainingSchedule"]


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
    #: the test split may be stored class by class (every example of one class, then the next), so that its
    #: first ``n_test`` examples would be a few classes only: a plan then takes ``n_test`` examples round-robin
    #: over the classes (``Plan.test_selection = "class-interleaved"``) unless told otherwise
    test_split_by_class: ClassVar[bool] = False

    def load(self, ctx: Context) -> DataSplit:
        """Return the train/test split."""
        raise NotImplementedError  # abstract
