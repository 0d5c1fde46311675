"""The registry: every dataset, model, defense and attack the loaded plugins registered, looked up by name."""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from typing import Any, Iterator

from qbench.contract.attack import Attack
from qbench.contract.component import Component
from qbench.contract.dataset import Dataset
from qbench.contract.defense import Defense
from qbench.errors import PluginError, UsageError
from qbench.contract.model import Model
from qbench.plugins import LoadProblem, PluginSet, load_plugins
from qbench.contract.tracks import TRACKS

KINDS: dict[str, type[Component]] = {
    "dataset": Dataset,
    "model": Model,
    "defense": Defense,
    "attack": Attack,
}
HOOKS = {
    "dataset": "register_datasets",
    "model": "register_models",
    "defense": "register_defenses",
    "attack": "register_attacks",
}


@dataclass(frozen=True)
class Registered:
    """A registered class and the plugin and distribution it came from."""

    kind: str
    cls: type[Component]
    plugin: str
    distribution: str
    distribution_version: str

    @property
    def name(self) -> str:
        """The component's unique name."""
        return self.cls.name

    def to_dict(self) -> dict[str, Any]:
        """What ``qbench plugins --json`` prints for it."""
        return {
            "kind": self.kind,
            "name": self.cls.name,
            "description": self.cls.description,
            "version": self.cls.version,
            **({"track_versions": dict(self.cls.track_versions)} if self.cls.track_versions else {}),
            "tracks": list(self.cls.tracks),
            "plugin": self.plugin,
            "distribution": self.distribution,
            "distribution_version": self.distribution_version,
            "config": {f.name: _default_of(f) for f in dataclasses.fields(self.cls.Config)},
            **({"threat": self.cls.threat} if self.kind == "attack" else {}),
        }


def _default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        value = f.default_factory()  # type: ignore[misc]
    else:
        return None
    return list(value) if isinstance(value, tuple) else value


def _check(kind: str, cls: Any, plugin: str) -> None:
    base = KINDS[kind]
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise PluginError(f"plugin {plugin!r} registered {cls!r} as a {kind}, but it is not a qbench.{base.__name__}")
    if not isinstance(cls.name, str) or not cls.name.strip():
        raise PluginError(f"plugin {plugin!r} registered a {kind} without a name ({cls.__name__})")
    if not cls.description:
        raise PluginError(f"plugin {plugin!r}: {kind} {cls.name!r} has no description")
    bad = [t for t in cls.tracks if t not in TRACKS]
    if not cls.tracks or bad:
        raise PluginError(f"plugin {plugin!r}: {kind} {cls.name!r} must declare tracks among {TRACKS}, got {cls.tracks!r}")
    if not dataclasses.is_dataclass(cls.Config):
        raise PluginError(f"plugin {plugin!r}: {kind} {cls.name!r} has a Config that is not a dataclass")


class Registry:
    """All registered components, by kind and name. Build one with :func:`load_registry`."""

    def __init__(self, plugins: PluginSet) -> None:
        self.plugins = plugins
        self.problems: list[LoadProblem] = list(plugins.problems)
        self._items: dict[str, dict[str, Registered]] = {kind: {} for kind in KINDS}
        self._collect()

    def _collect(self) -> None:
        manager = self.plugins.manager
        # Stage every plugin's registrations first, so a plugin that raises in any hook is skipped whole.
        staged: dict[str, list[tuple[str, type]]] = {}
        failed: set[str] = set()
        for kind, hook_name in HOOKS.items():
            hook = getattr(manager.hook, hook_name)
            for impl in reversed(hook.get_hookimpls()):  # registration order
                plugin = impl.plugin_name
                if plugin in failed:
                    continue
                calls: list[tuple[str, type]] = []
                try:
                    impl.function(register=lambda cls, _c=calls, _k=kind: _c.append((_k, cls)))
                    for k, cls in calls:
                        _check(k, cls, plugin)
                except Exception as exc:
                    failed.add(plugin)
                    staged.pop(plugin, None)
                    reason = str(exc) if isinstance(exc, PluginError) else f"{type(exc).__name__}: {exc}"
                    self.problems.append(LoadProblem(plugin, f"plugin {plugin!r} raised in {hook_name}: {reason}; skipped"))
                    continue
                staged.setdefault(plugin, []).extend(calls)
        for plugin, calls in staged.items():
            info = self.plugins.info.get(plugin)
            for kind, cls in calls:
                existing = self._items[kind].get(cls.name)
                if existing is not None:
                    raise PluginError(
                        f"{kind} name {cls.name!r} is registered by both plugin {existing.plugin!r} "
                        f"({existing.distribution}) and plugin {plugin!r} ({info.distribution if info else '?'})"
                    )
                self._items[kind][cls.name] = Registered(
                    kind, cls, plugin, info.distribution if info else "(direct)", info.version if info else ""
                )

    def names(self, kind: str) -> list[str]:
        """Sorted names of the registered components of ``kind``."""
        return sorted(self._items[kind])

    def all(self) -> Iterator[Registered]:
        """Every registered component, by kind then name."""
        for kind in KINDS:
            for name in self.names(kind):
                yield self._items[kind][name]

    def entry(self, kind: str, name: str) -> Registered:
        """The registration of ``name``, or a :class:`UsageError` with the closest match."""
        if kind not in self._items:
            raise UsageError(f"unknown kind {kind!r}")
        items = self._items[kind]
        if name in items:
            return items[name]
        close = difflib.get_close_matches(name, list(items), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UsageError(f"unknown {kind} {name!r}{hint} (qbench plugins lists all)")

    def get(self, kind: str, name: str) -> type[Component]:
        """The registered class of ``name``."""
        return self.entry(kind, name).cls

    def create(self, kind: str, name: str, options: dict[str, Any] | None = None, track: str | None = None) -> Any:
        """An instance of ``name`` configured with ``options``; checks it supports ``track`` when given."""
        cls = self.get(kind, name)
        if track is not None and track not in cls.tracks:
            raise UsageError(f"{kind} {name!r} does not support track {track!r} (it supports: {', '.join(cls.tracks)})")
        return cls.from_options(options, track)


def load_registry(extra_plugins: list[tuple[str, object]] | None = None) -> Registry:
    """Load plugins (entry points + ``extra_plugins``) and collect their registrations."""
    return Registry(load_plugins(extra_plugins))
