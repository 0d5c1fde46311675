"""Cell checkpoints: an attack cell stopped after some of its batches resumes to the bits of an uninterrupted
run, through the runner (real SQLite stores), the published store and the cost estimate."""

from __future__ import annotations

import dataclasses
import json

import fault_plugins
import numpy as np
import pytest
import torch

import qbench
from qbench import Attack
from qbench.contract.checkpoint import read_meta
from qbench.contract.dataset import TrainingSchedule
from qbench.publishing.published_store import CELLS, CHECKPOINTS, export_store, import_store
from qbench.registry import load_registry
from qbench.running.cell_checkpoint import CellProgress
from qbench.running.preflight import describe, estimate, missing_work
from qbench.running.runner import Plan, Runner
from qbench.running.store import Store, checkpoint_path
from qbench.running.store_merge import merge_store
from test_scoring_v2_runs import _Plugins as ScoringPlugins


class RandomWalk(Attack):
    """A random start and one sign step of jittered size: it draws from the context's torch and numpy
    generators and from the global torch and numpy RNGs, so a resume that put any of them back wrong differs."""

    name = "ckpt_random_walk"
    description = "a random start and a jittered sign step, drawn from every RNG a plugin may use"
    tracks = ("qnn",)
    threat = "white-box"
    iterative = True

    def generate(self, model, x, y, epsilon, ctx):
        # a random point of the ball and one small jittered step: every draw moves the final point
        start = torch.rand(x.shape, generator=ctx.generator) * 2 - 1
        adv = (x + epsilon * start).clamp(0, 1).requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(model(adv), y)
        (grad,) = torch.autograd.grad(loss, adv)
        size = epsilon / 8 * (torch.rand(1).item() + np.random.rand() + ctx.rng.random())
        return (x + (adv.detach() + size * grad.sign() - x).clamp(-epsilon, epsilon)).clamp(0, 1)


class _Plugins:
    @qbench.hookimpl
    def register_attacks(self, register):
        register(RandomWalk)


class Killed(BaseException):
    """Stands in for the process being killed right after a cell checkpoint was written."""


@pytest.fixture(scope="module")
def registry():
    return load_registry([("faults", fault_plugins), ("v2", ScoringPlugins()), ("ckpt", _Plugins())])


def plan(registry, attacks=("ckpt_random_walk", "square")) -> Plan:
    create = registry.create
    return Plan(
        track="qnn", dataset=create("dataset", "tiny_box"), model=create("model", "tiny_linear"),
        defense=create("defense", "v2_noisy_logits"), epsilons=[0.3], seeds=[0],
        attacks=[create("attack", a, {"max_iter": 30} if a == "square" else {}) for a in attacks],
        schedule=TrainingSchedule(epochs=3, lr=0.05, batch_size=16), n_eot=2, n_repeat=4,
        eval_batch_size=8,  # the 32 test examples in 4 batches
    )


def bits(store: Store) -> dict[str, tuple]:
    return {c.key: (c.status, c.accuracy, c.correct.tobytes()) for c in store.cells() if c.correct is not None}


def kill_after_saves(monkeypatch, n: int) -> list[int]:
    """Make the n-th cell checkpoint written in this process stop the run; returns the batches each save held."""
    saved: list[int] = []
    original = CellProgress.save

    def save(self, parts, ctx):
        wrote = original(self, parts, ctx)
        if wrote:
            saved.append(len(parts))
            if len(saved) == n:
                raise Killed()
        return wrote

    monkeypatch.setattr(CellProgress, "save", save)
    return saved


@pytest.fixture
def every_batch(monkeypatch):
    monkeypatch.setenv("QBENCH_CHECKPOINT_SECONDS", "0")


@pytest.fixture
def uninterrupted(registry, tmp_path_factory):
    with Store.open(tmp_path_factory.mktemp("clean") / "s.sqlite") as store:
        Runner(store).run(plan(registry))
        return bits(store)


@pytest.mark.parametrize("stop_after", [1, 2, 5])
def test_a_stopped_cell_resumes_to_the_bits_of_an_uninterrupted_run(registry, tmp_path, monkeypatch, every_batch,
                                                                     uninterrupted, stop_after):
    """Killed right after its first, second (of the random walk) or fifth save (the second of Square's
    cell): the next run attacks only the remaining batches, and every stored cell equals the clean run's."""
    saved = kill_after_saves(monkeypatch, stop_after)
    path = tmp_path / "s.sqlite"
    with Store.open(path) as store, pytest.raises(Killed):
        Runner(store).run(plan(registry))
    (ckpt,) = (path.parent / "s.sqlite.artifacts" / "checkpoints").glob("*.pt")
    meta = read_meta(ckpt)
    assert meta["epoch"] == saved[-1] and meta["meta"]["cell"] and meta["meta"]["n_examples"] == 32

    monkeypatch.undo()
    monkeypatch.setenv("QBENCH_CHECKPOINT_SECONDS", "0")
    with Store.open(path) as store:
        Runner(store).run(plan(registry))
        assert bits(store) == uninterrupted
        resumed = store.get_cell(ckpt.stem)
        assert resumed.info["resumed"]["batches"] == saved[-1] and resumed.info["resumed"]["of"] == 4
        assert not list((store.artifacts / "checkpoints").glob("*.pt"))  # cleared once the cell was stored
        others = [c for c in store.cells() if c.key != ckpt.stem]
        assert others and all("resumed" not in c.info for c in others)


