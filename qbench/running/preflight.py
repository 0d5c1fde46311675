"""What a run checks and says before it starts: the work still to do and its cost, and plugins whose code
changed without a new version.

``qbench evaluate``, ``qbench leaderboard run`` and ``qbench reproduce`` print, before computing anything,
the trainings and cells not in the store yet and an estimate of their time (:func:`missing_work`,
:func:`estimate`, :func:`describe`). "Missing" is decided by the same keys as the runner's
(:meth:`Plan.training_spec` / :meth:`Plan.cell_spec` hashed with :func:`qbench.hashing.config_hash`; a
failed cell is computed again). Each item's time is the median of the store's own timings of the same
(dataset, model, defense, attack) where it has some, else the measured defaults below.

Cached results are keyed by each plugin's name, version and config, so a plugin edited without a new
``version`` silently reuses results of its old code. :func:`check_plugin_sources` records a hash of each
used component's module source per (kind, name, version) in the store's ``meta`` table and warns when it
changes under the same version.
"""

from __future__ import annotations

import ast
import hashlib
import json
import statistics
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import torch

from qbench.contract.attack import attack_label
from qbench.contract.checkpoint import read_meta
from qbench.running.chance import chance_verdict
from qbench.running.plan import seed_cells
from qbench.running.store import checkpoint_path
from qbench.contract.tracks import MAPPED_DNN, QNN

if TYPE_CHECKING:
    from qbench.contract.component import Component
    from qbench.contract.dataset import DataSplit
    from qbench.running.plan import Plan
    from qbench.running.store import Store


# ---------------------------------------------------------------------------------------------------------
# Default timings, used where the store has no timing of the same (dataset, model, defense, attack).
#
# Measured once, on 2026-12-01 (qbench 0.2.0), on the 2-core development machine while it ran other
# benchmark jobs (OMP_NUM_THREADS=1, in-process executor), from the seconds the store records for each cell
# of these runs of the undefended model:
#   moons/qnn       `qbench evaluate --defense none` (3 seeds, 200 test points, 100 epochs: 29 s wall)
#   ising/qnn       `qbench evaluate --defense none --dataset ising --seeds 1 --n-test 40 --epochs 5`
#   mnist-1v9/qnn   `qbench evaluate --defense none --dataset mnist-1v9 --seeds 1 --n-test 200 --epochs 2`
#   mnist-1v9/qcnn  `... --dataset mnist-1v9 --model qcnn --seeds 1 --n-test 20 --epochs 2`
#   mnist/lenet     `qbench evaluate --track mapped-dnn --defense none --seeds 1 --n-test 200 --epochs 1
#                   --n-eot 5` (its one epoch: 8.9 s)
# Training times per epoch: moons and LeNet from these runs (a full schedule, and one of LeNet's 5 epochs);
# ising, mnist-1v9 and the QCNN from the published entries (leaderboards/*/*/*.json, `training.seconds`:
# full schedules on the same kind of machine), since a run of 2-5 epochs is dominated by its start. The
# defenses' training factors are the entries' `training.relative_cost`. The defenses' cell factors
# come from the moons-qnn-angle cells of the published store as committed in 7ce3b3e (450 cells of 5
# defenses, computed at 1f31f35 under qbench 0.2.0; removed from leaderboards/store since) and from
# `qbench evaluate --track mapped-dnn --defense intrinsic_noise --attack fgsm --attack pgd --attack
# noiseless-pgd --n-test 200 --n-eot 5 --seeds 1 --epochs 1`. Not measured: digits-1v9 (timed like
# mnist-1v9: the same 16x16 inputs) and the CIFAR models (leaderboards/RUNS.md: AlexNet's 10-epoch training
# 916 s, VGG16's 78 min; their cells taken as ten and twenty times LeNet's, RUNS.md's ratio for AlexNet).
# A cell's time is taken as proportional to its examples, except the transfer attacks', which is their
# surrogate's training; a training's as proportional to its epochs and training examples; a circuit's as
# proportional to its depth (``n_layers``). Expect a factor of two either way; the store's own timings
# replace these as soon as it holds cells and trainings of the same kind.


