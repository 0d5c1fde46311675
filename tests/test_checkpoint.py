"""Training checkpoints: a training stopped between epochs resumes to the weights of an uninterrupted run,
bit for bit, in the core's loop, in plugins' own loops, through the runner and through the published store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from qbench import Context, TrainingSchedule
from qbench.contract.checkpoint import Checkpoint, read_meta, resumable_epochs
from qbench.contract.rng import isolated_rng
from qbench.contract.testing import tiny_split
from qbench.contract.training import train
from qbench.publishing.published_store import CHECKPOINTS, TRAININGS, export_store, import_store, read_jsonl
from qbench.running.store import Store, checkpoint_path


class Stop(Exception):
    """Stands in for the process being killed right after a checkpoint was written."""


class StopAfter(Checkpoint):
    """A checkpoint that saves at every epoch and stops the training once it has saved ``position``."""

    def __init__(self, path: Path, position: tuple[int, int]) -> None:
        super().__init__(path, "k", every_s=0.0)
        self.position = position

    def save(self, loop, epoch, states, rng, force=False):
        saved = super().save(loop, epoch, states, rng, force)
        if saved and (loop, epoch) == self.position:
            raise Stop
        return saved


class Noisy(torch.nn.Module):
    """Dropout (the global torch RNG) on a small MLP, so a resume that forgot an RNG would diverge."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.a = torch.nn.Linear(4, 16)
        self.b = torch.nn.Linear(16, 2)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)

    def forward(self, x):
        return self.b(F.dropout(torch.relu(self.a(x)), 0.3, self.training))


def random_start_loss(model, x, y, epoch):
    """A loss drawing from the global RNG (like a PGD random start) and from numpy (like ART)."""
    import numpy as np

    shift = torch.rand_like(x) * 0.05 + float(np.random.rand()) * 1e-3
    return F.cross_entropy(model(x + shift), y)


def two_loops(model, data, ctx):
    """A fit of two loops one after the other (pre-training, then fine-tuning with a new optimiser)."""
    train(model, data, TrainingSchedule(epochs=3, batch_size=16), ctx, random_start_loss)
    return train(model, data, TrainingSchedule(epochs=4, batch_size=16, lr=0.001, optimizer="sgd"), ctx)


def one_loop(model, data, ctx):
    return train(model, data, TrainingSchedule(epochs=5, batch_size=16), ctx, random_start_loss)


def run_fit(fit, checkpoint: Checkpoint | None):
    data = tiny_split(n_train=96)
    model = Noisy()
    ctx = Context(seed=11)
    ctx.checkpoint = checkpoint
    with isolated_rng(ctx.seed):
        return fit(model, data, ctx)


