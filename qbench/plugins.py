"""The plugin manager: every plugin, built-in or third-party, is loaded from the ``qbench`` entry-point group.

``QBENCH_PLUGINS`` (comma-separated entry-point names) restricts which plugins load, like llm's
``LLM_LOAD_PLUGINS``; set to the empty string, no plugin loads. Plugins can also be registered directly
with :func:`register_plugin` (tests, notebooks).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib.metadata import entry_points
from types import ModuleType

import pluggy

from qbench import hookspecs

ENTRY_POINT_GROUP = "qbench"
ENV_VAR = "QBENCH_PLUGINS"

# Built-ins are not special-cased: they ship as entry points of the qbench distribution itself, so this
# tuple is empty. It exists for parity with llm and for embedding qbench without installed metadata.
DEFAULT_PLUGINS: tuple[str, ...] = ()


@dataclass(frozen=True)
class PluginInfo:
    """Where a loaded plugin came from."""

    name: str
    distribution: str
    version: str


@dataclass(frozen=True)
class LoadProblem:
    """A plugin that could not be loaded or registered, and why (shown as one line, the rest still load)."""

    plugin: str
    message: str


class PluginSet:
    """A pluggy manager plus what is known about each plugin's distribution and the problems met loading."""

    def __init__(self) -> None:
        self.manager = pluggy.PluginManager(ENTRY_POINT_GROUP)
        self.manager.add_hookspecs(hookspecs)
        self.info: dict[str, PluginInfo] = {}
        self.problems: list[LoadProblem] = []

    def register(self, plugin: object, name: str, distribution: str = "", version: str = "") -> None:
        """Register a plugin object (a module or an instance with ``@hookimpl`` methods)."""
        self.manager.register(plugin, name=name)
        self.info[name] = PluginInfo(name, distribution or "(direct)", version or "")


def _allowed() -> set[str] | None:
    raw = os.environ.get(ENV_VAR)
    if raw is None:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


def load_plugins(extra: list[tuple[str, object]] | None = None) -> PluginSet:
    """Load the default plugins and every entry point of group ``qbench`` allowed by ``QBENCH_PLUGINS``.

    A plugin whose import raises is recorded in :attr:`PluginSet.problems` and skipped.
    """
    plugins = PluginSet()
    allowed = _allowed()
    for module_name in DEFAULT_PLUGINS:
        if allowed is None or module_name in allowed:
            _load(plugins, module_name, lambda m=module_name: __import__(m, fromlist=["_"]), "qbench", "")
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if allowed is not None and ep.name not in allowed:
            continue
        if ep.name in plugins.info:
            dist = ep.dist.name if ep.dist else "?"
            other = plugins.info[ep.name].distribution
            plugins.problems.append(
                LoadProblem(ep.name, f"plugin name {ep.name!r} is used by both {other} and {dist}; skipped the second")
            )
            continue
        dist_name = ep.dist.name if ep.dist else "(unknown)"
        dist_version = ep.dist.version if ep.dist else ""
        _load(plugins, ep.name, ep.load, dist_name, dist_version)
    for name, plugin in extra or []:
        plugins.register(plugin, name)
    return plugins


def _load(plugins: PluginSet, name: str, loader, distribution: str, version: str) -> None:
    try:
        obj = loader()
    except Exception as exc:  # a broken plugin must not take the others down
        plugins.problems.append(LoadProblem(name, f"plugin {name!r} failed to import: {type(exc).__name__}: {exc}"))
        return
    if not isinstance(obj, ModuleType) and not hasattr(obj, "__dict__"):
        plugins.problems.append(LoadProblem(name, f"plugin {name!r} is not a module or object with hooks"))
        return
    try:
        plugins.register(obj, name, distribution, version)
    except Exception as exc:
        plugins.problems.append(LoadProblem(name, f"plugin {name!r} could not be registered: {exc}"))