@dataclass(frozen=True)
class Timings:
    """Measured seconds of the undefended model on one (dataset, model)."""

    #: seconds per epoch of standard training on ``n_train`` training examples
    train_epoch: float
    n_train: int
    #: the examples the cells were measured on
    n_test: int
    #: seconds of one cell by attack label ("clean" for the clean evaluation); "*" for any other attack
    cells: dict[str, float]


#: attacks whose cost does not grow with the number of examples (a surrogate trained per cell)
FIXED_COST = ("transfer-fnn", "transfer-cnn")

_MNIST_1V9 = Timings(
    train_epoch=0.09, n_train=400, n_test=200,
    cells={"clean": 0.68, "fgsm": 0.17, "bim": 0.21, "bim[n_eot=1]": 0.21, "mim": 0.32, "pgd": 0.80,
           "apgd-ce": 2.5, "apgd-dlr": 0.0, "square": 14.4, "nes": 28.7, "transfer-fnn": 0.78,
           "transfer-cnn": 38.0, "twin-pgd": 0.84, "twin-apgd-ce": 3.9, "*": 2.0},
)
_LENET = Timings(
    train_epoch=8.9, n_train=60000, n_test=200,
    cells={"clean": 0.26, "noiseless-fgsm": 0.11, "noiseless-pgd": 2.1, "fgsm": 0.08, "pgd": 2.1, "apgd-ce": 7.5,
           "apgd-dlr": 7.2, "square": 40.8, "twin-pgd": 1.3, "twin-apgd-ce": 4.2, "*": 4.0},
)
DEFAULT_TIMINGS: dict[tuple[str, str], Timings] = {
    # apgd-dlr, square and transfer-cnn skip 2-D inputs and binary tasks at once
    ("moons", "qnn"): Timings(
        train_epoch=0.043, n_train=800, n_test=200,
        cells={"clean": 0.34, "fgsm": 0.058, "bim": 0.089, "bim[n_eot=1]": 0.088, "mim": 0.11, "pgd": 0.20,
               "apgd-ce": 0.57, "apgd-dlr": 0.0, "square": 0.0, "nes": 0.44, "transfer-fnn": 0.74,
               "transfer-cnn": 0.0, "twin-pgd": 0.21, "twin-apgd-ce": 0.59, "*": 0.2},
    ),
    ("ising", "qnn"): Timings(
        train_epoch=0.13, n_train=599, n_test=40,
        cells={"clean": 0.16, "fgsm": 0.068, "bim": 0.081, "bim[n_eot=1]": 0.077, "mim": 0.069, "pgd": 0.16,
               "apgd-ce": 0.45, "apgd-dlr": 0.0, "square": 2.1, "nes": 0.20, "transfer-fnn": 0.63,
               "transfer-cnn": 4.7, "twin-pgd": 0.23, "twin-apgd-ce": 0.72, "*": 0.2},
    ),
    ("mnist-1v9", "qnn"): _MNIST_1V9,
    ("digits-1v9", "qnn"): _MNIST_1V9,
    ("mnist-1v9", "qcnn"): Timings(
        train_epoch=0.35, n_train=400, n_test=20,
        cells={"clean": 0.36, "fgsm": 0.13, "bim": 0.16, "bim[n_eot=1]": 0.16, "mim": 0.23, "pgd": 0.49,
               "apgd-ce": 1.6, "apgd-dlr": 0.0, "square": 17.6, "nes": 1.4, "transfer-fnn": 0.76,
               "transfer-cnn": 31.5, "twin-pgd": 0.52, "twin-apgd-ce": 1.7, "*": 0.5},
    ),
    ("mnist", "lenet"): _LENET,
    ("cifar10", "alexnet"): Timings(92.0, 50000, 200, {k: 10 * v for k, v in _LENET.cells.items()}),
    ("cifar100", "vgg16"): Timings(470.0, 50000, 200, {k: 20 * v for k, v in _LENET.cells.items()}),
}

