"""Sanity checks from the obfuscated-gradients literature; a failed check flags a result ``unreliable``.

Athalye, Carlini & Wagner 2018 and AutoAttack's ``checks.py`` list the signs that a defense only hides its
gradient: robust accuracy that rises with epsilon, one-step attacks beating iterative ones, a large
epsilon not reaching chance, zero or NaN loss gradients, black-box attacks beating white-box ones; and two
of scoring v2: APGD weaker than PGD (an attack silently weakened), and a worst case at epsilon 0 that is
not the clean accuracy (randomness outside the seeded evaluation draws); and one of qbench's own, a clean
accuracy not above chance (the robust accuracy of a model that guesses is the guessing), and an attack
suite that did not run in every seed (a failed cell would drop out of the worst case).
Each check compares accuracies with a tolerance of two binomial standard errors plus one example, so
sampling noise of a stochastic defense does not trip them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

#: fraction of examples with a zero or NaN loss gradient above which the gradient check fails
GRADIENT_FAILURE_FRACTION = 0.05
#: accuracy above 1/K + this margin at the large-epsilon probe fails the "reaches chance" check
CHANCE_MARGIN = 0.1


@dataclass(frozen=True)
class Finding:
    """One failed check: its short name and a sentence a reader understands."""

    check: str
    reason: str


def tolerance(p: float, n: int) -> float:
    """Two binomial standard errors at accuracy ``p`` over ``n`` examples, plus one example."""
    if n <= 0:
        return 1.0
    return 2 * math.sqrt(max(p * (1 - p), 0.0) / n) + 1 / n


def at_chance(clean: float, n_classes: int, n: int) -> bool:
    """Whether a clean accuracy of ``clean`` over ``n`` examples is not above chance (1/K) beyond the
    :func:`tolerance`: check 8's criterion, which the runner also uses to leave a guessing model unattacked."""
    chance = 1 / max(n_classes, 1)
    return clean <= chance + tolerance(chance, n)


def _iterative_at_most(standalone: dict[tuple[str, float], float], attack_kinds: dict[str, dict[str, Any]],
                       epsilon: float, bound: float) -> bool:
    """Whether an iterative white-box (or adaptive) attack at ``epsilon`` leaves at most ``bound``."""
    return any(v <= bound for (a, e), v in standalone.items() if e == epsilon
               and attack_kinds.get(a, {}).get("iterative") is True
               and attack_kinds.get(a, {}).get("threat") in ("white-box", "adaptive"))


