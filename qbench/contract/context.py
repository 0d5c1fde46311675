"""The per-cell context handed to every plugin call: seed and RNGs, device, directories, progress, logger."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch

from qbench.contract.progress import Reporter
from qbench.contract.rng import derive_seed
from qbench.contract.split import DataSplit

if TYPE_CHECKING:
    from qbench.contract.checkpoint import Checkpoint


@dataclass
class Context:
    """Everything a plugin call may use besides its own config.

    Randomness comes only from ``generator`` (torch) and ``rng`` (numpy), both seeded for this cell; no
    plugin should touch global RNG state (the runner isolates it anyway for libraries that do).
    """

    seed: int
    #: the run's seed index (0..N-1) the cell belongs to, for caches shared by all of a seed's cells
    run_seed: int = 0
    #: the torch device the cell computes on (``--torch-device``); torch's default device while it runs,
    #: and where the data split and the built model are
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    data_dir: Path | None = None
    #: a folder for plugin caches keyed by their own inputs (e.g. transfer-attack surrogates)
    cache_dir: Path | None = None
    progress: Reporter = field(default_factory=Reporter)
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("qbench"))
    #: forward samples per gradient for stochastic models (expectation over transformation)
    n_eot: int = 20
    #: evaluation draws per set (A selects, B reports; scoring v2) of a stochastic model's prediction
    n_repeat: int = 10
    #: the board's readout: single-shot measurements per deployed prediction of a quantum classifier
    #: (None: exact class probabilities); see :mod:`qbench.contract.readout`
    shots: int | None = None
    #: PennyLane device name to execute circuits on instead of qbench's engine (None = the engine)
    quantum_device: str | None = None
    #: the cell's dataset split (attacks read the domain, class count and, for surrogates, the train set)
    data: "DataSplit | None" = None
    #: returns the board's undefended twin (the ``none`` model: same data, architecture, seed and standard
    #: training) for transfer attacks; None outside a runner cell
    undefended_twin: "Callable[[], torch.nn.Module] | None" = None
    #: where a training's epoch loops save their progress (set by the runner for trainings; None elsewhere),
    #: see :mod:`qbench.contract.checkpoint`
    checkpoint: "Checkpoint | None" = None
    generator: torch.Generator = field(init=False)
    rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        # on the cell's device: torch draws with a generator of the tensor's device only
        self.generator = torch.Generator(device=self.device).manual_seed(self.seed)
        self.rng = np.random.default_rng(self.seed)

    def child(self, *labels: str) -> "Context":
        """A context with its own seed stream derived from this one's seed and ``labels``."""
        return replace(self, seed=derive_seed(self.seed, *labels))

    def for_run(self, *labels: str) -> "Context":
        """A context seeded from the run's seed and ``labels`` only (the same in every cell of the seed)."""
        return replace(self, seed=derive_seed(self.run_seed, *labels))