#: a dataset/model with no timings of its own is timed like its track's default board
TRACK_REFERENCE = {QNN: ("moons", "qnn"), MAPPED_DNN: ("mnist", "lenet")}

#: a defense's training time relative to standard training on each board (the published entries'
#: ``relative_cost``), and per track for other datasets and models
TRAINING_FACTOR: dict[tuple[str, str], dict[str, float]] = {
    ("moons", "qnn"): {"adversarial_training": 2.4, "depolarizing": 1.3, "gaussian_augmentation": 1.9, "noise_layer": 6.9},
    ("ising", "qnn"): {"adversarial_training": 1.6, "depolarizing": 1.3, "gaussian_augmentation": 2.7, "noise_layer": 14.1},
    ("mnist-1v9", "qnn"): {"adversarial_training": 4.2, "depolarizing": 2.8, "gaussian_augmentation": 3.4,
                           "noise_layer": 17.7},
    ("mnist-1v9", "qcnn"): {"adversarial_training": 2.5, "depolarizing": 1.3, "gaussian_augmentation": 1.8,
                            "noise_layer": 5.5},
    ("mnist", "lenet"): {"adversarial_training": 10.4, "gaussian_augmentation": 1.9},
}
TRACK_TRAINING_FACTOR: dict[str, dict[str, float]] = {
    QNN: {"adversarial_training": 2.5, "depolarizing": 1.3, "gaussian_augmentation": 2.5, "noise_layer": 10.0},
    MAPPED_DNN: {"adversarial_training": 10.0, "gaussian_augmentation": 2.0},
}

@dataclass(frozen=True)
class CellFactors:
    """A stochastic defense's cell times relative to the undefended model's on the same board."""

    #: the EOT samples per gradient they were measured at
    n_eot: int
    #: gradient attacks averaged over EOT samples (:data:`EOT_ATTACKS`), scaled by ``n_eot`` / this one's
    eot: float
    #: every other cell by attack label or name ("clean", query and transfer attacks); "*" for the rest
    labels: dict[str, float]
    #: cells whose time is a fixed number of seconds instead, whatever the examples or the model (a
    #: deployment's one-off cost, paid by the first cell of a deployed model: the clean one)
    fixed: dict[str, float] = field(default_factory=dict)

    def factor(self, label: str, n_eot: int) -> float:
        """The factor of a cell with attack ``label`` at ``n_eot`` EOT samples."""
        name = label.split("[")[0]
        if name in EOT_ATTACKS and "n_eot=1" not in label:
            return self.eot * n_eot / self.n_eot
        return self.labels.get(label, self.labels.get(name, self.labels["*"]))


#: attacks whose gradient is an average over ``n_eot`` forward samples of a stochastic model
EOT_ATTACKS = ("fgsm", "bim", "pgd", "mim", "apgd-ce", "apgd-dlr", "apgd-t")

#: stochastic defenses' cell factors per board, and per track for other boards: noise_layer and
#: depolarizing from the moons-qnn-angle cells of 7ce3b3e (EOT-20), noise_layer on mnist-1v9 from the README's
#: measured suite (200 images, EOT-20: APGD-CE 158 s, Square 118 s, PGD 85 s, NES 78 s, probe 71 s), the
#: noisy mappings from the LeNet intrinsic_noise run above (EOT-5; its clean cell, 79 s, is mostly the
#: mapping's deployment, paid once per deployed model) with Square from leaderboards/RUNS.md; qnad taken
#: as intrinsic_noise
_MOONS_NOISE_LAYER = CellFactors(20, 25.0, {"clean": 5.0, "nes": 10.0, "transfer-fnn": 1.0, "transfer-cnn": 1.0, "*": 20.0})
_MOONS_DEPOLARIZING = CellFactors(20, 4.3, {"clean": 4.0, "nes": 9.5, "transfer-fnn": 1.0, "transfer-cnn": 1.0, "*": 4.0})
_NOISY_MAPPING = CellFactors(5, 15.0, {"noiseless-fgsm": 2.0, "noiseless-pgd": 2.0, "square": 4.7, "*": 15.0},
                             fixed={"clean": 75.0})
