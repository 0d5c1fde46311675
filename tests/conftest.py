"""Shared fixtures: a temporary store, and the `qbench` CLI run for real in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

# One torch thread per process, in this process and in every `qbench` subprocess it starts: a second thread is
# 2-3x slower on the shared 2-core machines the suite runs on, and pytest-xdist already runs a process per core.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def run_cli(*args: str, env: dict | None = None, timeout: float = 600, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``qbench ARGS`` in a subprocess with this interpreter; returns the completed process."""
    full_env = {k: v for k, v in os.environ.items() if k != "QBENCH_PLUGINS"}
    full_env.update(env or {})
    # the console script, as a user runs it (``python -m`` would put the checkout on sys.path, where a
    # setuptools build by-product could shadow the installed metadata)
    script = Path(sys.executable).with_name("qbench")
    return subprocess.run(
        [str(script), *args], capture_output=True, text=True, env=full_env, timeout=timeout, cwd=cwd or ROOT,
    )


def one_line_error(proc: subprocess.CompletedProcess, code: int) -> str:
    """Assert that ``proc`` exited with ``code`` after exactly one line on stderr (no traceback); return it."""
    assert proc.returncode == code, proc.stderr
    lines = [l for l in proc.stderr.strip().splitlines() if l]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    """A store path in a fresh temporary folder (the file does not exist yet)."""
    return tmp_path / "results.sqlite"


@pytest.fixture
def cli():
    """The CLI runner (see :func:`run_cli`)."""
    return run_cli


def moons_angle_plan(registry, defense: str, attacks: list[str], epsilons: list[float], *, epochs: int, **settings):
    """A plan of the moons board's angle-encoded QNN (seed 0, Adam 0.05, batch 32): the real plugins, cheap.

    ``settings`` are the remaining :class:`qbench.running.runner.Plan` fields (``n_eot``, ``n_repeat``, ``n_test``,
    ``shots``...). The defense gets its threat from the largest epsilon, as ``make_plan`` gives it.
    """
    from qbench.contract.dataset import TrainingSchedule
    from qbench.running.runner import Plan

    create = registry.create
    return Plan(
        track="qnn", dataset=create("dataset", "moons"), model=create("model", "qnn", {"encoding": "angle"}, "qnn"),
        defense=create("defense", defense, {}, "qnn").at_threat(max(epsilons)), epsilons=list(epsilons), seeds=[0],
        attacks=[create("attack", a, {}, "qnn") for a in attacks],
        schedule=TrainingSchedule(epochs=epochs, lr=0.05, batch_size=32), **settings,
    )