def weights(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("fit, stop", [(one_loop, (1, 2)), (two_loops, (1, 2)), (two_loops, (2, 1)), (two_loops, (1, 3))])
def test_a_stopped_training_resumes_to_the_uninterrupted_weights(tmp_path, fit, stop):
    reference = weights(run_fit(fit, None))
    path = tmp_path / "k.pt"
    with pytest.raises(Stop):
        run_fit(fit, StopAfter(path, stop))
    meta = read_meta(path)
    assert (meta["loop"], meta["epoch"]) == stop
    resumed_ckpt = Checkpoint(path, "k", every_s=0.0)
    assert resumed_ckpt.loaded_at == stop
    resumed = weights(run_fit(fit, resumed_ckpt))
    assert_same(resumed, reference)
    # and it really did pick up where it stopped: without the checkpoint the stopped run's state is lost
    assert resumed_ckpt.epoch_resumed == stop[1]


def test_a_resumed_loop_skips_the_epochs_it_had_done(tmp_path):
    calls = []

    def counting(model, x, y, epoch):
        calls.append(epoch)
        return random_start_loss(model, x, y, epoch)

    def fit(model, data, ctx):
        return train(model, data, TrainingSchedule(epochs=5, batch_size=48), ctx, counting)

    path = tmp_path / "k.pt"
    with pytest.raises(Stop):
        run_fit(fit, StopAfter(path, (1, 3)))
    calls.clear()
    run_fit(fit, Checkpoint(path, "k"))
    assert calls == [3, 3, 4, 4]  # two batches of 48 in each of the two remaining epochs


def test_a_checkpoint_of_another_training_or_a_broken_file_is_ignored(tmp_path):
    path = tmp_path / "k.pt"
    with pytest.raises(Stop):
        run_fit(one_loop, StopAfter(path, (1, 2)))
    assert Checkpoint(path, "another key").loaded_at is None
    path.write_bytes(b"not a checkpoint")
    fresh = Checkpoint(path, "k")
    assert fresh.loaded_at is None
    assert_same(weights(run_fit(one_loop, fresh)), weights(run_fit(one_loop, None)))


class Recording(Checkpoint):
    """Remembers the position of every save that was written."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.written: list[tuple[int, int]] = []

    def save(self, loop, epoch, states, rng, force=False):
        saved = super().save(loop, epoch, states, rng, force)
        if saved:
            self.written.append((loop, epoch))
        return saved


def test_saves_respect_the_interval_and_the_last_epoch_is_always_saved(tmp_path):
    hourly = Recording(tmp_path / "k.pt", "k", every_s=3600.0)
    run_fit(one_loop, hourly)
    assert hourly.written == [(1, 5)]  # the first 4 epochs were within the hour; the last is always written
    every = Recording(tmp_path / "j.pt", "j", every_s=0.0)
    run_fit(one_loop, every)
    assert every.written == [(1, e) for e in range(1, 6)]


def test_a_checkpoint_that_cannot_be_restored_is_set_aside_and_the_training_starts_over(tmp_path):
    path = tmp_path / "k.pt"
    with pytest.raises(Stop):
        run_fit(one_loop, StopAfter(path, (1, 2)))

    def other_names(model, data, ctx):  # the same training, but its loop names its states differently
        optimizer = torch.optim.Adam(model.parameters(), lr=0.005)
        for _ in resumable_epochs(ctx, 2, net=model, opt=optimizer):
            pass
        return model

    ckpt = Checkpoint(path, "k")
    untouched = weights(run_fit(other_names, None))
    assert_same(weights(run_fit(other_names, ckpt)), untouched)
    assert ckpt.loaded_at is None and "the training starts over" in ckpt.problems[0]

    path.unlink()  # (the run above checkpointed itself under its own names)
    with pytest.raises(Stop):
        run_fit(one_loop, StopAfter(path, (1, 2)))
    broken = Checkpoint(path, "k")  # right names, but an optimiser state that does not fit the model
    broken._state["states"]["optimizer"]["param_groups"][0]["params"] = [0]
    assert_same(weights(run_fit(one_loop, broken)), weights(run_fit(one_loop, None)))
    assert broken.loaded_at is None and "could not be restored" in broken.problems[0]


class _Odd:
    """A plugin's state holding a numpy scalar, which ``torch.load(weights_only=True)`` refuses."""

    def __init__(self) -> None:
        import numpy as np

        self.value = np.float64(0.5)

    def state_dict(self):
        return {"value": self.value}

    def load_state_dict(self, state):
        self.value = state["value"]


def test_a_state_that_cannot_be_loaded_back_is_not_checkpointed_and_the_training_goes_on(tmp_path):
    def fit(model, data, ctx):
        optimizer = torch.optim.Adam(model.parameters(), lr=0.005)
        for _ in resumable_epochs(ctx, 3, model=model, optimizer=optimizer, odd=_Odd()):
            train(model, data, TrainingSchedule(epochs=1, batch_size=32), ctx, optimizer=optimizer)
        return model

    ckpt = Recording(tmp_path / "k.pt", "k")
    assert_same(weights(run_fit(fit, ckpt)), weights(run_fit(fit, None)))
    assert ckpt.written == [] and not ckpt.path.exists()
    assert "cannot be loaded back safely" in ckpt.problems[0]


def test_a_checkpoint_of_another_torch_is_ignored_and_the_published_one_not_imported(tmp_path):
    path = tmp_path / "k.pt"
    with pytest.raises(Stop):
        run_fit(one_loop, StopAfter(path, (1, 2)))
    state = torch.load(path, weights_only=True)
    state["torch"] = "1.0.0"
    torch.save(state, path)
    ckpt = Checkpoint(path, "k")
    assert ckpt.loaded_at is None and "torch 1.0.0" in ckpt.problems[0]


def test_generators_of_the_training_context_are_restored_when_a_loop_runs_on_a_child(tmp_path):
    def fit(model, data, ctx):
        child = ctx.child("stage")

        def loss(m, x, y, epoch):  # draws from the parent's generator while the loop is the child's
            noise = torch.rand(x.shape, generator=ctx.generator) * 0.05
            return F.cross_entropy(m(x + noise), y)

        return train(model, data, TrainingSchedule(epochs=4, batch_size=32), child, loss)

    def run(ckpt):
        data, model, ctx = tiny_split(n_train=96), Noisy(), Context(seed=5)
        ctx.checkpoint = ckpt
        if ckpt is not None:
            ckpt.context = ctx
        with isolated_rng(ctx.seed):
            return fit(model, data, ctx)

    reference = weights(run(None))
    path = tmp_path / "k.pt"
    with pytest.raises(Stop):
        run(StopAfter(path, (1, 2)))
    assert_same(weights(run(Checkpoint(path, "k"))), reference)


def test_a_loop_inside_an_epoch_is_not_checkpointed(tmp_path):
    def fit(model, data, ctx):
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        for _ in resumable_epochs(ctx, 3, model=model, optimizer=optimizer):
            train(model, data, TrainingSchedule(epochs=1, batch_size=32), ctx, optimizer=optimizer)
        return model

    ckpt = Recording(tmp_path / "k.pt", "k")
    run_fit(fit, ckpt)
    assert ckpt.written == [(1, 1), (1, 2), (1, 3)]


@pytest.mark.parametrize("defense", ["adversarial_training", "fast_adversarial_training"])
def test_the_adversarial_trainings_own_loops_resume_bit_for_bit(tmp_path, defense):
    from qbench.registry import load_registry

    create = load_registry().create
    options = {"epsilon": 0.1, "refresh": "epoch"} if defense == "adversarial_training" else {"epsilon": 0.1, "guard_examples": 16}
    schedule = TrainingSchedule(epochs=4, batch_size=16)

    def fit(model, data, ctx):
        d = create("defense", defense, options)
        model = d.prepare(model, ctx)
        return d.fit(model, data, schedule, ctx)

    reference = weights(run_fit(fit, None))
    path = tmp_path / "k.pt"
    with pytest.raises(Stop):
        run_fit(fit, StopAfter(path, (1, 2)))
    assert_same(weights(run_fit(fit, Checkpoint(path, "k"))), reference)


# --- through the runner and the published store -------------------------------------------------------------

GRID = ["evaluate", "--defense", "none", "--model-option", "encoding=angle", "--seeds", "1", "--epochs", "40",
        "--n-test", "20", "--attack", "fgsm", "--attack", "pgd", "--json"]


def test_a_killed_grid_resumes_its_training_from_the_checkpoint_on_another_machine(tmp_path, monkeypatch):
    """SIGKILL `qbench evaluate` mid-training, publish, resume from a fresh store elsewhere: the weights
    and every cell equal an uninterrupted run's, and the training record says it was resumed."""
    env = dict(os.environ, QBENCH_CHECKPOINT_SECONDS="0")
    qbench = str(Path(sys.executable).with_name("qbench"))
    killed = tmp_path / "killed.sqlite"
    proc = subprocess.Popen([qbench, *GRID, "--store", str(killed)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    folder = Path(f"{killed}.artifacts") / "checkpoints"
    deadline = time.time() + 300
    meta = None
    while time.time() < deadline and proc.poll() is None:
        files = list(folder.glob("*.pt"))
        meta = read_meta(files[0]) if files else None
        if meta is not None and meta["epoch"] >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"the training ended before it could be killed: {proc.communicate()[1][-1500:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with Store.open(killed) as s:
        assert s.trainings() == []
    dry = subprocess.run([qbench, *GRID, "--store", str(killed), "--dry-run"], env=env, capture_output=True, text=True)
    done = read_meta(next(folder.glob("*.pt")))["epoch"]
    assert f"1 training (1 resuming from checkpoints, after epoch {done})" in dry.stderr, dry.stderr

    published = tmp_path / "published"
    with Store.open(killed) as s:
        report = export_store(s, published)
    assert report.checkpoints_added == 1 and report.trainings_added == 0
    (published_ckpt,) = published.glob(f"qnn/*/{CHECKPOINTS}/*.pt")
    board = published_ckpt.parent.parent
    assert board.name == "moons-qnn-angle"  # placed on the board of its training's spec
    stopped_at = read_meta(published_ckpt)["epoch"]
    assert 3 <= stopped_at < 40

    # "another machine": a fresh store seeded from the published store only
    elsewhere = tmp_path / "elsewhere.sqlite"
    with Store.open(elsewhere) as s:
        assert import_store(published, s).checkpoints_added == 1
        assert checkpoint_path(s.artifacts, published_ckpt.stem).exists()
    resumed = subprocess.run([qbench, *GRID, "--store", str(elsewhere)], env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    fresh = tmp_path / "fresh.sqlite"
    clean = subprocess.run([qbench, *GRID, "--store", str(fresh)], env=env, capture_output=True, text=True)
    assert clean.returncode == 0, clean.stderr[-2000:]

    with Store.open(elsewhere) as a, Store.open(fresh) as b:
        (ta,), (tb,) = a.trainings(), b.trainings()
        assert ta.key == tb.key == published_ckpt.stem
        assert ta.info["resumed"]["epoch"] == stopped_at and "resumed" not in tb.info
        assert ta.info["resumed"]["platform_before"] == ta.info["resumed"]["platform"]  # same machine here
        assert (a.artifacts / ta.weights).read_bytes() == (b.artifacts / tb.weights).read_bytes()
        cells_a = {c.key: (c.status, c.accuracy, None if c.correct is None else c.correct.tobytes()) for c in a.cells()}
        cells_b = {c.key: (c.status, c.accuracy, None if c.correct is None else c.correct.tobytes()) for c in b.cells()}
        assert cells_a == cells_b and sum(v[0] == "ok" for v in cells_a.values()) > 3
        assert not list((a.artifacts / "checkpoints").glob("*.pt"))  # cleared once the weights were stored
        # publishing the finished training removes its checkpoint from the published store
        report = export_store(a, published)
    assert report.trainings_added == 1 and report.checkpoints_removed == 1
    assert not list((board / CHECKPOINTS).glob("*.pt"))
    assert published_ckpt.stem in read_jsonl(board / TRAININGS)


def test_a_published_checkpoint_is_only_replaced_by_one_further_along(tmp_path):
    spec = {"track": "qnn", "dataset": {"name": "moons", "config": {}}, "model": {"name": "qnn", "config": {}}}
    store_path = tmp_path / "s.sqlite"
    published = tmp_path / "published"
    with Store.open(store_path) as s:
        path = checkpoint_path(s.artifacts, "abc")
        ahead = Checkpoint(path, "abc", meta={"spec": spec})
        ahead.save(1, 5, {"m": {"w": torch.ones(2)}}, {})
        assert export_store(s, published).checkpoints_added == 1
        behind = Checkpoint(path.with_name("other.pt"), "abc", meta={"spec": spec})
        behind.save(1, 2, {"m": {"w": torch.zeros(2)}}, {})
        behind.path.replace(path)
        assert export_store(s, published).checkpoints_added == 0
    (target,) = published.glob(f"qnn/*/{CHECKPOINTS}/*.pt")
    assert read_meta(target)["epoch"] == 5
    # importing brings the store's own checkpoint forward, and then leaves it
    with Store.open(store_path) as s:
        assert import_store(published, s).checkpoints_added == 1  # the store's copy (epoch 2) is behind
        assert read_meta(checkpoint_path(s.artifacts, "abc"))["epoch"] == 5
        assert import_store(published, s).checkpoints_added == 0
        # a local checkpoint further along than the published one is kept
        further = Checkpoint(path.with_name("further.pt"), "abc", meta={"spec": spec})
        further.save(1, 9, {"m": {"w": torch.ones(2)}}, {})
        further.path.replace(path)
        assert import_store(published, s).checkpoints_added == 0
        assert read_meta(path)["epoch"] == 9


def test_store_export_reports_checkpoints_on_the_command_line(tmp_path, cli):
    spec = {"track": "qnn", "dataset": {"name": "moons", "config": {}}, "model": {"name": "qnn", "config": {}}}
    store_path = tmp_path / "s.sqlite"
    with Store.open(store_path) as s:
        Checkpoint(checkpoint_path(s.artifacts, "abc"), "abc", meta={"spec": spec}).save(1, 1, {}, {})
    (tmp_path / "pub").mkdir()
    out = cli("store", "export", "--store", str(store_path), "--published", str(tmp_path / "pub"), "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["checkpoints_added"] == 1


def test_a_bad_checkpoint_interval_is_one_line_before_anything_runs(tmp_path, monkeypatch, capsys):
    from qbench import cli as qcli

    store = tmp_path / "s.sqlite"
    out = subprocess.run([str(Path(sys.executable).with_name("qbench")), *GRID, "--store", str(store)],
                         env=dict(os.environ, QBENCH_CHECKPOINT_SECONDS="abc"), capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip() == "qbench: error: QBENCH_CHECKPOINT_SECONDS='abc' is not a number of seconds"
    for value in ("-5", "nan"):
        monkeypatch.setenv("QBENCH_CHECKPOINT_SECONDS", value)
        assert qcli.main([*GRID, "--store", str(store)]) == 2
        assert capsys.readouterr().err.strip() == (
            f"qbench: error: QBENCH_CHECKPOINT_SECONDS={value!r}: the interval must be 0 or more seconds")
    assert not store.exists()


def test_a_checkpoint_of_the_first_layout_resumes_bit_for_bit(tmp_path):
    """Checkpoints written before the training's own context was saved too (one generator, not a list)
    still resume: the AlexNet Madry training of 2026-12-02 was checkpointed in that layout."""
    reference = weights(run_fit(one_loop, None))
    path = tmp_path / "k.pt"
    with pytest.raises(Stop):
        run_fit(one_loop, StopAfter(path, (1, 2)))
    state = torch.load(path, weights_only=True)
    rng = state["rng"]
    (rng["generator"],), (rng["numpy_ctx"],) = rng.pop("generators"), rng.pop("numpy_ctx")
    torch.save(state, path)
    ckpt = Checkpoint(path, "k")
    assert_same(weights(run_fit(one_loop, ckpt)), reference)
    assert ckpt.problems == [] and ckpt.epoch_resumed == 2


def test_merging_stores_carries_checkpoints_forward_only(tmp_path):
    from qbench.running.store_merge import merge_store

    spec = {"track": "qnn", "dataset": {"name": "moons", "config": {}}, "model": {"name": "qnn", "config": {}}}
    with Store.open(tmp_path / "a.sqlite") as a, Store.open(tmp_path / "b.sqlite") as b:
        Checkpoint(checkpoint_path(a.artifacts, "abc"), "abc", meta={"spec": spec}).save(1, 4, {}, {})
        Checkpoint(checkpoint_path(b.artifacts, "def"), "def", meta={"spec": spec}).save(1, 9, {}, {})
        Checkpoint(checkpoint_path(a.artifacts, "def"), "def", meta={"spec": spec}).save(1, 2, {}, {})
        assert merge_store(a.path, b).checkpoints_added == 1  # abc; b's def is further along than a's
        assert read_meta(checkpoint_path(b.artifacts, "abc"))["epoch"] == 4
        assert read_meta(checkpoint_path(b.artifacts, "def"))["epoch"] == 9
