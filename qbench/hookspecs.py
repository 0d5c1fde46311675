"""The plugin contract: four ``register_*`` hooks, each handed a ``register`` callback.

A plugin module implements any of them with ``@qbench.hookimpl`` and calls ``register(SomeClass)`` once
per thing it provides, so one plugin may provide several datasets, models, defenses or attacks. What is
registered is a subclass of :class:`qbench.Dataset`, :class:`qbench.Model`, :class:`qbench.Defense` or
:class:`qbench.Attack` with a unique ``name``.
"""

from typing import Callable

import pluggy

hookspec = pluggy.HookspecMarker("qbench")
hookimpl = pluggy.HookimplMarker("qbench")


@hookspec
def register_datasets(register: Callable[[type], None]) -> None:
    """Register datasets: call ``register(cls)`` for each :class:`qbench.Dataset` subclass this plugin provides."""


@hookspec
def register_models(register: Callable[[type], None]) -> None:
    """Register models: call ``register(cls)`` for each :class:`qbench.Model` subclass this plugin provides."""


@hookspec
def register_defenses(register: Callable[[type], None]) -> None:
    """Register defenses: call ``register(cls)`` for each :class:`qbench.Defense` subclass this plugin provides."""


@hookspec
def register_attacks(register: Callable[[type], None]) -> None:
    """Register attacks: call ``register(cls)`` for each :class:`qbench.Attack` subclass this plugin provides."""
