"""Scoring v2 (DESIGN section 4): what a cell's per-example, per-draw bits add up to.

A cell stores, per test example, the correctness of the deployed prediction on ``2 R`` evaluation draws:
set A (columns ``[:R]``) and set B (``[R:]``); a deterministic prediction has ``R = 1``. From those bits:

- every reported number is read on set B: an attack's **robust accuracy** (and the clean accuracy) is the
  mean over examples of the mean over set B's draws, the expected accuracy of the deployed defense on that
  attack's points. Set A is used only to select. So at epsilon 0, where every attack's point is the clean
  input and (common random numbers) scores exactly like it, every number equals the clean accuracy;
- the **worst case** over a suite picks, per example, the candidate point (the clean input, or any
  attack's point at that epsilon) with the lowest mean correctness on set A, and reports that point's
  mean correctness on set B, an estimate free of the selection's winner's curse. The ranking number is the
  mean over examples; the **strict** number is the fraction of examples whose selected point is right in
  every draw of set B. With ``R = 1`` both reduce to AutoAttack's per-example AND over clean and attacks;
- intervals come from a two-way bootstrap, over seeds and over test examples (paired: every seed is
  evaluated on the same examples), so they carry the seed spread and the test-set sampling error together;
  two defenses are compared paired, seed by seed and example by example, and share a rank unless the 95%
  interval of their difference excludes zero.

Everything here is a pure function of the stored bits, so ``qbench verify`` recomputes it exactly.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np
from scipy import stats

#: bumped whenever a stored number of any cell would change meaning; part of every cell's key
SCORING_VERSION = 2
#: bootstrap resamples, and the fixed seed that makes every interval reproducible bit for bit
BOOTSTRAP_SAMPLES = 2000
BOOTSTRAP_SEED = 20261201


@dataclass(frozen=True)
class Estimate:
    """An accuracy (fraction in [0, 1]) over seeds and test examples: mean, seed std, 95% interval."""

    mean: float
    #: sample standard deviation of the per-seed accuracies (0 with one seed)
    std: float
    ci_low: float
    ci_high: float
    n_seeds: int
    n_examples: int
    #: how the interval was computed: ``bootstrap`` (seeds x examples) or ``wilson`` (a degenerate
    #: estimate, every value 0 or every value 1, where a bootstrap interval would have zero width)
    ci_method: str

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)


def draw_sets(bits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sets A and B of a cell's ``(n, 2 R)`` correctness bits."""
    bits = np.asarray(bits, dtype=bool)
    if bits.ndim != 2 or bits.shape[1] % 2:
        raise ValueError(f"correctness bits must be (examples, 2 x draws), got shape {bits.shape}")
    r = bits.shape[1] // 2
    return bits[:, :r], bits[:, r:]


def expected_correct(bits: np.ndarray) -> np.ndarray:
    """Per example, the mean correctness over set B's draws (an attack's or the clean point)."""
    return draw_sets(bits)[1].mean(axis=1)


def strict_correct(bits: np.ndarray) -> np.ndarray:
    """Per example, right in every draw of set B."""
    return draw_sets(bits)[1].all(axis=1)


@dataclass(frozen=True)
class WorstCase:
    """The per-example worst case over candidate points (see the module docstring)."""

    #: per example, the selected point's mean correctness on set B
    value: np.ndarray
    #: per example, the selected point right in every draw of set B
    strict: np.ndarray
    #: per example, the index of the selected candidate (the last of equals, in the order given)
    selected: np.ndarray


#: how a cascade decides that an example needs no further attack (issue 17; docs/protocol.md).
#: "all-draws": some gate point is wrong in every draw of both sets, so its reported (set B) value is
#: already 0, the least any point can score: that point is kept, and the cascade's worst case is never
#: above the full suite's on the same attack points. "set-a" (entries computed before it, which carry no
#: ``cascade_rule``): zero on set A only; the kept point's set-B value could be above 0 where a further
#: attack would have reported 0, so it could overstate a stochastic model's worst case slightly.
CASCADE_RULES = ("set-a", "all-draws")
CASCADE_RULE = "all-draws"


