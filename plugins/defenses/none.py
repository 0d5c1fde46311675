"""``none``: no defense. Standard training and argmax inference; the reference every defense is compared with."""

from __future__ import annotations

import qbench
from qbench import Defense


class NoDefense(Defense):
    """The undefended model: standard training, no architecture change, argmax prediction."""

    name = "none"
    description = "no defense: standard training and inference (the undefended reference)"
    version = "1"
    tracks = ("qnn", "mapped-dnn")
    standard_training = True


@qbench.hookimpl
def register_defenses(register) -> None:
    register(NoDefense)
