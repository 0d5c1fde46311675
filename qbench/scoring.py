"""Scoring: accuracies over seeds with a 95% confidence interval, and the per-example worst case.

The worst case over an attack suite follows AutoAttack's rule: an example counts as robust at epsilon only
if it is classified correctly clean and under every attack of the suite at that epsilon.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Estimate:
    """An accuracy (fraction in [0, 1]) over seeds: mean, std, 95% interval and what it rests on."""

    mean: float
    std: float
    ci_low: float
    ci_high: float
    n_seeds: int
    n_examples: int
    #: how the interval was computed: ``t`` over seed means, or ``wilson`` on the examples of one seed
    ci_method: str

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (good near 0 and 1, unlike the normal one)."""
    if n == 0:
        return (0.0, 1.0)
    z = stats.norm.ppf(0.5 + confidence / 2)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def estimate(accuracies: Sequence[float], n_examples: int) -> Estimate:
    """Combine per-seed accuracies (each over ``n_examples`` examples) into an :class:`Estimate`.

    With two or more seeds the interval is Student's t over the seed means (seed-to-seed variation is the
    larger effect for trained models); with one seed it is Wilson's interval over the test examples.
    """
    values = np.asarray(list(accuracies), dtype=float)
    if values.size == 0:
        raise ValueError("no accuracies to combine")
    mean = float(values.mean())
    if values.size >= 2:
        std = float(values.std(ddof=1))
        half = float(stats.t.ppf(0.975, values.size - 1) * std / math.sqrt(values.size))
        return Estimate(mean, std, max(0.0, mean - half), min(1.0, mean + half), int(values.size), n_examples, "t")
    low, high = wilson_interval(round(mean * n_examples), n_examples)
    return Estimate(mean, 0.0, low, high, 1, n_examples, "wilson")


def worst_case(correct: Iterable[np.ndarray]) -> np.ndarray:
    """Per-example AND over boolean correctness arrays (clean plus every attack at one epsilon)."""
    arrays = [np.asarray(c, dtype=bool) for c in correct]
    if not arrays:
        raise ValueError("worst case of nothing")
    out = arrays[0].copy()
    for other in arrays[1:]:
        if other.shape != out.shape:
            raise ValueError("correctness arrays of different lengths")
        out &= other
    return out


def relative_improvement(defended: float, undefended: float) -> float | None:
    """QNAD's table-I metric, (defended - undefended) / undefended, in percent; None if undefended is 0."""
    if undefended <= 0:
        return None
    return 100.0 * (defended - undefended) / undefended
