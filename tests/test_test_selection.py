"""Which ``n_test`` test examples a run evaluates: the first ones, or round-robin over the classes where the
dataset stores its test split class by class (CIFAR-100's held-out images; the first 200 were 10 classes).

Real runs through the runner into real SQLite stores, with a generated dataset whose test split is sorted
by class and a deployed model that always answers class 0, so the clean accuracy *is* the share of class 0
among the examples evaluated.
"""

from __future__ import annotations

import json
from pathlib import Path

import fault_plugins
import pytest
import torch

import qbench
from qbench import Dataset, Defense, Domain
from qbench.contract.dataset import TrainingSchedule
from qbench.contract.split import DataSplit
from qbench.contract.testing import tiny_split
from qbench.publishing.leaderboard import GridOptions
from qbench.registry import load_registry
from qbench.running.grid import BOARDS, board_plan
from qbench.running.plan import seed_cells
from qbench.running.planning import make_plan
from qbench.running.runner import Runner
from qbench.running.store import Store
from qbench.running.tasks import class_interleaved, evaluation_split

ROOT = Path(__file__).resolve().parents[1]


def _sorted_split() -> DataSplit:
    data = tiny_split(n_test=40)
    order = torch.argsort(data.y_test, stable=True)
    return DataSplit(data.x_train, data.y_train, data.x_test[order], data.y_test[order], n_classes=2,
                     domain=data.domain, notes="tiny generated, test split sorted by class")


class SortedBox(Dataset):
    """The tiny generated problem with its 40 test examples stored class by class, and saying so."""

    name = "selection_sorted_box"
    description = "the tiny problem, test split sorted by class (declared)"
    version = "1"
    tracks = ("qnn",)
    test_split_by_class = True

    def load(self, ctx):
        return _sorted_split()


class SortedBoxUndeclared(SortedBox):
    """The same split, not declared: runs take its first examples."""

    name = "selection_sorted_box_undeclared"
    description = "the tiny problem, test split sorted by class (not declared)"
    test_split_by_class = False


class _AlwaysZero(torch.nn.Module):
    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner  # trained as usual; its answer is ignored

    def forward(self, x):
        return torch.tensor([[1.0, 0.0]]) + 0.0 * self.inner(x)


class AlwaysZero(Defense):
    """Deploys a model that answers class 0 whatever the input."""

    name = "selection_always_zero"
    description = "answers class 0"
    tracks = ("qnn",)

    def prepare(self, model, ctx):
        return _AlwaysZero(model)


class _Plugins:
    @qbench.hookimpl
    def register_datasets(self, register):
        register(SortedBox)
        register(SortedBoxUndeclared)

    @qbench.hookimpl
    def register_defenses(self, register):
        register(AlwaysZero)


@pytest.fixture(scope="module")
def registry():
    return load_registry([("faults", fault_plugins), ("selection", _Plugins())])


def run(registry, tmp_path, dataset: str, **settings):
    plan = make_plan(registry, "qnn", dataset=(dataset, {}), model=("tiny_linear", {}),
                     defense=("selection_always_zero", {}), attacks=[], epsilons=[], seeds=[0],
                     schedule=TrainingSchedule(epochs=1, lr=0.1, batch_size=16), n_test=10, **settings)
    with Store.open(tmp_path / f"{dataset}.sqlite") as store:
        result = Runner(store).run(plan)
        (cell,) = store.cells()
    return plan, result, cell


def test_class_interleaved_is_round_robin_over_the_classes_in_split_order():
    labels = torch.tensor([2, 0, 0, 1, 0, 2, 1, 0])
    order = class_interleaved(labels)
    assert order.tolist() == [1, 3, 0, 2, 6, 5, 4, 7]
    assert labels[order].tolist() == [0, 1, 2, 0, 1, 2, 0, 0]  # class 0 alone once the others run out
    signs = torch.tensor([1, 1, -1, -1, 1, -1])  # labels need not be 0..K-1
    assert signs[class_interleaved(signs)].tolist() == [-1, 1, -1, 1, -1, 1]


def test_a_split_stored_class_by_class_gives_every_class_its_share():
    y = torch.arange(100).repeat_interleave(20)  # CIFAR-100's held-out images: 20 of every class, in order
    data = DataSplit(torch.zeros(1, 1), torch.zeros(1, dtype=torch.long), torch.arange(2000.0)[:, None], y,
                     n_classes=100, domain=Domain("box", 0.0, 2000.0))
    first = evaluation_split(data, 200)
    assert torch.unique(first.y_test).numel() == 10
    picked = evaluation_split(data, 200, "class-interleaved")
    assert torch.bincount(picked.y_test, minlength=100).tolist() == [2] * 100
    # each class keeps its first images, and every example comes with its own label
    assert picked.x_test[:100, 0].tolist() == [20.0 * c for c in range(100)]
    assert torch.equal(y[picked.x_test[:, 0].long()], picked.y_test)
    assert evaluation_split(data, None, "class-interleaved") is data
    with pytest.raises(ValueError, match="test selection must be one of"):
        evaluation_split(data, 200, "random")


