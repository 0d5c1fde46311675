"""The attack contract: adversarial inputs inside an epsilon ball and inside the dataset's domain."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

import torch

from qbench.contract.component import Component

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


def attack_label(attack: Attack) -> str:
    """The attack's name, plus its non-default options in brackets: ``bim``, ``bim[n_eot=1]``."""
    defaults = type(attack).from_options({}).config_dict()
    changed = {k: v for k, v in attack.config_dict().items() if defaults.get(k) != v}
    return format_label(attack.name, changed)


def format_label(name: str, options: dict) -> str:
    """``name`` or ``name[k=v,...]`` for the given (non-default) options."""
    if not options:
        return name
    return name + "[" + ",".join(f"{k}={v}" for k, v in sorted(options.items())) + "]"
