"""Typed configuration of registered components.

Every dataset, model, defense and attack declares a frozen dataclass ``Config`` whose defaults are the
paper protocol. Values coming from the command line (``key=value`` strings) are coerced by the field's
type annotation and validated by the dataclass's ``validate`` method, so a bad value is one clear line.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from typing import Any, Mapping

from qbench.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class NoConfig:
    """The configuration of a component that has no options."""


def config_fields(cls: type) -> list[dataclasses.Field]:
    """The fields of a config dataclass, in declaration order."""
    return list(dataclasses.fields(cls))


def _coerce(owner: str, name: str, annotation: Any, value: Any) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(owner, name, arg, value)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{owner}: bad value {value!r} for {name}")
    if origin is typing.Literal:
        for allowed in args:
            if value == allowed or (isinstance(value, str) and str(allowed) == value):
                return allowed
        raise ConfigError(f"{owner}: {name} must be one of {', '.join(map(repr, args))}, not {value!r}")
    if origin in (tuple, list):
        items = value
        if isinstance(value, str):
            items = [v for v in value.split(",") if v.strip() != ""]
        if not isinstance(items, (list, tuple)):
            raise ConfigError(f"{owner}: {name} must be a list, not {value!r}")
        inner = args[0] if args else str
        coerced = [_coerce(owner, name, inner, v) for v in items]
        return tuple(coerced) if origin is tuple else coerced
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{owner}: {name} must be true or false, not {value!r}")
    if annotation is int:
        if isinstance(value, bool):
            raise ConfigError(f"{owner}: {name} must be an integer, not {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        try:
            return int(str(value))
        except ValueError:
            raise ConfigError(f"{owner}: {name} must be an integer, not {value!r}") from None
    if annotation is float:
        if isinstance(value, bool):
            raise ConfigError(f"{owner}: {name} must be a number, not {value!r}")
        try:
            result = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{owner}: {name} must be a number, not {value!r}") from None
        if result != result:
            raise ConfigError(f"{owner}: {name} must be a number, not NaN")
        return result
    if annotation is str:
        return str(value)
    return value


@functools.lru_cache(maxsize=None)
def _fields(cls: type) -> tuple[dict[str, Any], dict[str, dataclasses.Field]]:
    # get_type_hints re-evaluates every string annotation on each call: a board build makes tens of
    # thousands of configs (an attack label per cell), and this was a third of its time
    return typing.get_type_hints(cls), {f.name: f for f in dataclasses.fields(cls)}


def build_config(cls: type, values: Mapping[str, Any] | None, owner: str) -> Any:
    """Make a ``cls`` instance from defaults overridden by ``values`` (strings are coerced by type).

    ``owner`` names the component in error messages, e.g. ``"defense noise_layer"``.
    """
    values = dict(values or {})
    hints, fields = _fields(cls)
    unknown = sorted(set(values) - set(fields))
    if unknown:
        known = ", ".join(fields) or "none"
        raise ConfigError(f"{owner}: unknown option {unknown[0]!r} (options: {known})")
    kwargs = {k: _coerce(owner, k, hints[k], v) for k, v in values.items()}
    try:
        config = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{owner}: {exc}") from None
    validate = getattr(config, "validate", None)
    if callable(validate):
        try:
            validate()
        except ValueError as exc:
            raise ConfigError(f"{owner}: {exc}") from None
    return config


#: the field metadata :func:`added_later` sets
ADDED_LATER = "qbench.added_later"


def added_later(default: Any) -> Any:
    """A config field added to a plugin after results of it were stored: the field enters the config's dict
    (and so every key) only when it is set to something other than ``default``.

    Adding an ordinary field changes the dict of every configuration, so every stored result's key, even
    where the new option changes nothing. Use this only where ``default`` computes what the plugin computed
    before the field existed (or the results it changes are invalidated otherwise); else bump the plugin's
    ``version``.
    """
    return dataclasses.field(default=default, metadata={ADDED_LATER: True})


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (tuples become lists), without :func:`added_later` fields
    that hold their defaults."""
    omitted = {f.name for f in dataclasses.fields(config)
               if f.metadata.get(ADDED_LATER) and getattr(config, f.name) == f.default}
    full = dataclasses.asdict(config)
    return json.loads(json.dumps({k: v for k, v in full.items() if k not in omitted}))


def parse_assignments(items: list[str] | None, what: str) -> dict[str, str]:
    """Parse ``["key=value", ...]`` from the command line into a dict."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{what}: expected KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out
