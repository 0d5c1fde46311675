"""What every registered thing has: a name, a one-line description, a version, tracks and a typed config."""

from __future__ import annotations

from typing import Any, ClassVar

from qbench.contract.config import NoConfig, build_config, config_to_dict


class Component:
    """Base of :class:`~qbench.Dataset`, :class:`~qbench.Model`, :class:`~qbench.Defense` and
    :class:`~qbench.Attack`.

    Subclasses set the class attributes; an instance holds one validated configuration.
    """

    kind: ClassVar[str] = "component"
    #: unique across all plugins and kinds of the same kind
    name: ClassVar[str] = ""
    #: one line, shown by ``qbench plugins``
    description: ClassVar[str] = ""
    #: the plugin's own version of this component (goes into provenance and the cache key)
    version: ClassVar[str] = "0"
    #: the tracks this component supports (``qnn``, ``mapped-dnn``)
    tracks: ClassVar[tuple[str, ...]] = ()
    #: a frozen dataclass whose defaults are the paper protocol
    Config: ClassVar[type] = NoConfig
    #: per track, options that replace ``Config``'s defaults there (a user's options still win), for a
    #: component whose protocol differs between tracks
    track_defaults: ClassVar[dict[str, dict[str, Any]]] = {}
    #: per track, a version that replaces ``version`` there: for a change of results on one track only,
    #: so that the other track's stored results keep their keys (an instance built for a track carries it)
    track_versions: ClassVar[dict[str, str]] = {}

    def __init__(self, config: Any = None, **options: Any) -> None:
        if config is None:
            config = build_config(self.Config, options, f"{self.kind} {self.name}")
        elif options:
            raise TypeError("pass either a config or options, not both")
        self.config = config

    @classmethod
    def from_options(cls, options: dict[str, Any] | None = None, track: str | None = None) -> "Component":
        """Build with ``options`` (strings allowed, coerced by type) over the (track's) defaults."""
        merged = {**cls.track_defaults.get(track, {}), **(options or {})} if track else options
        component = cls(build_config(cls.Config, merged, f"{cls.kind} {cls.name}"))
        if track in cls.track_versions:
            component.version = cls.track_versions[track]  # shadows the class's version on this instance
        return component

    def config_dict(self) -> dict[str, Any]:
        """The configuration as a JSON-ready dict."""
        return config_to_dict(self.config)

    def __repr__(self) -> str:
        return f"<{self.kind} {self.name} {self.config_dict()}>"