def test_a_checkpoint_saved_for_other_batches_is_set_aside_and_the_cell_starts_over(registry, tmp_path, monkeypatch,
                                                                                    every_batch, uninterrupted):
    kill_after_saves(monkeypatch, 2)
    path = tmp_path / "s.sqlite"
    with Store.open(path) as store, pytest.raises(Killed):
        Runner(store).run(plan(registry))
    monkeypatch.undo()
    other = dataclasses.replace(plan(registry), eval_batch_size=16)
    with Store.open(path) as store:
        Runner(store).run(other)
        (cell,) = [c for c in store.cells() if c.attack == "ckpt_random_walk"]
        assert "resumed" not in cell.info
    # the same cell run whole in batches of 16 from the start: equal bits, nothing spliced from batches of 8
    with Store.open(tmp_path / "whole.sqlite") as store:
        Runner(store).run(other)
        (whole,) = [c for c in store.cells() if c.attack == "ckpt_random_walk"]
    assert whole.correct.tobytes() == cell.correct.tobytes()


def test_the_estimate_counts_only_the_batches_left(registry, tmp_path, monkeypatch, every_batch):
    kill_after_saves(monkeypatch, 3)  # the random walk's cell, 3 of its 4 batches done
    path = tmp_path / "s.sqlite"
    with Store.open(path) as store, pytest.raises(Killed):
        Runner(store).run(plan(registry))
    with Store.open(path) as store:
        runner = Runner(store)
        p = plan(registry)
        work = missing_work(store, [(p, runner.load_data(p.dataset))])
        by_label = {c.label: c.remaining for c in work.cells}
        assert by_label == {"ckpt_random_walk": 0.25, "square[max_iter=30]": 1.0}
        lines = describe(work, estimate(store, work))
    assert "2 cells (1 resuming from checkpoints)" in lines[0], lines


SPEC = {"track": "qnn", "dataset": {"name": "moons", "config": {}}, "model": {"name": "qnn", "config": {}}}


def write_checkpoint(artifacts, key: str, batches: int) -> None:
    progress = CellProgress(checkpoint_path(artifacts, key), key, 1000, 250, meta={"spec": SPEC}, every_s=0)
    ctx = qbench.Context(seed=1)
    assert progress.save([torch.zeros(250, 2)] * batches, ctx)


def test_the_published_store_carries_a_cell_checkpoint_to_another_machine_and_drops_it_once_published(tmp_path):
    published = tmp_path / "published"
    key = "c" * 32
    with Store.open(tmp_path / "a.sqlite") as a:
        write_checkpoint(a.artifacts, key, 2)
        report = export_store(a, published)
    assert report.checkpoints_added == 1
    (placed,) = published.glob(f"qnn/moons-qnn/{CHECKPOINTS}/{key}.pt")
    assert read_meta(placed)["epoch"] == 2

    with Store.open(tmp_path / "b.sqlite") as b:  # another machine: imported, and further along only
        assert import_store(published, b).checkpoints_added == 1
        assert read_meta(checkpoint_path(b.artifacts, key))["epoch"] == 2
        write_checkpoint(b.artifacts, key, 3)
        assert export_store(b, published).checkpoints_added == 1
    assert read_meta(placed)["epoch"] == 3
    with Store.open(tmp_path / "c.sqlite") as c:
        write_checkpoint(c.artifacts, key, 1)
        assert export_store(c, published).checkpoints_added == 0  # behind the published one: not copied back
        assert merge_store(tmp_path / "b.sqlite", c).checkpoints_added == 1
        assert read_meta(checkpoint_path(c.artifacts, key))["epoch"] == 3

    # the cell published: its checkpoint is dropped at the next export and never imported again
    board = placed.parent.parent
    row = {"key": key, "spec": {"kind": "attack"}, "status": "ok", "accuracy": 0.5}
    (board / CELLS).write_text(json.dumps(row) + "\n")
    with Store.open(tmp_path / "d.sqlite") as d:
        assert export_store(d, published).checkpoints_removed == 1
    assert not placed.exists()


def test_a_cell_faster_than_the_interval_writes_no_checkpoint(registry, tmp_path, monkeypatch, uninterrupted):
    monkeypatch.setenv("QBENCH_CHECKPOINT_SECONDS", "300")
    saved = kill_after_saves(monkeypatch, 1)  # would stop the run at its first written checkpoint
    with Store.open(tmp_path / "s.sqlite") as store:
        Runner(store).run(plan(registry))
        assert bits(store) == uninterrupted
    assert saved == []