def test_a_declared_dataset_is_evaluated_on_every_class(registry, tmp_path):
    plan, result, cell = run(registry, tmp_path, "selection_sorted_box")
    assert plan.test_selection == "class-interleaved"
    assert cell.n == 10 and cell.accuracy == 0.5  # 5 examples of each class, the model answers 0
    assert cell.spec["test_selection"] == "class-interleaved"


def test_an_undeclared_dataset_keeps_its_first_examples_and_its_keys(registry, tmp_path):
    """The mutation check: without the declaration the same split is cut to its first (class-0) examples,
    and the cell spec has no selection field, so results stored before the selection existed keep their keys."""
    counts = torch.bincount(_sorted_split().y_test)
    assert counts[0] >= 10 and counts[1] >= 5
    plan, result, cell = run(registry, tmp_path, "selection_sorted_box_undeclared")
    assert plan.test_selection == "first"
    assert cell.accuracy == 1.0
    assert "test_selection" not in cell.spec
    # an explicit selection wins over the dataset's (how `qbench verify` rebuilds an older entry)
    plan, _, cell = run(registry, tmp_path / "explicit", "selection_sorted_box_undeclared",
                        test_selection="class-interleaved")
    assert cell.accuracy == 0.5 and cell.spec["test_selection"] == "class-interleaved"


@pytest.mark.parametrize("board_name", ["mnist-lenet", "cifar10-alexnet"])
def test_committed_boards_keep_their_cell_keys(board_name):
    """Boards on splits in no class order plan the very keys their committed entries were built from."""
    registry = load_registry()
    entry = json.loads((ROOT / "leaderboards" / "mapped-dnn" / board_name / "none.json").read_text())
    options = GridOptions(boards=[board_name], defenses=["none"], seeds=[0], follow=ROOT / "leaderboards")
    ((_board, (plan,)),) = list(options.plans(registry, "mapped-dnn"))
    assert plan.test_selection == "first"
    planned = {c.key for c in seed_cells(plan, 0).cells}
    committed = {c["key"] for c in entry["cells"] if c["seed"] == 0 and c["kind"] != "probe"}  # (needs the data)
    assert committed <= planned and len(committed) > 20


def test_the_vgg16_board_takes_two_images_of_every_class():
    registry = load_registry()
    board = next(b for b in BOARDS["mapped-dnn"] if b.name == "cifar100-vgg16")
    plan = board_plan(registry, board, "none", [0])
    assert plan.n_test == 200 and plan.test_selection == "class-interleaved"
    assert all(c.spec["test_selection"] == "class-interleaved" for c in seed_cells(plan, 0).cells)


def test_an_entry_with_the_selection_validates_and_says_so_on_its_pages():
    from qbench.errors import UsageError
    from qbench.publishing.entry import validate
    from qbench.publishing.render_html import board_html
    from qbench.publishing.render_markdown import board_page

    entry = json.loads((ROOT / "leaderboards" / "mapped-dnn" / "mnist-lenet" / "none.json").read_text())
    assert "the first 200 test examples" in board_page("mnist-lenet", [entry])
    entry["protocol"]["test_selection"] = "class-interleaved"
    validate(entry)
    wording = "200 test examples taken round-robin over the classes"
    assert wording in board_page("mnist-lenet", [entry]) and "the first 200 test examples" not in board_page(
        "mnist-lenet", [entry])
    assert wording in board_html("mnist-lenet", [entry], [])
    entry["protocol"]["test_selection"] = "first"  # only a selection other than the first is ever recorded
    with pytest.raises(UsageError, match="protocol/test_selection"):
        validate(entry)


def test_a_reproduction_says_which_examples_it_took(registry, tmp_path):
    from qbench.reproductions import report as rr
    from qbench.reproductions.experiment import Experiment, Setting, accuracy_value

    def experiment(dataset: str) -> Experiment:
        return Experiment(
            id="sel", title="selection", epsilons=(), n_test=10, attacks=(),
            read=lambda summaries: [accuracy_value("zero", "clean", summaries["zero"]["clean"], None)],
            settings=(Setting("zero", "qnn", dataset, "tiny_linear", "selection_always_zero", epochs=1),),
        )

    with Store.open(tmp_path / "r.sqlite") as store:
        runner = Runner(store, cache_dir=tmp_path / "cache")
        declared = rr.run_experiment(experiment("selection_sorted_box"), registry, runner, [0])
        undeclared = rr.run_experiment(experiment("selection_sorted_box_undeclared"), registry, runner, [0])
    assert declared["protocol"]["test_selection"] == "class-interleaved"
    assert declared["values"][0]["ours"] == 0.5  # both classes, the model answers 0
    assert "n_test 10 (round-robin over the classes" in rr.experiment_markdown(declared)
    # the first examples: the key is absent, as in reports written before the selection existed
    assert "test_selection" not in undeclared["protocol"] and undeclared["values"][0]["ours"] == 1.0
    assert "n_test 10;" in rr.experiment_markdown(undeclared)
