"""Cells see the run seed they belong to: caches shared by a seed's cells (transfer surrogates) differ per seed."""

import fault_plugins

from qbench.contract.dataset import TrainingSchedule
from qbench.registry import load_registry
from qbench.running.runner import Plan, Runner
from qbench.running.store import Store


def test_each_run_seed_trains_its_own_transfer_surrogate(tmp_path):
    registry = load_registry([("faults", fault_plugins)])
    create = registry.create
    plan = Plan(
        track="qnn", dataset=create("dataset", "tiny_box"), model=create("model", "tiny_linear"),
        defense=create("defense", "none"), epsilons=[0.2], seeds=[0, 1, 2],
        attacks=[create("attack", "transfer-fnn", {"surrogate_epochs": 1})],
        schedule=TrainingSchedule(epochs=1), n_eot=1, n_repeat=1,
    )
    with Store.open(tmp_path / "s.sqlite") as store:
        runner = Runner(store)
        runner.run(plan)
        cells = [c for c in store.cells() if c.kind == "attack"]
        surrogates = sorted((runner.cache_dir / "surrogates").iterdir())
    assert sorted(c.seed for c in cells) == [0, 1, 2] and all(c.status == "ok" for c in cells)
    # one surrogate per run seed, each trained from its own seed stream
    assert len(surrogates) == 3
    assert len({p.read_bytes() for p in surrogates}) == 3
