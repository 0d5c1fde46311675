"""One experiment of a paper reproduction: trained settings, the attacks run on them, and how to read the
results back as numbers placed beside the paper's.

An :class:`Experiment` is a small grid: every :class:`Setting` (a defense with options on a dataset and
model) is run by the ordinary protocol runner with the experiment's attacks and epsilons, so cells and
trained weights are shared, through the store, with ``qbench evaluate`` and ``qbench leaderboard run``
wherever the configurations coincide. ``read`` turns the summaries into :class:`Value` rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from qbench.running.planning import make_plan
from qbench.registry import Registry
from qbench.contract.tracks import DEFAULTS
from qbench.running.plan import Plan


@dataclass(frozen=True)
class Setting:
    """A trained configuration: a defense (with options) on a dataset and a model of a track."""

    label: str
    track: str
    dataset: str
    model: str
    defense: str
    dataset_options: dict[str, Any] = field(default_factory=dict)
    model_options: dict[str, Any] = field(default_factory=dict)
    defense_options: dict[str, Any] = field(default_factory=dict)
    #: None: the dataset's own training schedule
    epochs: int | None = None


@dataclass
class Value:
    """One number of the reproduction: ours, the paper's, and whether they differ beyond noise."""

    row: str
    column: str
    ours: float | None
    paper: float | None = None
    #: our 95% interval (accuracies), when there is one
    ci: tuple[float, float] | None = None
    #: "%" for accuracies and improvements (stored as fractions / percent), "" for raw numbers
    unit: str = "%"

    @property
    def beyond_noise(self) -> bool | None:
        """True when the paper's number lies outside our interval (None if either is missing)."""
        if self.paper is None or self.ours is None or self.ci is None:
            return None
        return not self.ci[0] - 1e-9 <= self.paper <= self.ci[1] + 1e-9

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "row": self.row, "column": self.column, "ours": self.ours, "paper": self.paper,
            "ci": list(self.ci) if self.ci else None, "unit": self.unit, "beyond_noise": self.beyond_noise,
        }


Reader = Callable[[dict[str, dict[str, Any]]], list[Value]]


@dataclass(frozen=True)
class Experiment:
    """A table or figure of a paper, as settings x attacks x epsilons and a reader of the results."""

    id: str
    title: str
    settings: tuple[Setting, ...]
    attacks: tuple[tuple[str, dict[str, Any]], ...]
    epsilons: tuple[float, ...]
    read: Reader
    n_test: int | None = None
    n_repeat: int = 1
    n_eot: int = 1
    #: what differs from the paper's set-up, known before any number is seen
    notes: str = ""
    #: for figures the text does not reproduce: the claim the paper makes about them, to compare with
    paper_claim: str = ""

    def plans(
        self, registry: Registry, seeds: list[int], epochs: int | None = None, n_test: int | None = None,
        torch_device: str = "cpu",
    ) -> list[tuple[Setting, Plan]]:
        """One plan per setting (``epochs`` / ``n_test`` override the experiment's, for smoke runs), computed on
        ``torch_device``."""
        return [
            (s, make_plan(
                registry, s.track, dataset=(s.dataset, s.dataset_options), model=(s.model, s.model_options),
                defense=(s.defense, s.defense_options), attacks=self.attacks, epsilons=list(self.epsilons),
                seeds=list(seeds), epochs=epochs or s.epochs, n_eot=self.n_eot, n_repeat=self.n_repeat,
                n_test=n_test or self.n_test, shots=DEFAULTS[s.track].shots, torch_device=torch_device,
            ))
            for s in self.settings
        ]


def robust(summary: dict[str, Any], attack: str, epsilon: float, **options: Any) -> dict[str, Any] | None:
    """The robust-accuracy estimate of attack ``attack`` (name, and these options) at ``epsilon``, if it ran.

    ``epsilon=0`` is the clean accuracy.
    """
    if epsilon == 0:
        return summary["clean"]
    for row in summary["attacks"]:
        if (
            row["name"] == attack and math.isclose(row["epsilon"], epsilon) and row["status"] == "ok"
            and all(row["config"].get(k) == v for k, v in options.items())
        ):
            return row["robust"]
    return None


def accuracy_value(row: str, column: str, estimate: dict[str, Any] | None, paper: float | None) -> Value:
    """A :class:`Value` from a summary estimate (fractions; the paper's number as a fraction too)."""
    if estimate is None:
        return Value(row, column, None, paper)
    return Value(row, column, estimate["mean"], paper, (estimate["ci_low"], estimate["ci_high"]))
