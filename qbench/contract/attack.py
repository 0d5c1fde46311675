"""The attack contract: adversarial inputs inside an epsilon ball and inside the dataset's domain."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, ClassVar, Literal

import torch

from qbench.contract.component import Component
from qbench.contract.config import config_to_dict

if TYPE_CHECKING:
    from qbench.contract.context import Context

Threat = Literal["white-box", "transfer", "adaptive", "gradient-free"]


class AttackSkipped(Exception):
    """Raised by :meth:`Attack.generate` when the attack does not apply (e.g. DLR on a binary task).

    The runner records the cell as skipped with this message instead of as a failure.
    """


class Attack(Component):
    """A registered attack. :meth:`generate` returns ``x_adv`` with ``|x_adv - x|_inf <= epsilon`` (up to the
    domain's projection) and every example inside ``ctx.data.domain``; ``ctx.data`` also gives the
    training split (for surrogate models) and the number of classes."""

    kind: ClassVar[str] = "attack"
    threat: ClassVar[Threat] = "white-box"
    #: one-step (False) or iterative (True) gradient attack, for the "iterative beats one-step" check;
    #: None when it does not apply
    iterative: ClassVar[bool | None] = None

    def generate(
        self,
        model: torch.nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        epsilon: float,
        ctx: "Context",
    ) -> torch.Tensor:
        """Adversarial examples for ``(x, y)`` against ``model`` (the defended model's forward)."""
        raise NotImplementedError  # abstract


@functools.lru_cache(maxsize=None)
def _default_options(cls: type[Attack]) -> dict:
    # cached per class: a board build labels every cell; callers only read the dict
    return cls.from_options({}).config_dict()


def attack_label(attack: Attack) -> str:
    """The attack's name, plus its non-default options in brackets: ``bim``, ``bim[n_eot=1]``."""
    try:
        return _cached_label(type(attack), attack.name, attack.config)
    except TypeError:  # a config that is not hashable (not frozen): labelled afresh each time
        return _label(type(attack), attack.name, attack.config_dict())


@functools.lru_cache(maxsize=4096)
def _cached_label(cls: type[Attack], name: str, config: object) -> str:
    # frozen configs are hashable; a board build labels every cell of every board (tens of thousands)
    return _label(cls, name, config_to_dict(config))


def _label(cls: type[Attack], name: str, options: dict) -> str:
    defaults = _default_options(cls)
    return format_label(name, {k: v for k, v in options.items() if defaults.get(k) != v})


def format_label(name: str, options: dict) -> str:
    """``name`` or ``name[k=v,...]`` for the given (non-default) options."""
    if not options:
        return name
    return name + "[" + ",".join(f"{k}={v}" for k, v in sorted(options.items())) + "]"