CELL_FACTOR: dict[tuple[str, ...], CellFactors] = {
    ("mnist-1v9", "qnn", "noise_layer"): CellFactors(20, 60.0, {"clean": 5.0, "square": 8.0, "nes": 3.0,
                                                                 "transfer-fnn": 1.0, "transfer-cnn": 1.0, "*": 20.0}),
    (QNN, "noise_layer"): _MOONS_NOISE_LAYER,
    (QNN, "depolarizing"): _MOONS_DEPOLARIZING,
    (MAPPED_DNN, "intrinsic_noise"): _NOISY_MAPPING,
    (MAPPED_DNN, "qnad"): _NOISY_MAPPING,
}


# ---------------------------------------------------------------------------------------------------------
# what is missing


@dataclass(frozen=True)
class Item:
    """One training or one cell still to compute, with what its time is looked up by."""

    kind: str  # "training" or "cell"
    track: str
    dataset: str
    model: str
    #: the defense; "standard" for a training shared by the standard-training defenses
    defense: str
    #: the cell's attack label, "clean" for its clean evaluation; "" for a training
    label: str
    #: a training's epochs; a cell's examples
    units: int
    #: the training split's size (a training's time per epoch grows with it)
    n_train: int = 0
    #: the model's depth relative to its default (``n_layers``; the defaults were measured at the default)
    scale: float = 1.0
    #: EOT samples per gradient of the plan
    n_eot: int = 20
    #: a training's epochs done by the checkpoint it resumes from (0: none)
    resumes_after: int = 0
    #: seconds per epoch the checkpointed part of a resuming training took (0: none)
    checkpoint_epoch_seconds: float = 0.0
    #: the part of a cell's attack still to run (below 1 where it resumes from a checkpoint)
    remaining: float = 1.0


@dataclass
class Work:
    """The trainings and cells of some plans that the store does not hold yet."""

    trainings: list[Item] = field(default_factory=list)
    cells: list[Item] = field(default_factory=list)
    #: every distinct cell of the plans, and how many of them are stored (not failed)
    total_cells: int = 0
    stored_cells: int = 0


def plan_keys(plan: "Plan", seed: int) -> tuple[str, list[tuple[str, str, str]]]:
    """The training key of ``seed`` and its cells as (key, kind, label), exactly as the runner keys them
    (cascaded and carried cells included: their keys name their gates')."""
    s = seed_cells(plan, seed)
    return s.train_key, [(c.key, c.spec["kind"], "clean" if c.attack is None else attack_label(c.attack)) for c in s.cells]


def _depth(plan: "Plan") -> float:
    """The model's ``n_layers`` over its default's (1 for a model without that option)."""
    depth = plan.model.config_dict().get("n_layers")
    default = type(plan.model).from_options({}, plan.track).config_dict().get("n_layers")
    return depth / default if isinstance(depth, int) and isinstance(default, int) and default > 0 else 1.0


def _training_defense(plan: "Plan") -> str:
    return "standard" if plan.defense.standard_training else plan.defense.name


def _cell_remaining(store: "Store", key: str) -> float:
    """The part of cell ``key``'s attack its checkpoint leaves to run (1: none, or one this torch cannot use)."""
    meta = read_meta(checkpoint_path(store.artifacts, key))
    if meta is None or meta["key"] != key or meta["torch"] != str(torch.__version__) or not meta["meta"].get("cell"):
        return 1.0
    n, batch = meta["meta"].get("n_examples"), meta["meta"].get("batch_size")
    if not isinstance(n, int) or not isinstance(batch, int) or n <= 0:
        return 1.0
    return max(0.0, 1.0 - min(meta["epoch"] * batch, n) / n)


