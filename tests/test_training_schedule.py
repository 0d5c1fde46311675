"""A dataset's training schedule beyond a constant learning rate: cosine decay and crop-flip augmentation.

The options must not move any stored training (their defaults leave every key as it was), must follow the
whole schedule when a defense trains one epoch at a time, and must resume exactly from a checkpoint.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from qbench import Context, TrainingSchedule
from qbench.contract.augmentation import crop_flip
from qbench.contract.checkpoint import Checkpoint
from qbench.contract.domain import Domain
from qbench.contract.rng import isolated_rng
from qbench.contract.split import DataSplit
from qbench.contract.training import scheduled_lr, train
from qbench.hashing import config_hash
from qbench.registry import load_registry
from qbench.running.grid import BOARDS, board_plan

from test_checkpoint import Stop, StopAfter, assert_same, weights

STORE = Path(__file__).resolve().parents[1] / "leaderboards" / "store"


@pytest.mark.parametrize("track, board", [("mapped-dnn", "mnist-lenet"), ("mapped-dnn", "cifar10-alexnet"),
                                          ("qnn", "ising-qnn")])
def test_the_new_options_leave_every_published_training_key_as_it_was(track, board):
    spec = next(b for b in BOARDS[track] if b.name == board)
    plan = board_plan(load_registry(), spec, "none", seeds=[0, 1, 2])
    published = {json.loads(line)["key"] for line in (STORE / track / board / "trainings.jsonl").open()}
    keys = {config_hash(plan.training_spec(seed)) for seed in (0, 1, 2)}
    assert keys <= published
    assert set(plan.training_spec(0)["schedule"]) == {"epochs", "lr", "batch_size", "optimizer"}


def test_a_non_default_option_enters_the_key():
    base = TrainingSchedule(epochs=3, lr=0.1, batch_size=8, optimizer="sgd")
    assert base.key_dict() == {"epochs": 3, "lr": 0.1, "batch_size": 8, "optimizer": "sgd"}
    cosine = replace(base, lr_decay="cosine")
    assert cosine.key_dict() == {**base.key_dict(), "lr_decay": "cosine"}
    assert replace(base, augment="crop-flip").key_dict()["augment"] == "crop-flip"
    assert TrainingSchedule(**cosine.key_dict()) == cosine  # an entry's protocol rebuilds its schedule


@pytest.mark.parametrize("option, value", [("lr_decay", "linear"), ("augment", "mixup")])
def test_an_unknown_option_is_refused(option, value):
    with pytest.raises(ValueError, match=option):
        TrainingSchedule(**{option: value})


def test_the_cosine_rate_goes_from_lr_to_zero():
    s = TrainingSchedule(lr=0.2, lr_decay="cosine")
    assert [scheduled_lr(s, p) for p in (0.0, 0.5, 1.0)] == pytest.approx([0.2, 0.1, 0.0])
    assert scheduled_lr(TrainingSchedule(lr=0.2), 0.7) == 0.2


def images(n: int = 24, seed: int = 0) -> DataSplit:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 8, 8, generator=g)
    y = (x[:, 0].mean(dim=(1, 2)) > 0.5).long()
    return DataSplit(x, y, x[:4], y[:4], 2, Domain(0.0, 1.0))


class RecordingLR(torch.optim.SGD):
    """SGD that records the learning rate of every step."""

    def __init__(self, params, **kw) -> None:
        super().__init__(params, **kw)
        self.seen: list[float] = []

    def step(self, closure=None):
        self.seen.append(self.param_groups[0]["lr"])
        return super().step(closure)


def small_cnn() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(4 * 8 * 8, 2))


def test_training_one_epoch_at_a_time_follows_the_whole_schedule():
    """The way adversarial training calls the loop (one epoch, an offset) gives the rates of one call."""
    data, schedule = images(), TrainingSchedule(epochs=3, lr=0.1, batch_size=8, optimizer="sgd", lr_decay="cosine")
    whole = RecordingLR(small_cnn().parameters(), lr=0.1)
    train(small_cnn(), data, schedule, Context(seed=1), optimizer=whole)
    by_epoch = RecordingLR(small_cnn().parameters(), lr=0.1)
    model, ctx = small_cnn(), Context(seed=1)
    for epoch in range(3):
        train(model, data, replace(schedule, epochs=1), ctx, optimizer=by_epoch, epoch_offset=epoch, total_epochs=3)
    expected = [0.1 * 0.5 * (1 + math.cos(math.pi * step / 9)) for step in range(9)]  # 3 epochs x 3 batches
    assert whole.seen == pytest.approx(expected)
    assert by_epoch.seen == pytest.approx(expected)


def test_a_constant_schedule_leaves_the_optimizers_rate_alone():
    optimizer = RecordingLR(small_cnn().parameters(), lr=0.03)
    train(small_cnn(), images(), TrainingSchedule(epochs=2, lr=0.5, batch_size=8, optimizer="sgd"), Context(seed=1),
          optimizer=optimizer)
    assert optimizer.seen == [0.03] * 6


def test_crop_flip_returns_shifted_and_mirrored_windows_of_the_padded_image():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8) + 1  # no zeros: padding is visible
    g = torch.Generator().manual_seed(0)
    out = crop_flip(x, g)
    assert out.shape == x.shape
    padded = F.pad(x, (4, 4, 4, 4))
    for i in range(2):
        windows = [padded[i, :, dy:dy + 8, dx:dx + 8] for dy in range(9) for dx in range(9)]
        assert any(torch.equal(out[i], w) or torch.equal(out[i], w.flip(2)) for w in windows)
    again = crop_flip(x, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)  # the generator alone decides


def test_crop_flip_draws_every_offset_and_flips_about_half():
    x = torch.zeros(2000, 1, 8, 8)
    x[:, :, 0, 0] = 1.0  # a marker in the top-left corner
    out = crop_flip(x, torch.Generator().manual_seed(1))
    where = (out[:, 0] == 1.0).nonzero()
    # the marker lands at row dy' = 4 - dy (kept when dy <= 4) and column 4 - dx, mirrored when flipped
    cols = where[:, 2]
    assert set(where[:, 1].tolist()) == set(range(5))
    mirrored = (cols >= 4).float().mean().item()  # a flipped window puts it at 7 - (4 - dx) >= 3
    assert 0.3 < mirrored < 0.7
    assert len(where) < 2000  # crops that moved it off the image dropped it


def run_image_fit(checkpoint):
    data = images(48)
    schedule = TrainingSchedule(epochs=4, lr=0.05, batch_size=16, optimizer="sgd", lr_decay="cosine", augment="crop-flip")
    ctx = Context(seed=5)
    ctx.checkpoint = checkpoint
    with isolated_rng(ctx.seed):
        return train(small_cnn(), data, schedule, ctx)


def test_an_augmented_cosine_training_resumes_to_the_uninterrupted_weights(tmp_path):
    reference = weights(run_image_fit(None))
    path = tmp_path / "k.pt"
    with pytest.raises(Stop):
        run_image_fit(StopAfter(path, (1, 2)))
    resumed = weights(run_image_fit(Checkpoint(path, "k", every_s=0.0)))
    assert_same(resumed, reference)
    plain = TrainingSchedule(epochs=4, lr=0.05, batch_size=16, optimizer="sgd")
    for without in (plain, replace(plain, lr_decay="cosine"), replace(plain, augment="crop-flip")):
        other = weights(train(small_cnn(), images(48), without, Context(seed=5)))
        assert not torch.equal(other["3.weight"], reference["3.weight"])  # each option changes the training


@pytest.mark.parametrize("name, nesterov", [("sgd", False), ("sgd-nesterov", True)])
def test_the_sgd_optimisers_differ_only_in_nesterovs_term(name, nesterov):
    from qbench.contract.training import make_optimizer

    optimizer = make_optimizer(small_cnn(), TrainingSchedule(lr=0.05, optimizer=name))
    group = optimizer.param_groups[0]
    assert isinstance(optimizer, torch.optim.SGD)
    assert (group["nesterov"], group["momentum"], group["weight_decay"], group["lr"]) == (nesterov, 0.9, 5e-4, 0.05)