@dataclass(frozen=True)
class Survivors:
    """Which examples a cascaded attack runs on, and the bits it inherits for the others (issue 17)."""

    #: per example: not yet broken by any gate (see :data:`CASCADE_RULE`)
    mask: np.ndarray
    #: ``(n, 2 R)``: for the examples not attacked, the bits of the gate point that broke them
    inherited: np.ndarray
    #: per example, the index (into the gates) of the point whose bits are inherited; -1 where standing
    source: np.ndarray


def survivors(gates: Sequence[np.ndarray], rule: str = CASCADE_RULE) -> Survivors:
    """The examples still standing after the ``gates`` (the clean cell first, then the gate attacks' cells).

    Under ``"all-draws"`` an example is broken when some gate's point is wrong in all 2 R draws: it keeps
    the last such point, whose reported value is 0, so no further attack could score lower there and the
    worst case over every candidate comes out at 0 for it either way. Under the legacy ``"set-a"`` rule
    it is broken when some gate leaves it at zero mean correctness on set A, and it keeps the gate point
    :func:`worst_case` selects among the gates (the last of the zeros). A deterministic model (one draw
    per set, A = B) breaks the same examples under both.
    """
    if rule not in CASCADE_RULES:
        raise ValueError(f"unknown cascade rule {rule!r} (known: {', '.join(CASCADE_RULES)})")
    stacked = np.stack([np.asarray(g, dtype=bool) for g in gates])
    columns = np.arange(stacked.shape[1])
    chosen = worst_case(gates).selected
    if rule == "set-a":
        source = chosen
        broken = ~draw_sets(stacked[chosen, columns])[0].any(axis=1)
    else:
        wrong = ~stacked.any(axis=2)  # (gates, n): the point is wrong in every draw of both sets
        broken = wrong.any(axis=0)
        last = len(stacked) - 1 - np.argmax(wrong[::-1], axis=0)
        source = np.where(broken, last, chosen)
    return Survivors(~broken, stacked[source, columns], np.where(broken, source, -1))


def worst_case(candidates: Sequence[np.ndarray]) -> WorstCase:
    """Select on set A, report on set B, over ``candidates`` (each a cell's ``(n, 2 R)`` bits).

    Pass the clean cell first and the attacks in suite order. Equal set-A scores resolve to the *last*
    candidate: an attack's point rather than the clean input, and the later (stronger) attack of the
    suite, because a noisy selection that falls back on a weaker point overstates the worst case. With
    one draw per set (a deterministic model) the choice among equals changes no number.
    """
    if not candidates:
        raise ValueError("worst case of nothing")
    sets = [draw_sets(c) for c in candidates]
    shape = sets[0][0].shape
    if any(a.shape != shape or b.shape != shape for a, b in sets):
        raise ValueError("candidates with different numbers of examples or draws")
    score_a = np.stack([a.mean(axis=1) for a, _ in sets])  # (candidates, n)
    last = len(candidates) - 1
    selected = last - np.argmin(score_a[::-1], axis=0)  # argmin returns the first of equals: reversed, the last
    b = np.stack([b for _, b in sets])  # (candidates, n, R)
    chosen = b[selected, np.arange(shape[0])]
    return WorstCase(chosen.mean(axis=1), chosen.all(axis=1), selected)