def missing_work(store: "Store", jobs: Iterable[tuple["Plan", "DataSplit"]]) -> Work:
    """What the runner would compute for ``jobs`` (plan, its dataset's split) against ``store``."""
    work = Work()
    seen_cells: set[str] = set()
    seen_trainings: set[str] = set()
    for plan, data in jobs:
        n = len(data.y_test) if plan.n_test is None else min(plan.n_test, len(data.y_test))
        names = (plan.track, plan.dataset.name, plan.model.name)
        extra = {"n_train": len(data.y_train), "scale": _depth(plan), "n_eot": plan.n_eot}
        keys = {seed: plan_keys(plan, seed) for seed in plan.seeds}
        # a board's model found at chance on its stored clean cells gets no attack cells (qbench.running.chance)
        unattacked = chance_verdict(plan, data.n_classes, [store.get_cell(k[1][0][0]) for k in keys.values()]) is not None
        for seed in plan.seeds:
            train_key, cells = keys[seed]
            needed = False
            for key, _kind, label in cells[:1] if unattacked else cells:
                if key in seen_cells:
                    continue
                seen_cells.add(key)
                work.total_cells += 1
                if store.has_cell(key):
                    work.stored_cells += 1
                    continue
                needed = True
                work.cells.append(Item("cell", *names, plan.defense.name, label, n, remaining=_cell_remaining(store, key),
                                       **extra))
            if needed and train_key not in seen_trainings:
                seen_trainings.add(train_key)
                if store.get_training(train_key) is None:
                    meta = read_meta(checkpoint_path(store.artifacts, train_key))
                    usable = meta is not None and meta["key"] == train_key and meta["torch"] == str(torch.__version__)
                    # resuming in a later loop of a fit reruns the loops before it: timed as a whole training
                    done = meta["epoch"] if usable and meta["loop"] == 1 else 0
                    epochs = max(plan.schedule.epochs - done, 1) if done else plan.schedule.epochs
                    per_epoch = meta["seconds"] / done if done else 0.0
                    work.trainings.append(
                        Item("training", *names, _training_defense(plan), "", epochs, resumes_after=done,
                             checkpoint_epoch_seconds=per_epoch, **extra)
                    )
    return work


# ---------------------------------------------------------------------------------------------------------
# what it costs


@dataclass
class Estimate:
    """Estimated seconds of some work, and where each item's time came from."""

    seconds: float = 0.0
    #: items timed by the store's own medians
    from_store: int = 0
    #: items timed by :data:`DEFAULT_TIMINGS`
    from_defaults: int = 0
    #: (dataset, model) pairs with no timings at all, timed like their track's default board
    guessed: set[tuple[str, str]] = field(default_factory=set)


def store_timings(store: "Store") -> tuple[dict, dict]:
    """The store's timings: (cells by (dataset, model, defense, label) -> [(seconds, n)], trainings by
    (dataset, model, defense) -> [seconds per epoch])."""
    trainings: dict[str, tuple[str, str]] = {}
    train_times: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for key, spec_text, seconds in store.conn.execute("SELECT key, spec, seconds FROM trainings"):
        spec = json.loads(spec_text)
        dataset, model = (spec.get("dataset") or {}).get("name"), (spec.get("model") or {}).get("name")
        trainings[key] = (dataset, model)
        defense = spec.get("defense") or {}
        name = "standard" if defense.get("standard_training") else defense.get("name")
        epochs = (spec.get("schedule") or {}).get("epochs") or 1
        if seconds and seconds > 0:
            train_times[(dataset, model, name)].append(seconds / epochs)
    cell_times: dict[tuple[str, str, str, str], list[tuple[float, int]]] = defaultdict(list)
    rows = store.conn.execute(
        "SELECT train_key, json_extract(spec, '$.defense.name'), kind, attack, seconds, n FROM cells "
        "WHERE status != 'failed'"
    )
    for train_key, defense, kind, attack, seconds, n in rows:
        if train_key not in trainings or not n:
            continue
        label = "clean" if kind == "clean" else attack
        cell_times[(*trainings[train_key], defense, label)].append((seconds, n))
    return cell_times, train_times


