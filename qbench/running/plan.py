"""What one defense's run consists of, before anything runs: the :class:`Plan` and the cells of each seed,
keyed exactly as the store keys them (:func:`seed_cells`).

The runner (:mod:`qbench.running.runner`) computes a plan's missing cells through tasks (:mod:`qbench.running.tasks`);
the preflight (:mod:`qbench.running.preflight`) counts them; both, and the tasks, read the plan from here, so
none of them imports another to learn what a plan is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import qbench
from qbench.contract.attack import Attack, attack_label
from qbench.contract.component import Component
from qbench.contract.dataset import Dataset, TrainingSchedule
from qbench.contract.defense import Defense
from qbench.hashing import config_hash
from qbench.contract.model import Model
from qbench.running.scoring import CASCADE_RULE, SCORING_VERSION


def component_ref(component: Component) -> dict[str, Any]:
    """What identifies a configured component in a key: name, version and full config."""
    return {"name": component.name, "version": component.version, "config": component.config_dict()}


@dataclass
class Plan:
    """What to run for one defense: every seed x (clean + every attack x epsilon)."""

    track: str
    dataset: Dataset
    model: Model
    defense: Defense
    attacks: list[Attack]
    epsilons: list[float]
    seeds: list[int]
    schedule: TrainingSchedule
    n_eot: int = 20
    #: evaluation draws per set of a stochastic prediction (scoring v2: set A selects, set B reports)
    n_repeat: int = 10
    #: the readout of a quantum classifier's deployed prediction: single shots (None: exact probabilities)
    shots: int | None = None
    #: evaluate on ``n_test`` test examples only (None = the whole fixed test split), chosen by ``test_selection``
    n_test: int | None = None
    #: which ``n_test`` examples (:func:`qbench.running.tasks.evaluation_split`): ``"first"``, the split's
    #: first ones, or ``"class-interleaved"``, the split reordered round-robin over the classes first, so that
    #: a subset of a split stored class by class (CIFAR-100's held-out images) is not a few classes only.
    #: Only a selection other than "first" enters the keys, so every result stored before it keeps its key.
    test_selection: str = "first"
    eval_batch_size: int = 250
    quantum_device: str | None = None
    #: the large-epsilon probe of the "reaches chance" check (an attack and an epsilon), or None
    probe: Attack | None = None
    probe_epsilon: float | None = None
    #: examples whose loss gradient the clean cell checks for zeros/NaNs (ART's gradient check)
    gradient_check_examples: int = 100
    #: cheaper attacks also run over a sweep of epsilons, for robustness curves
    sweep_attacks: list[Attack] = field(default_factory=list)
    sweep_epsilons: list[float] = field(default_factory=list)
    #: the suite as a cascade (issue 17): attack labels run on every example at the ranking epsilons (the
    #: gates); every other suite attack there runs only on the examples that the clean evaluation and the
    #: gates did not break (:func:`qbench.running.scoring.survivors`). Empty: every attack on every example.
    cascade_gates: tuple[str, ...] = ()
    #: the curves as a cascade up the epsilons (issue 17): a curve attack's cell at a sweep epsilon (not a
    #: ranking one) runs only on the examples its own cell at the next smaller epsilon did not break, and
    #: keeps that point elsewhere (it lies inside the larger ball): the curve of "the attack at this radius
    #: or any smaller one of the sweep". False: every curve cell attacks every example.
    cascade_curves: bool = False
    #: when a cascade or a carried curve counts an example as broken (:data:`qbench.running.scoring.CASCADE_RULE`;
    #: "set-a" rebuilds entries computed before the all-draws rule)
    cascade_rule: str = CASCADE_RULE
    #: the torch device every task computes on (:mod:`qbench.running.torch_device`); only a device other
    #: than the CPU enters the keys, so every result computed before the option existed keeps its key
    torch_device: str = "cpu"
    #: the boards' rule for a model that guesses (:mod:`qbench.running.chance`, docs/protocol.md): a seed's
    #: attack cells wait for its clean cell, and a guessing seed's for every seed's; where the clean accuracy
    #: over the seeds is known to be at chance, they are not computed at all and the entry reports its clean
    #: accuracy and no robust number. Not part of any key.
    attack_only_above_chance: bool = False

    def selection_key(self) -> dict[str, Any]:
        """The key fields that name the test selection: none for "first" or the whole split."""
        if self.test_selection == "first" or self.n_test is None:
            return {}
        return {"test_selection": self.test_selection}

    def device_key(self) -> dict[str, Any]:
        """The key fields that name the torch device: none on the CPU, ``{"torch_device": name}`` elsewhere."""
        return {} if self.torch_device == "cpu" else {"torch_device": self.torch_device}

    def attack_cells(self) -> list[tuple[Attack, float]]:
        """Every (attack, epsilon) evaluated: the suite at ``epsilons``, the sweep attacks at ``sweep_epsilons``."""
        pairs = [(a, e) for a in self.attacks for e in self.epsilons]
        seen = {(attack_label(a), e) for a, e in pairs}
        for attack in self.sweep_attacks:
            for epsilon in self.sweep_epsilons:
                if (attack_label(attack), epsilon) not in seen:
                    seen.add((attack_label(attack), epsilon))
                    pairs.append((attack, epsilon))
        return pairs

    def all_epsilons(self) -> list[float]:
        """Every epsilon with at least one attack cell, sorted."""
        return sorted({e for _, e in self.attack_cells()})

    def training_spec(self, seed: int) -> dict[str, Any]:
        """The full configuration a trained model depends on."""
        return {
            "qbench": qbench.__version__,
            "track": self.track,
            "dataset": component_ref(self.dataset),
            "model": component_ref(self.model),
            "defense": {"standard_training": True} if self.defense.standard_training else component_ref(self.defense),
            "schedule": self.schedule.key_dict(),
            "quantum_device": self.quantum_device,
            "seed": seed,
            **self.device_key(),
        }

    def cascaded(self, attack: Attack, epsilon: float) -> bool:
        """Whether the cell of ``attack`` at ``epsilon`` runs on the gates' survivors only."""
        return bool(self.cascade_gates) and epsilon in self.epsilons and attack_label(attack) not in \
            self.cascade_gates and any(attack is a for a in self.attacks)

    def carried(self, attack: Attack, epsilon: float) -> bool:
        """Whether the curve cell of ``attack`` at ``epsilon`` runs behind the same attack's smaller epsilon."""
        return self.cascade_curves and epsilon not in self.epsilons and \
            any(attack is a for a in self.sweep_attacks) and epsilon in self.sweep_epsilons

    def carried_from(self, attack: Attack, epsilon: float) -> float | None:
        """The epsilon of the cell (same attack label) whose breaks a carried cell keeps: the largest smaller
        one with a cell of that attack, ranking epsilons included; None below the smallest (clean only)."""
        label = attack_label(attack)
        below = [e for a, e in self.attack_cells() if attack_label(a) == label and e < epsilon]
        return max(below) if below else None

    def cell_spec(self, train_key: str, attack: Attack | None, epsilon: float | None, kind: str,
                  after: list[str] | None = None) -> dict[str, Any]:
        """The full configuration of one cell (its trained model's key plus the evaluation settings).

        ``after``: the keys of the gate cells (clean first) a cascaded cell's examples are chosen by.
        """
        extra: dict[str, Any] = {"gradient_check_examples": self.gradient_check_examples} if kind == "clean" else {}
        if after:
            extra["cascade_after"] = list(after)
            if self.cascade_rule != "set-a":  # the legacy rule's cells keep the keys they were stored under
                extra["cascade_rule"] = self.cascade_rule
        return {
            **extra,
            "qbench": qbench.__version__,
            "training": train_key,
            # trained weights may be shared between defenses (standard_training); the cell is not
            "defense": component_ref(self.defense),
            "kind": kind,
            "attack": None if attack is None else component_ref(attack),
            "epsilon": epsilon,
            "n_eot": self.n_eot,
            "n_repeat": self.n_repeat,
            "n_test": self.n_test,
            **self.selection_key(),
            "shots": self.shots,
            "scoring": SCORING_VERSION,
            **self.device_key(),
        }


