"""Plugins that misbehave on purpose, for the tests of how qbench contains them.

Imported directly by tests (``load_registry([("faults", fault_plugins)])``), and installed as an entry
point of a throw-away distribution (:func:`install`) when a test runs ``qbench`` in a subprocess.
Everything is tiny (a linear model on a 4-feature box problem) so the tests are fast.
"""

from __future__ import annotations

import math
import os
import signal
import time
from pathlib import Path

import torch

import qbench
from qbench import Attack, Dataset, Defense, Model
from qbench.contract.testing import TinyLinear, tiny_split

#: where SlowFit writes its markers (one file per event), for the kill-and-resume test
MARKERS = "QBENCH_TEST_MARKERS"


class TinyBox(Dataset):
    name = "tiny_box"
    description = "64 + 32 examples of a separable 2-class problem in [0, 1]^4"
    version = "1"
    tracks = ("qnn",)

    def load(self, ctx):
        return tiny_split()


class LoadRaises(Dataset):
    name = "fault_load_raises"
    description = "a dataset whose loader breaks"
    version = "1"
    tracks = ("qnn",)

    def load(self, ctx):
        raise OSError("disk on fire")


class TinyLinearModel(Model):
    name = "tiny_linear"
    description = "a linear classifier"
    version = "1"
    tracks = ("qnn",)

    def build(self, data, ctx):
        return TinyLinear(data.x_train.shape[1], data.n_classes, seed=int(ctx.generator.initial_seed() % 1000))


class _FaultyDefense(Defense):
    description = "fails on purpose"
    version = "1"
    tracks = ("qnn",)


class FitRaises(_FaultyDefense):
    name = "fault_fit_raises"

    def fit(self, model, data, schedule, ctx):
        raise RuntimeError("fit exploded")


class NaNWeights(_FaultyDefense):
    name = "fault_nan_weights"

    def fit(self, model, data, schedule, ctx):
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(math.nan)
        return model


class PredictRaises(_FaultyDefense):
    name = "fault_predict_raises"
    standard_training = True

    def predict(self, model, x, ctx):
        raise RuntimeError("predict exploded")


class DeployRaises(_FaultyDefense):
    name = "fault_deploy_raises"
    standard_training = True

    def deploy(self, model, data, ctx):
        raise KeyError("no hardware")


class BadLabels(_FaultyDefense):
    name = "fault_bad_labels"
    standard_training = True

    def predict(self, model, x, ctx):
        return super().predict(model, x, ctx) + 5


class _FaultyAttack(Attack):
    description = "fails on purpose"
    version = "1"
    tracks = ("qnn",)


class GenerateRaises(_FaultyAttack):
    name = "fault_generate_raises"

    def generate(self, model, x, y, epsilon, ctx):
        raise ValueError("generate exploded")


class NaNAttack(_FaultyAttack):
    name = "fault_nan"

    def generate(self, model, x, y, epsilon, ctx):
        return x * math.nan


class OutOfDomain(_FaultyAttack):
    name = "fault_out_of_domain"

    def generate(self, model, x, y, epsilon, ctx):
        return x + 2.0


class OutOfBall(_FaultyAttack):
    name = "fault_out_of_ball"

    def generate(self, model, x, y, epsilon, ctx):
        return (x + 3 * epsilon).clamp(0, 1) if epsilon else x + 0.5

class WrongShape(_FaultyAttack):
    name = "fault_wrong_shape"

    def generate(self, model, x, y, epsilon, ctx):
        return x[:1]


class KillsItsWorker(_FaultyAttack):
    """Dies the way an out-of-memory kill looks: SIGKILL to its own process (never run it in-process)."""

    name = "fault_kills_worker"

    def generate(self, model, x, y, epsilon, ctx):
        os.kill(os.getpid(), signal.SIGKILL)


class SlowFit(Defense):
    """Standard training that first says so (a marker file) and takes a while; attacks on it say so too."""

    name = "slow_fit"
    description = "standard training, slowed down and observable, for the kill-and-resume test"
    version = "1"
    tracks = ("qnn",)

    def prepare(self, model, ctx):
        return _Observed(model)

    def fit(self, model, data, schedule, ctx):
        _mark("fit")
        time.sleep(0.5)
        return super().fit(model, data, schedule, ctx)


class _Observed(torch.nn.Module):
    """A model whose forward leaves a marker, and pauses, when the input needs a gradient (an attack)."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x):
        if x.requires_grad:
            _mark("attack")
            time.sleep(0.02)
        return self.inner(x)


def _mark(event: str) -> None:
    folder = os.environ.get(MARKERS)
    if folder:
        Path(folder, f"{event}-{os.getpid()}-{time.monotonic_ns()}").touch()


DEFENSES = (FitRaises, NaNWeights, PredictRaises, DeployRaises, BadLabels, SlowFit)
ATTACKS = (GenerateRaises, NaNAttack, OutOfDomain, OutOfBall, WrongShape, KillsItsWorker)


@qbench.hookimpl
def register_datasets(register):
    register(TinyBox)
    register(LoadRaises)


@qbench.hookimpl
def register_models(register):
    register(TinyLinearModel)


@qbench.hookimpl
def register_defenses(register):
    for cls in DEFENSES:
        register(cls)


@qbench.hookimpl
def register_attacks(register):
    for cls in ATTACKS:
        register(cls)


def install(folder: Path) -> dict[str, str]:
    """Make this module the entry point ``faults`` of a distribution in ``folder``; returns the environment
    (``PYTHONPATH``) under which a ``qbench`` subprocess loads it."""
    info = folder / "qbench_test_faults-0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: qbench-test-faults\nVersion: 0\n")
    (info / "entry_points.txt").write_text("[qbench]\nfaults = fault_plugins\n")
    path = os.pathsep.join([str(folder), str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])
    return {"PYTHONPATH": path.rstrip(os.pathsep)}