def wilson_interval(successes: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (good near 0 and 1, unlike the normal one)."""
    if n == 0:
        return (0.0, 1.0)
    z = stats.norm.ppf(0.5 + confidence / 2)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(max(p * (1 - p), 0.0) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if successes <= 0 else max(0.0, float(centre - half))
    high = 1.0 if successes >= n else min(1.0, float(centre + half))
    return (low, high)


def _bootstrap_means(values: np.ndarray, samples: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """Means of ``values`` (seeds, examples) under resampling seeds and examples (the same example draw
    for every seed: the seeds share the test examples)."""
    s, n = values.shape
    rng = np.random.default_rng(seed)
    examples = rng.integers(0, n, size=(samples, n))
    seeds = rng.integers(0, s, size=(samples, s)) if s > 1 else np.zeros((samples, 1), dtype=int)
    # per resample: mean over examples of each seed, then over the resampled seeds
    per_seed = np.stack([values[k][examples].mean(axis=1) for k in range(s)], axis=1)  # (samples, s)
    return np.take_along_axis(per_seed, seeds, axis=1).mean(axis=1)


def estimate(per_seed: Sequence[np.ndarray]) -> Estimate:
    """Combine per-seed, per-example values in [0, 1] (one array per seed, the same examples) into an
    :class:`Estimate`: the mean over seeds and examples, with a 95% two-way bootstrap interval."""
    values = np.stack([np.asarray(v, dtype=float) for v in per_seed]) if len(per_seed) else np.zeros((0, 0))
    if values.size == 0 and values.shape[0] == 0:
        raise ValueError("no values to combine")
    s, n = values.shape
    seed_means = values.mean(axis=1) if n else np.zeros(s)
    mean = float(seed_means.mean())
    std = float(seed_means.std(ddof=1)) if s > 1 else 0.0
    if n == 0:
        return Estimate(mean, std, 0.0, 1.0, s, n, "wilson")
    if np.all(values == values.flat[0]):
        # every seed and example alike: Wilson's interval over the test examples (seeds do not add
        # independent examples), so a 0% or 100% estimate still says how few examples it rests on
        low, high = wilson_interval(mean * n, n)
        return Estimate(mean, std, low, high, s, n, "wilson")
    boot = _bootstrap_means(values)
    low, high = np.quantile(boot, [0.025, 0.975])
    return Estimate(mean, std, float(max(0.0, low)), float(min(1.0, high)), s, n, "bootstrap")


@dataclass(frozen=True)
class Comparison:
    """A paired comparison of two defenses on the same seeds and examples: ``a - b`` with its interval."""

    difference: float
    ci_low: float
    ci_high: float

    @property
    def separated(self) -> bool:
        """Whether the 95% interval of the difference excludes zero."""
        return self.ci_low > 0 or self.ci_high < 0

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {**asdict(self), "separated": self.separated}


def compare_paired(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> Comparison:
    """Defense ``a`` against ``b``: per-seed, per-example values paired by seed index and example."""
    va, vb = np.stack([np.asarray(v, float) for v in a]), np.stack([np.asarray(v, float) for v in b])
    if va.shape != vb.shape:
        raise ValueError(f"paired comparison of {va.shape} and {vb.shape} values")
    diff = va - vb
    mean = float(diff.mean())
    if np.all(diff == diff.flat[0]):
        return Comparison(mean, mean, mean)
    low, high = np.quantile(_bootstrap_means(diff), [0.025, 0.975])
    return Comparison(mean, float(low), float(high))


def shared_ranks(n: int, separated: Callable[[int, int], bool]) -> list[str]:
    """Rank labels ``"1"``, ``"=2"``, ... for ``n`` entries sorted best first.

    ``separated(i, k)`` says whether entries i and k differ at 95% (a paired comparison). Entry k joins
    the rank of the group above it unless it is separated from that group's first (best) entry, so a
    chain of small steps cannot tie a whole board together, and nothing is ranked apart from an entry it
    cannot be told from. Labels of a shared rank carry ``=``.
    """
    ranks: list[int] = []
    leader = 0
    for k in range(n):
        if k == 0:
            ranks.append(1)
        elif separated(leader, k):
            leader = k
            ranks.append(k + 1)
        else:
            ranks.append(ranks[-1])
    counts = {r: ranks.count(r) for r in ranks}
    return [f"={r}" if counts[r] > 1 else str(r) for r in ranks]


def relative_improvement(defended: float, undefended: float) -> float | None:
    """QNAD's table-I metric, (defended - undefended) / undefended, in percent; None if undefended is 0."""
    if undefended <= 0:
        return None
    return 100.0 * (defended - undefended) / undefended
