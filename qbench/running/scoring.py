"""Scoring v2 (DESIGN section 4): what a cell's per-example, per-draw bits add up to.

A cell stores, per test example, the correctness of the deployed prediction on ``2 R`` evaluation draws:
set A (columns ``[:R]``) and set B (``[R:]``); a deterministic prediction has ``R = 1``. From those bits:

- every reported number is read on set B: an attack's **robust accuracy** (and the clean accuracy) is the
  mean over examples of the mean over set B's draws, the expected accuracy of the deployed defense on that
  attack's points. Set A is used only to select. So at epsilon 0, where every attack's point is the clean
  input and (common random numbers) scores exactly like it, every number equals the clean accuracy;
- the **worst case** over a suite picks, per example, the candidate point (the clean input, or any
  attack's point at that epsilon) with the lowest mean correctness on set A (equals: by the attacks' kind,
  iterative white-box first, :func:`white_box_first`), and reports that point's mean correctness on set B, an
  estimate free of the selection's winner's curse. The ranking number is the
  mean over examples; the **strict** number is the fraction of examples whose selected point is right in
  every draw of set B. With ``R = 1`` both reduce to AutoAttack's per-example AND over clean and attacks;
- intervals come from a two-way bootstrap, over seeds and over test examples (paired: every seed is
  evaluated on the same examples), so they carry the seed spread and the test-set sampling error together;
  two defenses are compared paired, seed by seed and example by example, and share a rank unless the 95%
  interval of their difference excludes zero.

Everything here is a pure function of the stored bits, so ``qbench verify`` recomputes it exactly.
"""

from __future__ import annotations

import functools
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
    #: per example, the index of the selected candidate (equals resolved by the tie rule)
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
    chosen = worst_case(gates).selected  # the "last" rule, which stored cascaded cells inherited by
    if rule == "set-a":
        source = chosen
        broken = ~draw_sets(stacked[chosen, columns])[0].any(axis=1)
    else:
        wrong = ~stacked.any(axis=2)  # (gates, n): the point is wrong in every draw of both sets
        broken = wrong.any(axis=0)
        last = len(stacked) - 1 - np.argmax(wrong[::-1], axis=0)
        source = np.where(broken, last, chosen)
    return Survivors(~broken, stacked[source, columns], np.where(broken, source, -1))


#: how the worst case resolves equal set-A scores (``protocol.worst_case_ties`` of an entry).
#: "white-box-first": by :func:`white_box_first`. "last": to the last candidate in suite order (entries
#: built before 2026-12-02, and :func:`survivors`, whose stored cells inherited by it); on the QNN track,
#: whose suite ends with the transfer attacks, that gave every example the points left at the same set-A
#: score to a transfer attack's point and put the worst case above PGD alone (docs/protocol.md).
TIE_RULES = ("white-box-first", "last")
TIE_RULE = "white-box-first"


def white_box_first(threats: Sequence[str | None], iterative: Sequence[bool | None]) -> np.ndarray:
    """Per candidate, its preference among equal set-A scores (0 first): iterative white-box attacks, then
    one-step white-box, then gradient-free, then transfer attacks, then the clean input (threat None);
    within a class the later candidate in suite order.

    An order fixed by the attacks' declared kind, not by the bits: the same example gets the same point
    whether or not a cascade left other examples' rows inherited, so the cascade's worst case stays the
    full suite's on every example it attacked. It favours, among points a noisy selection cannot tell
    apart, the kind of attack that is the strongest against a model whose gradients are not masked.
    """
    def kind(threat: str | None, steps: bool | None) -> int:
        if threat is None:
            return 4
        if threat == "white-box":
            return 0 if steps else 1
        return 2 if threat == "gradient-free" else 3

    k = len(threats)
    order = sorted(range(k), key=lambda c: (kind(threats[c], iterative[c]), -c))
    preference = np.empty(k, dtype=np.int64)
    preference[order] = np.arange(k)
    return preference


def worst_case(candidates: Sequence[np.ndarray], preference: Sequence[int] | None = None) -> WorstCase:
    """Select on set A, report on set B, over ``candidates`` (each a cell's ``(n, 2 R)`` bits).

    Pass the clean cell first and the attacks in suite order. Equal set-A scores resolve to the candidate
    with the smallest ``preference`` (:func:`white_box_first`; None: the last candidate, the rule of
    :data:`TIE_RULES` ``"last"``). The preference reads no bits, so the reported set-B value stays free
    of the selection. With one draw per set (a deterministic model) the choice among equals changes no
    number, only which candidate an example is attributed to.
    """
    if not candidates:
        raise ValueError("worst case of nothing")
    sets = [draw_sets(c) for c in candidates]
    shape = sets[0][0].shape
    if any(a.shape != shape or b.shape != shape for a, b in sets):
        raise ValueError("candidates with different numbers of examples or draws")
    k = len(candidates)
    rank = np.arange(k - 1, -1, -1) if preference is None else np.asarray(preference, dtype=np.int64)
    if rank.shape != (k,) or sorted(rank.tolist()) != list(range(k)):
        raise ValueError("preference must rank the candidates 0..k-1")
    count_a = np.stack([a.sum(axis=1) for a, _ in sets]).astype(np.int64)  # (candidates, n) right draws on A
    selected = np.argmin(count_a * k + rank[:, None], axis=0)
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


@functools.lru_cache(maxsize=8)
def _resample_indices(s: int, n: int, samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    # the same seed gives the same resamples for every estimate of a shape; drawing 2000 x n indices was
    # half of a board build's time, so they are drawn once per shape (read-only: shared between calls)
    rng = np.random.default_rng(seed)
    examples = rng.integers(0, n, size=(samples, n))
    seeds = rng.integers(0, s, size=(samples, s)) if s > 1 else np.zeros((samples, 1), dtype=int)
    examples.flags.writeable = False
    seeds.flags.writeable = False
    return examples, seeds


def _bootstrap_means(values: np.ndarray, samples: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """Means of ``values`` (seeds, examples) under resampling seeds and examples (the same example draw
    for every seed: the seeds share the test examples)."""
    s, n = values.shape
    examples, seeds = _resample_indices(s, n, samples, seed)
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
    chain of small steps cannot tie a whole board together. The price (a departure from DESIGN.md's
    neighbour rule, listed in the README): an entry separated from the group's best starts a rank of its
    own even where it cannot be told from the group's last member. Labels of a shared rank carry ``=``.
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