@dataclass
class PlannedCell:
    """One cell of a seed's plan: its key, spec, attack and epsilon, and the gate cells it waits for."""

    key: str
    spec: dict[str, Any]
    attack: Attack | None
    epsilon: float | None
    #: a cascaded cell's gate cells (clean first), whose bits choose the examples it runs on
    gates: list[str] = field(default_factory=list)


@dataclass
class SeedPlan:
    """One seed of a plan: its training key and spec, and its cells (clean first, suite order)."""

    seed: int
    train_key: str
    train_spec: dict[str, Any]
    cells: list[PlannedCell]


def seed_cells(plan: Plan, seed: int) -> SeedPlan:
    """The training key and spec of ``seed`` and its cells, keyed as the runner stores them (clean first,
    suite order): cascaded cells by their gates' keys, carried curve cells by the cell below them."""
    train_spec = plan.training_spec(seed)
    train_key = config_hash(train_spec)
    todo: list[tuple[Attack | None, float | None, str]] = [(None, None, "clean")]
    todo += [(a, e, "attack") for a, e in plan.attack_cells()]
    if plan.probe is not None and plan.probe_epsilon is not None:
        todo.append((plan.probe, plan.probe_epsilon, "probe"))
    cells = []
    for attack, epsilon, kind in todo:
        if attack is not None and kind == "attack" and (plan.cascaded(attack, epsilon) or plan.carried(attack, epsilon)):
            continue
        spec = plan.cell_spec(train_key, attack, epsilon, kind)
        cells.append(PlannedCell(config_hash(spec), spec, attack, epsilon))
    # cascaded cells: keyed by their gates' keys, so new gate results mean a new cell
    for attack, epsilon, kind in todo:
        if attack is None or kind != "attack" or not plan.cascaded(attack, epsilon):
            continue
        gates = [cells[0].key] + [c.key for c in cells if c.attack is not None and c.epsilon == epsilon
                                  and c.spec["kind"] == "attack" and attack_label(c.attack) in plan.cascade_gates]
        spec = plan.cell_spec(train_key, attack, epsilon, kind, after=gates)
        cells.append(PlannedCell(config_hash(spec), spec, attack, epsilon, gates))
    # carried curve cells, up the epsilons: each keyed by the clean cell's and its smaller epsilon's keys
    point = {(attack_label(c.attack), c.epsilon): c for c in cells if c.attack is not None and c.spec["kind"] == "attack"}
    carried = [(a, e) for a, e, k in todo if a is not None and k == "attack" and plan.carried(a, e)]
    for attack, epsilon in sorted(carried, key=lambda t: t[1]):
        below = plan.carried_from(attack, epsilon)
        gates = [cells[0].key] + ([point[(attack_label(attack), below)].key] if below is not None else [])
        spec = plan.cell_spec(train_key, attack, epsilon, "attack", after=gates)
        cell = PlannedCell(config_hash(spec), spec, attack, epsilon, gates)
        cells.append(cell)
        point[(attack_label(attack), epsilon)] = cell
    positions = {(id(a), e, k): i for i, (a, e, k) in enumerate(todo)}
    cells.sort(key=lambda c: positions[(id(c.attack), c.epsilon, c.spec["kind"])])  # back in suite order
    return SeedPlan(seed, train_key, train_spec, cells)