def run_checks(summary: dict[str, Any], attack_kinds: dict[str, dict[str, Any]]) -> list[Finding]:
    """All checks on a summary (see :func:`qbench.publishing.summary.summarize`).

    ``attack_kinds`` maps attack name to ``{"threat": ..., "iterative": bool | None}``.
    """
    n = summary["n_test"]
    findings: list[Finding] = []
    rows = [r for r in summary["attacks"] if r["status"] == "ok"]
    acc = {(r["attack"], r["epsilon"]): r["robust"]["mean"] for r in rows}
    # a cascaded attack's number is a stage of the cascade (after the gates), not the attack on its own:
    # it is not compared with other attacks
    cascaded = {(r["attack"], r["epsilon"]) for r in rows if r.get("cascaded")}
    standalone = {k: v for k, v in acc.items() if k not in cascaded}

    # 1. robust accuracy must not rise with epsilon (per attack, and for the worst case)
    for attack in sorted({a for a, _ in acc}):
        series = sorted((e, v) for (a, e), v in acc.items() if a == attack)
        one_step = attack_kinds.get(attack, {}).get("iterative") is False
        for (e1, v1), (e2, v2) in zip(series, series[1:]):
            if v2 > v1 + tolerance(v1, n):
                if one_step and _iterative_at_most(standalone, attack_kinds, e2, v1 + tolerance(v1, n)):
                    # a single step of size eps overshoots where the loss is not linear over eps: its curve may
                    # rise while an iterative white-box attack at the larger eps is as strong as the step was
                    # at the smaller one; then the evaluation has not weakened with eps, only the one step
                    continue
                findings.append(Finding("monotone", f"{attack}: robust accuracy rises from {v1:.1%} at eps={e1:g} to {v2:.1%} at eps={e2:g}"))
    # the worst case is compared only between epsilons with the same attack set: the full suite at the
    # ranking epsilon is stronger than the curve attacks at the sweep epsilons by construction
    by_suite: dict[tuple, list[tuple[float, float]]] = {}
    for w in summary["worst_case"]:
        by_suite.setdefault(tuple(w["attacks"]), []).append((w["epsilon"], w["robust"]["mean"]))
    for worst in by_suite.values():
        worst.sort()
        for (e1, v1), (e2, v2) in zip(worst, worst[1:]):
            if v2 > v1 + tolerance(v1, n):
                findings.append(Finding("monotone", f"worst case rises from {v1:.1%} at eps={e1:g} to {v2:.1%} at eps={e2:g}"))

    # 2. an iterative white-box attack must be at least as strong as a one-step one
    for epsilon in sorted({e for _, e in standalone}):
        one_step = [(a, v) for (a, e), v in standalone.items() if e == epsilon and attack_kinds.get(a, {}).get("iterative") is False
                    and attack_kinds[a]["threat"] == "white-box"]
        iterative = [(a, v) for (a, e), v in standalone.items() if e == epsilon and attack_kinds.get(a, {}).get("iterative") is True
                     and attack_kinds[a]["threat"] in ("white-box", "adaptive")]
        if one_step and iterative:
            best_one = min(one_step, key=lambda t: t[1])
            best_iter = min(iterative, key=lambda t: t[1])
            if best_iter[1] > best_one[1] + tolerance(best_one[1], n):
                findings.append(Finding(
                    "iterative-vs-one-step",
                    f"at eps={epsilon:g} the one-step {best_one[0]} ({best_one[1]:.1%}) beats every iterative attack "
                    f"(best {best_iter[0]}: {best_iter[1]:.1%})",
                ))

        # 5. a transfer or gradient-free attack must not beat every white-box attack
        white = [(a, v) for (a, e), v in standalone.items() if e == epsilon and attack_kinds.get(a, {}).get("threat") in ("white-box", "adaptive")]
        black = [(a, v) for (a, e), v in standalone.items() if e == epsilon and attack_kinds.get(a, {}).get("threat") in ("transfer", "gradient-free")]
        if white and black:
            best_white = min(white, key=lambda t: t[1])
            best_black = min(black, key=lambda t: t[1])
            if best_black[1] < best_white[1] - tolerance(best_white[1], n):
                findings.append(Finding(
                    "black-box-beats-white-box",
                    f"at eps={epsilon:g} the {attack_kinds[best_black[0]]['threat']} attack {best_black[0]} ({best_black[1]:.1%}) "
                    f"beats every white-box attack (best {best_white[0]}: {best_white[1]:.1%})",
                ))

    # 3. a large epsilon must bring accuracy near chance (bounded domains; from the probe cells)
    probe = summary.get("probe")
    if probe and probe.get("robust") is not None:
        chance = 1 / summary.get("n_classes", 2)
        value = probe["robust"]["mean"]
        if value > chance + CHANCE_MARGIN + tolerance(chance, n):
            findings.append(Finding(
                "large-epsilon",
                f"{probe['attack']} at the large eps={probe['epsilon']:g} leaves {value:.1%} accuracy (chance is {chance:.0%})",
            ))

    # 4. no zero/NaN loss gradients on more than a small fraction of examples (ART's gradient check)
    grad = summary.get("gradient_check")
    if grad:
        for key, label in (("zero", "zero"), ("nan", "NaN"), ("inf", "infinite")):
            fraction = grad.get(key, 0.0)
            if fraction > GRADIENT_FAILURE_FRACTION:
                findings.append(Finding("gradient", f"{fraction:.0%} of checked examples have a {label} loss gradient w.r.t. the input"))
    # 6. APGD (AutoAttack's step-size control over the same loss) must not be weaker than PGD
    for epsilon in sorted({e for _, e in acc}):
        apgd = acc.get(("apgd-ce", epsilon))
        pgd = acc.get(("pgd", epsilon))
        if apgd is not None and pgd is not None and apgd > pgd + tolerance(pgd, n):
            findings.append(Finding(
                "apgd-weaker-than-pgd",
                f"at eps={epsilon:g} apgd-ce leaves {apgd:.1%} against pgd's {pgd:.1%}: the adaptive attack is "
                "weaker than plain PGD beyond noise",
            ))

    # 7. at epsilon 0 every attack's point is the clean input: with common random numbers the worst case
    # must equal the clean accuracy (a defense drawing randomness outside the seeded stream breaks this)
    clean = summary.get("clean")
    for w in summary["worst_case"]:
        if w["epsilon"] == 0 and clean is not None and abs(w["robust"]["mean"] - clean["mean"]) > 1 / max(n, 1):
            findings.append(Finding(
                "epsilon-zero",
                f"the worst case at eps=0 is {w['robust']['mean']:.1%}, clean accuracy {clean['mean']:.1%}: "
                "identical inputs did not score identically",
            ))

    # 8. the clean accuracy must be above chance: a model that guesses keeps about 1/K of the examples
    # under any attack (half of a binary board, more than any real defense there), so its robust accuracy
    # measures the guessing, not robustness. Not among the obfuscated-gradients checks; qbench adds it
    # because a stochastic defense can drown its own signal (depolarizing noise on 8 qubits under 50 shots)
    if clean is not None:
        chance = 1 / summary.get("n_classes", 2)
        if at_chance(clean["mean"], summary.get("n_classes", 2), n):
            consequence = ("the attack suite was not run on it" if summary.get("unmeasured")
                           else "its robust accuracy measures guessing, not robustness")
            findings.append(Finding(
                "clean-at-chance",
                f"clean accuracy {clean['mean']:.1%} is not above chance ({chance:.0%}) beyond sampling error: "
                + consequence,
            ))

    # 9. every attack of the suite must have run in every seed: a failed cell drops out of the worst case,
    # which is then an upper bound on the robust accuracy, not the number the protocol defines
    for w in summary["worst_case"]:
        if w.get("incomplete"):
            findings.append(Finding(
                "incomplete",
                f"at eps={w['epsilon']:g} {', '.join(w['incomplete'])} did not run in every seed (a failed cell): "
                "the worst case there is only an upper bound",
            ))
    return findings
