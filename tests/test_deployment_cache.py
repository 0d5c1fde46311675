"""A worker keeps deployed models in a per-process cache: its key must hold everything ``deploy`` reads."""

from __future__ import annotations

import dataclasses

from qbench.registry import load_registry
from qbench.running.grid import board_plan, boards
from qbench.running.tasks import CellTask, Workspace


def _task(plan, tmp_path, key="c"):
    return CellTask(plan, 0, Workspace(tmp_path / "s.sqlite.artifacts"), key=key, spec={"kind": "clean"},
                    train_key="t")


def test_the_readout_is_part_of_the_deployment_key(tmp_path):
    # depolarizing's deploy builds the exact channel under ctx.shots=None and sampled trajectories under
    # shots: a worker evaluating one training under both readouts must not reuse the other's deployment
    plan = board_plan(load_registry(), boards("qnn", ["mnist-1v9-qcnn"])[0], "depolarizing", [0], sweep=False)
    assert plan.shots is not None
    exact = dataclasses.replace(plan, shots=None)
    data = object()
    shots_key = _task(plan, tmp_path).deployment_key(data)
    assert shots_key == _task(plan, tmp_path, key="other cell").deployment_key(data)
    assert shots_key != _task(exact, tmp_path).deployment_key(data)
    assert shots_key != _task(dataclasses.replace(plan, shots=plan.shots + 1), tmp_path).deployment_key(data)
