"""Trained models by name: ``qbench.load_model(board, defense, seed)`` from the published weights.

RobustBench's ``load_model`` is the model: a reader gets the trained, defended torch module behind a
leaderboard entry, ready to attack with any tool. The module is built exactly as the runner builds it for
a cell (the model plugin, the defense's ``prepare``, the published weights, the defense's ``deploy``), so
the numbers qbench published for it can be reproduced from it (:func:`clean_bits` does, for the clean cell).
"""

from __future__ import annotations

import dataclasses

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from qbench.contract.dataset import DataSplit
from qbench.errors import UsageError
from qbench.hashing import config_hash
from qbench.contract.readout import has_quantum_readout
from qbench.running.plan import Plan

#: where a checkout keeps the published entries and store
DEFAULT_ENTRIES = Path("leaderboards")
DEFAULT_PUBLISHED = Path("leaderboards/store")


@dataclass
class Trained:
    """A published model, deployed: the module, and the plan, data split and training key it belongs to."""

    module: torch.nn.Module
    plan: Plan
    data: DataSplit
    train_key: str
    seed: int


def _plan_for(board_name: str, defense: str, seed: int, entries: Path):
    from qbench.publishing import entry as entry_mod
    from qbench.running.grid import BOARDS, board_plan
    from qbench.contract.readout import EXACT
    from qbench.registry import load_registry

    board = next((b for track in BOARDS.values() for b in track if b.name == board_name), None)
    if board is None:
        names = ", ".join(b.name for track in BOARDS.values() for b in track)
        raise UsageError(f"unknown board {board_name!r} (boards: {names})")
    path = entries / board.track / board.name / f"{defense}.json"
    if not path.exists():
        raise UsageError(f"no published entry {path} (is {defense!r} on board {board_name}?)")
    entry = entry_mod.load(path)
    if seed not in entry["seeds"]:
        raise UsageError(f"{board_name}/{defense} has seeds {entry['seeds']}, not {seed}")
    protocol = entry["protocol"]
    from dataclasses import replace

    board = replace(board, epochs=protocol["schedule"]["epochs"], n_test=protocol["n_test"],
                    test_selection=protocol.get("test_selection", "first"))
    registry = load_registry()
    plan = board_plan(registry, board, defense, [seed], protocol["n_eot"], protocol["n_repeat"], sweep=False,
                      shots=protocol.get("shots") or EXACT, torch_device=protocol.get("torch_device", "cpu"))
    return board, plan


def load_trained(
    board: str, defense: str, seed: int = 0, published: Path | str = DEFAULT_PUBLISHED,
    entries: Path | str = DEFAULT_ENTRIES, data_dir: Path | str | None = None,
) -> Trained:
    """The deployed model of ``defense`` on ``board`` for run seed ``seed``, with its plan and data."""
    from qbench.contract.context import Context
    from qbench.running.tasks import CellTask, Workspace, evaluation_split

    board_obj, plan = _plan_for(board, defense, seed, Path(entries))
    train_key = config_hash(plan.training_spec(seed))
    weights_dir = Path(published) / board_obj.track / board_obj.name / "weights"
    weights = f"{train_key}.safetensors"
    if not (weights_dir / weights).exists():
        raise UsageError(f"the published store has no weights for {board}/{defense} seed {seed} "
                         f"({weights_dir / weights} is missing)")
    data_path = Path(data_dir) if data_dir is not None else None
    data = evaluation_split(plan.dataset.load(Context(seed=0, data_dir=data_path)), plan.n_test, plan.test_selection)
    # the weights are found by the key of the device they were trained on; the model is deployed on the CPU
    # here (a user's own attacks; the entry's cells are what `qbench verify` re-runs on their device)
    plan = dataclasses.replace(plan, torch_device="cpu")
    task = CellTask(plan, seed, Workspace(weights_dir.resolve(), data_path), data=data, train_key=train_key,
                    weights=weights, key="load_model", spec={"kind": "clean"})
    module = task.deployed_model(data)
    module.eval()
    return Trained(module, plan, data, train_key, seed)


def load_model(
    board: str, defense: str, seed: int = 0, published: Path | str = DEFAULT_PUBLISHED,
    entries: Path | str = DEFAULT_ENTRIES, data_dir: Path | str | None = None,
) -> torch.nn.Module:
    """The trained, defended torch module behind a leaderboard entry (logits ``(N, C)``), ready to attack.

    ``board`` and ``defense`` are names as on the leaderboards (``moons-qnn-angle``, ``noise_layer``);
    ``seed`` one of the entry's run seeds. Weights come from the published store; nothing is downloaded.
    """
    return load_trained(board, defense, seed, published, entries, data_dir).module


def clean_bits(trained: Trained) -> np.ndarray:
    """The clean cell's per-draw correctness bits, recomputed from the loaded model (scoring v2 draws)."""
    from qbench.contract.context import Context
    from qbench.contract.model import is_stochastic
    from qbench.running.tasks import evaluation_bits

    plan, data = trained.plan, trained.data
    stochastic = is_stochastic(trained.module) or (plan.shots is not None and has_quantum_readout(trained.module))
    return evaluation_bits(
        plan.defense, trained.module, data.x_test, data.y_test, data.n_classes, trained.seed, trained.train_key,
        plan.n_repeat if stochastic else 1, plan.eval_batch_size,
        lambda s: Context(seed=s, run_seed=trained.seed, data=data, n_eot=plan.n_eot, n_repeat=plan.n_repeat,
                          shots=plan.shots),
    )