def _base(item: Item, est: Estimate) -> Timings:
    timings = DEFAULT_TIMINGS.get((item.dataset, item.model))
    if timings is None:
        est.guessed.add((item.dataset, item.model))
        timings = DEFAULT_TIMINGS[TRACK_REFERENCE.get(item.track, TRACK_REFERENCE[QNN])]
    return timings


def _default_cell(item: Item, est: Estimate) -> float:
    timings = _base(item, est)
    seconds = timings.cells.get(item.label, timings.cells.get(item.label.split("[")[0], timings.cells["*"]))
    if item.label.split("[")[0] not in FIXED_COST:
        seconds *= item.units / timings.n_test
    factors = CELL_FACTOR.get((item.dataset, item.model, item.defense)) or CELL_FACTOR.get((item.track, item.defense))
    if factors is not None and item.label in factors.fixed:
        return factors.fixed[item.label]
    factor = factors.factor(item.label, item.n_eot) if factors else 1.0
    return seconds * factor * item.scale


def _default_training(item: Item, est: Estimate) -> float:
    timings = _base(item, est)
    per_epoch = timings.train_epoch * (item.n_train / timings.n_train if item.n_train else 1.0)
    factors = TRAINING_FACTOR.get((item.dataset, item.model)) or TRACK_TRAINING_FACTOR.get(item.track, {})
    return per_epoch * item.units * item.scale * factors.get(item.defense, 1.0)


def estimate(store: "Store", work: Work) -> Estimate:
    """The estimated seconds of ``work``: the store's medians where it has them, else the defaults."""
    cell_times, train_times = store_timings(store)
    est = Estimate()
    for item in work.trainings:
        per_epoch = train_times.get((item.dataset, item.model, item.defense))
        standard = train_times.get((item.dataset, item.model, "standard"))
        if item.checkpoint_epoch_seconds:  # this very training's own pace so far
            est.seconds += item.checkpoint_epoch_seconds * item.units
            est.from_store += 1
        elif per_epoch:
            est.seconds += statistics.median(per_epoch) * item.units
            est.from_store += 1
        elif standard and item.defense != "standard":
            # the board's own standard training, scaled by the defense's measured cost ratio
            factors = TRAINING_FACTOR.get((item.dataset, item.model)) or TRACK_TRAINING_FACTOR.get(item.track, {})
            est.seconds += statistics.median(standard) * item.units * factors.get(item.defense, 1.0)
            est.from_store += 1
        else:
            est.seconds += _default_training(item, est)
            est.from_defaults += 1
    for item in work.cells:
        times = cell_times.get((item.dataset, item.model, item.defense, item.label))
        if times:
            same = [s for s, n in times if n == item.units]
            seconds = statistics.median(same) if same else statistics.median(s / n for s, n in times) * item.units
            est.from_store += 1
        else:
            seconds = _default_cell(item, est)
            est.from_defaults += 1
        est.seconds += seconds * item.remaining
    return est


