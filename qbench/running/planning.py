"""Making a :class:`~qbench.running.plan.Plan` from plugin names and options.

``qbench evaluate``, the leaderboard grid, the paper reproductions and ``qbench verify`` all build plans
the same way: components created for the track (so per-track option defaults apply), the dataset's own
training schedule unless one is given, and the defense configured for the plan's threat (its largest
epsilon, which thereby enters the training's cache key).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Iterable

from qbench.contract.dataset import TrainingSchedule
from qbench.registry import Registry
from qbench.running.plan import Plan

#: a plugin by name and options
Named = tuple[str, dict[str, Any]]


def make_plan(
    registry: Registry,
    track: str,
    dataset: Named,
    model: Named,
    defense: Named,
    attacks: Iterable[Named],
    epsilons: list[float],
    seeds: list[int],
    *,
    schedule: TrainingSchedule | None = None,
    epochs: int | None = None,
    sweep_attacks: Iterable[Named] = (),
    **settings: Any,
) -> Plan:
    """The plan of ``defense`` on ``dataset``/``model`` against ``attacks`` at ``epsilons`` for ``seeds``.

    ``schedule`` defaults to the dataset's; ``epochs`` overrides its number of epochs. ``settings`` are the
    remaining :class:`Plan` fields (``n_eot``, ``n_repeat``, ``n_test``, ``quantum_device``,
    ``sweep_epsilons``); ``test_selection`` None or absent means the dataset's (class-interleaved where
    :attr:`qbench.contract.dataset.Dataset.test_split_by_class`, else the first ``n_test``). Unknown names and bad options raise the registry's usage/config errors, in the
    order dataset, model, defense, attacks.
    """
    created_dataset = registry.create("dataset", dataset[0], dataset[1], track)
    created_model = registry.create("model", model[0], model[1], track)
    created_defense = registry.create("defense", defense[0], defense[1], track)
    created_attacks = [registry.create("attack", n, o, track) for n, o in attacks]
    sweep = [registry.create("attack", n, o, track) for n, o in sweep_attacks]
    schedule = schedule or type(created_dataset).training
    if settings.get("test_selection") is None:
        settings["test_selection"] = "class-interleaved" if created_dataset.test_split_by_class else "first"
    if epochs:
        schedule = replace(schedule, epochs=epochs)
    return Plan(
        track=track, dataset=created_dataset, model=created_model,
        defense=created_defense.at_threat(max(epsilons)) if epsilons else created_defense,
        attacks=created_attacks, epsilons=list(epsilons), seeds=list(seeds), schedule=schedule,
        sweep_attacks=sweep, **settings,
    )
