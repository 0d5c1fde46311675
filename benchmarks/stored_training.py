"""What the gradient benchmarks share: a trained model read back from a result store, and its input gradient.

``eot_samples.py`` and ``depolarizing_gradients.py`` study models the protocol runner has already trained
(they never train): both rebuild the plan's training spec, find its record in the store and load the cached
weights into a freshly built, defense-prepared module. Run as scripts, this folder is on ``sys.path``.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from safetensors.torch import load_model

from qbench.contract.context import Context
from qbench.hashing import config_hash
from qbench.publishing.published_store import import_store
from qbench.registry import load_registry
from qbench.running.runner import Plan
from qbench.running.store import Store


@dataclass
class StoredTraining:
    """A trained (prepared, not yet deployed) module with what deploying and attacking it need."""

    module: torch.nn.Module
    defense: Any
    data: Any
    ctx: Context
    registry: Any


def load_stored_training(store_path: Path, data_dir: Path, track: str, dataset: str, model: str, defense: str,
                         seed: int, model_options: dict[str, str] | None = None,
                         shots: int | None = None) -> StoredTraining | None:
    """The weights the runner cached for (dataset, model, defense, seed) on ``track``, or None (a message on
    stderr) where the store holds no such training. ``model_options`` must be the ones the run trained with."""
    registry = load_registry()
    dataset_c = registry.create("dataset", dataset, {}, track)
    model_c = registry.create("model", model, dict(model_options or {}), track)
    defense_c = registry.create("defense", defense, {}, track)
    # epsilons and attacks are not part of the training spec; the plan only needs to be well formed
    plan = Plan(track=track, dataset=dataset_c, model=model_c, defense=defense_c, attacks=[], epsilons=[0.1],
                seeds=[seed], schedule=type(dataset_c).training)
    ctx = Context(seed=0, data_dir=data_dir, shots=shots)
    data = dataset_c.load(ctx)
    ctx.data = data
    with Store.open(store_path, create=False) as store:
        record = store.get_training(config_hash(plan.training_spec(seed)))
        if record is None:
            print(f"no trained {defense} {model} on {dataset} (seed {seed}) in {store_path}", file=sys.stderr)
            return None
        module = defense_c.prepare(model_c.build(data, ctx), ctx)
        load_model(module, str(store.artifacts / record.weights))
    return StoredTraining(module=module, defense=defense_c, data=data, ctx=ctx, registry=registry)


def input_gradient(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, n: int) -> torch.Tensor:
    """Mean over ``n`` stochastic forwards of d loss / d x (per example)."""
    total = torch.zeros_like(x)
    for _ in range(n):
        xi = x.clone().requires_grad_(True)
        loss = F.cross_entropy(model(xi), y, reduction="sum")
        (g,) = torch.autograd.grad(loss, xi)
        total += g
    return total / n


@contextlib.contextmanager
def published_copy(published: Path) -> Iterator[Path]:
    """A scratch SQLite store holding everything in the published store ``published``, removed on exit."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "published.sqlite"
        with Store.open(path) as store:
            import_store(published, store)
        yield path
