"""QNAD's crosstalk placement (algorithm 1 of seeds/001): crosstalk on the weights that matter most.

1. Importance: ``|dL/dw|`` of every mapped weight, where ``L`` is the summed cross-entropy over a set of
   inputs (:func:`weight_importance`).
2. Selection: the top ``round(level * N)`` of the ``N`` mapped weights by importance (ties: lower global
   index first), visited from the most important down.
3. Placement: weight ``g`` sits on qubit ``q = qubits[g % Q]`` in time slot ``t = g // Q``
   (:mod:`qbench.hardware.mapping`). Its candidate partners are the characterised neighbours of ``q`` at
   most ``max_hops`` hops away, 1-hop before 2-hop, then by qubit number. A candidate ``n`` is
   *available* when, in slot ``t``,

   - the weight ``n`` carries in that slot is not itself selected (a selected weight's qubit is busy
     with its own crosstalk; a qubit that carries no weight in that slot is idle, hence available), and
   - ``n`` is not already the partner of a more important selected weight in that slot.

   The first available candidate becomes the partner, and the weight reads back with the crosstalk
   characterisation of ``(q, n, k)`` (``k`` CNOT pairs) instead of the intrinsic one. A selected weight
   with no available candidate keeps the intrinsic noise and is counted as *unplaced*. The partner's own
   weight keeps its intrinsic noise: the characterisation measures the target's read-back only.

The crosstalk *level* is the fraction of mapped weights selected; :attr:`CrosstalkPlan.affected_fraction`
is the fraction that actually got crosstalk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from qbench.errors import UsageError
from qbench.hardware.characterisation import Characterisation
from qbench.hardware.mapping import mapped_layers, weight_offsets


def weight_importance(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    batch_size: int = 256,
) -> dict[str, torch.Tensor]:
    """``layer name -> |dL/dw|`` (shaped like the weight) for every mapped layer of ``model``.

    ``L`` is ``loss_fn`` summed over all ``inputs`` (default: cross-entropy with ``reduction="sum"``),
    evaluated in batches of ``batch_size`` with the model in eval mode (restored afterwards). The
    model's ``.grad`` fields are not touched. Pass the clean (unmapped) model.
    """
    loss_fn = loss_fn or _cross_entropy_sum
    layers = mapped_layers(model)
    if not layers:
        raise UsageError(f"{type(model).__name__} has no Conv/Linear layer to rank")
    weights = [module.weight for _, module in layers]
    totals = [torch.zeros_like(w) for w in weights]
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(inputs), batch_size):
            loss = loss_fn(model(inputs[start:start + batch_size]), labels[start:start + batch_size])
            for total, grad in zip(totals, torch.autograd.grad(loss, weights, allow_unused=True)):
                if grad is not None:
                    total += grad.detach()
    finally:
        model.train(was_training)
    return {name: total.abs() for (name, _), total in zip(layers, totals)}


def _cross_entropy_sum(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    # summed, so the batches add up to the loss of the whole set
    return torch.nn.functional.cross_entropy(logits, labels, reduction="sum")


@dataclass
class CrosstalkPlan:
    """Which mapped weights get crosstalk, and with which partner qubit.

    ``targets[name]``: flat indices (into ``weight.flatten()``) of the layer's weights that got crosstalk,
    most important first; ``neighbours[name]``: the partner qubit of each; ``layers``: ``name -> numel``
    of the model the plan was made for.
    """

    level: float
    k: int
    max_hops: int
    n_weights: int
    n_selected: int
    layers: dict[str, int]
    targets: dict[str, torch.Tensor] = field(default_factory=dict)
    neighbours: dict[str, torch.Tensor] = field(default_factory=dict)
    hops: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def n_placed(self) -> int:
        """Selected weights that got crosstalk."""
        return sum(len(t) for t in self.targets.values())

    @property
    def n_unplaced(self) -> int:
        """Selected weights left with intrinsic noise: no available neighbour."""
        return self.n_selected - self.n_placed

    @property
    def affected_fraction(self) -> float:
        """Fraction of all mapped weights that got crosstalk."""
        return self.n_placed / self.n_weights if self.n_weights else 0.0

    def check_matches(self, offsets: dict[str, tuple[int, int]], characterisation: Characterisation) -> None:
        """Raise :class:`UsageError` unless this plan fits a model with these layers and the characterisation."""
        if {name: numel for name, (_, numel) in offsets.items()} != self.layers:
            raise UsageError("the crosstalk plan was made for a model with other Conv/Linear layers")
        if self.k not in characterisation.ks:
            raise UsageError(f"the plan uses k={self.k} CNOT pairs; the characterisation has {list(characterisation.ks)}")

    def summary(self) -> dict[str, Any]:
        """Counts, JSON-able: level, k, selected / placed / unplaced, the affected fraction, per layer placed."""
        return {"level": self.level, "k": self.k, "max_hops": self.max_hops, "n_weights": self.n_weights,
                "n_selected": self.n_selected, "n_placed": self.n_placed, "n_unplaced": self.n_unplaced,
                "affected_fraction": self.affected_fraction,
                "placed_per_layer": {name: len(t) for name, t in self.targets.items()}}


def place_crosstalk(
    model: torch.nn.Module,
    importance: dict[str, torch.Tensor],
    characterisation: Characterisation,
    level: float,
    k: int,
    max_hops: int = 2,
) -> CrosstalkPlan:
    """Select the top ``level`` fraction of mapped weights by ``importance`` and give each an available
    neighbour qubit for ``k`` CNOT pairs (see the module docstring for the exact rule)."""
    if not 0.0 <= level <= 1.0:
        raise UsageError(f"the crosstalk level is a fraction in [0, 1], got {level}")
    if k not in characterisation.ks:
        raise UsageError(f"k={k} CNOT pairs was not characterised (characterised: {list(characterisation.ks)}; "
                         "k=0 is the intrinsic noise: map without a plan)")
    offsets = weight_offsets(model)
    layers = {name: numel for name, (_, numel) in offsets.items()}
    missing = set(layers) - set(importance)
    if missing:
        raise UsageError(f"no importance for layers {sorted(missing)}")
    flat = torch.cat([importance[name].detach().reshape(-1).double() for name in layers])
    n_weights = flat.numel()
    n_selected = int(round(level * n_weights))
    order = torch.sort(-flat, stable=True).indices[:n_selected]
    selected = torch.zeros(n_weights, dtype=torch.bool)
    selected[order] = True

    qubits = characterisation.qubits
    n = len(qubits)
    position = {q: i for i, q in enumerate(qubits)}
    candidates = {
        q: sorted(((other, hops) for target, other, hops in characterisation.pairs
                   if target == q and hops <= max_hops), key=lambda c: (c[1], c[0]))
        for q in qubits
    }
    busy: set[tuple[int, int]] = set()
    chosen: list[tuple[int, int, int]] = []  # (global index, partner, hops), most important first
    selected_list = selected.tolist()
    for g in order.tolist():
        slot, q = divmod(g, n)
        for other, hops in candidates[qubits[q]]:
            if other in position:
                partner_weight = slot * n + position[other]
                if partner_weight < n_weights and selected_list[partner_weight]:
                    continue
            if (slot, other) in busy:
                continue
            busy.add((slot, other))
            chosen.append((g, other, hops))
            break

    plan = CrosstalkPlan(level=level, k=k, max_hops=max_hops, n_weights=n_weights, n_selected=n_selected,
                         layers=layers)
    placed = torch.tensor(chosen, dtype=torch.long).reshape(-1, 3)
    for name, (offset, numel) in offsets.items():
        mine = placed[(placed[:, 0] >= offset) & (placed[:, 0] < offset + numel)]
        plan.targets[name] = mine[:, 0] - offset
        plan.neighbours[name] = mine[:, 1].clone()
        plan.hops[name] = mine[:, 2].clone()
    return plan


def qnad_crosstalk(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    characterisation: Characterisation,
    level: float,
    k: int,
    max_hops: int = 2,
    batch_size: int = 256,
) -> CrosstalkPlan:
    """QNAD algorithm 1 in one call: :func:`weight_importance` on ``(inputs, labels)``, then
    :func:`place_crosstalk`. Pass the result to :func:`qbench.hardware.map_to_hardware` as ``crosstalk``."""
    importance = weight_importance(model, inputs, labels, batch_size=batch_size)
    return place_crosstalk(model, importance, characterisation, level, k, max_hops)