def duration(seconds: float) -> str:
    """``8 s``, ``4 min``, ``2 h 10 min``."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def describe(work: Work, est: Estimate, workers: int = 1) -> list[str]:
    """One or two lines for stderr: what will be computed and what it should cost."""
    if not work.cells:
        return [f"qbench: nothing to compute: all {_count(work.total_cells, 'cell')} are in the store"]
    stored = f"{work.stored_cells} of {work.total_cells} already in the store"
    trainings = _count(len(work.trainings), "training")
    resumed = [t.resumes_after for t in work.trainings if t.resumes_after]
    if resumed:
        trainings += f" ({len(resumed)} resuming from checkpoints, after epoch {', '.join(map(str, resumed))})"
    cells = _count(len(work.cells), "cell")
    resuming = sum(1 for c in work.cells if c.remaining < 1)
    if resuming:
        cells += f" ({resuming} resuming from checkpoints)"
    what = f"qbench: to compute: {trainings} and {cells} ({stored})"
    if est.from_store and est.from_defaults:
        source = f"the store's timings for {est.from_store} items, qbench's defaults for {est.from_defaults}"
    elif est.from_store:
        source = "the store's timings of the same cells and trainings"
    else:
        source = "qbench's default timings; the store has none of the same kind yet"
    cost = f"about {duration(est.seconds)}"
    if workers > 1 and est.seconds >= 120:
        cost += f" of compute, {duration(est.seconds / workers)} on {workers} workers"
    line = f"qbench: estimated cost: {cost} (from {source})"
    if est.guessed:
        pairs = ", ".join(f"{d}/{m}" for d, m in sorted(est.guessed))
        line += f"; no timings for {pairs}: a rough guess"
    return [what, line]


# ---------------------------------------------------------------------------------------------------------
# plugins edited without a new version


def source_file(cls: type) -> Path | None:
    """The source file of the module defining ``cls`` (None for a class without one)."""
    module = sys.modules.get(cls.__module__)
    path = getattr(module, "__file__", None)
    return Path(path) if path and Path(path).is_file() else None


def source_hash(path: Path) -> str:
    """SHA-256 of what a module's code does: its syntax tree without import statements and docstrings.

    Comments, formatting, docstrings and where names are imported from (``qbench`` grouped its core into
    layers without changing any plugin's behaviour) do not change it; any change to a statement or an
    expression does. The price: importing a different function under the same name goes unnoticed. A file
    that does not parse is hashed by its bytes.
    """
    source = path.read_bytes()
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return hashlib.sha256(source).hexdigest()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if not isinstance(body, list):
            continue
        kept = [s for s in body if not isinstance(s, (ast.Import, ast.ImportFrom))]
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and kept \
                and isinstance(kept[0], ast.Expr) and isinstance(kept[0].value, ast.Constant) \
                and isinstance(kept[0].value.value, str):
            kept = kept[1:]  # the docstring
        node.body = kept or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree, annotate_fields=False).encode()).hexdigest()


def meta_key(component: "Component | type") -> str:
    """The ``meta`` key recording the source hash of a component's (kind, name, version).

    ``plugin-code:``: the hash of :func:`source_hash`; stores written before it recorded the bytes' hash
    under ``plugin-source:``, which is no longer compared (the first run after the change records anew).
    """
    return f"plugin-code:{component.kind}:{component.name}:{component.version}"


def check_plugin_sources(store: "Store", components: Iterable["Component | type"], record: bool = True) -> list[str]:
    """Warnings (one line each) for components whose module source differs from the one this store recorded
    for the same (kind, name, version); with ``record``, notes the hash where the store has none yet (the
    first code to run a version is the one its cached results came from)."""
    warnings = []
    seen: set[str] = set()
    for component in components:
        cls = component if isinstance(component, type) else type(component)
        key = meta_key(cls)
        path = source_file(cls)
        if key in seen or path is None:
            continue
        seen.add(key)
        digest = source_hash(path)
        row = store.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        if row is None:
            if record:
                store.conn.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)",
                                   (key, json.dumps({"sha256": digest, "file": str(path)})))
            continue
        try:
            recorded = json.loads(row[0]).get("sha256")
        except (ValueError, AttributeError):
            recorded = None
        if recorded != digest:
            warnings.append(
                f"qbench: warning: {cls.kind} {cls.name!r}: its source ({path}) changed since this store first ran "
                f"version {cls.version!r}, but its version did not; results cached under version {cls.version!r} "
                "came from the old code: bump `version` to recompute them"
            )
    return warnings


def plan_components(plans: Iterable["Plan"]) -> list["Component"]:
    """Every component a plan runs: dataset, model, defense, attacks, sweep attacks, probe."""
    out: list = []
    for plan in plans:
        out += [plan.dataset, plan.model, plan.defense, *plan.attacks, *plan.sweep_attacks]
        if plan.probe is not None:
            out.append(plan.probe)
    return out
