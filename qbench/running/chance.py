"""The boards' rule for a model that guesses: its attack suite is not run.

A model whose clean accuracy is not above chance (1/K) keeps about 1/K of the examples under any attack, so
its robust accuracy measures the guessing (sanity check 8 flags such an entry whatever its attacks did).
On the 8-qubit MNIST boards the depolarizing channel leaves exactly such a model, and its EOT suite costs
about 15 hours of a core per board (docs/cost.md): hours that could only ever print a flagged 50%. So a plan
with ``attack_only_above_chance`` (every board's, and ``qbench evaluate``'s) decides from its seeds' clean
cells whether to run the suite at all (docs/protocol.md): the runner holds back the attack cells of a seed
until its clean cell is in, and those of a seed that guesses until every seed's is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from qbench.running.checks import CHANCE_MARGIN, at_chance, tolerance
from qbench.running.scoring import expected_correct

if TYPE_CHECKING:
    from qbench.running.plan import Plan
    from qbench.running.store import CellRecord


def chance_verdict(plan: Plan, n_classes: int, clean: list[CellRecord | None]) -> str | None:
    """Why ``plan``'s attack suite is not run, from its seeds' clean cells, or None (it runs).

    Only for a plan with ``attack_only_above_chance``, and only once every seed's clean cell succeeded.
    The clean accuracy over the seeds (set B's expected correctness, the entry's clean number) must be
    both not above chance (sanity check 8's criterion, so the entry is flagged either way) and, with the
    same tolerance, within ``CHANCE_MARGIN`` of it: a model that is *known* to guess, which a smoke run on
    ten examples never is (there the tolerance alone is 42 points and the suite runs as it always did).
    Deciding from every seed at once keeps the rule the entry-level check's.
    """
    if not plan.attack_only_above_chance or any(c is None or c.status != "ok" or c.correct is None for c in clean):
        return None
    n = len(clean[0].correct)  # type: ignore[union-attr, arg-type]
    value = float(np.mean([expected_correct(c.correct).mean() for c in clean]))  # type: ignore[union-attr]
    chance = 1 / n_classes
    if not at_chance(value, n_classes, n) or value + tolerance(value, n) > chance + CHANCE_MARGIN:
        return None
    return (f"clean accuracy {value:.1%} over {len(clean)} seed(s) is not above chance ({chance:.0%}) beyond "
            f"sampling error, and within {CHANCE_MARGIN:.0%} of it: the attack suite was not run (a guessing model "
            "has no robustness to measure)")
