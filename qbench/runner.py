"""The protocol runner: train each (track, dataset, model, defense, seed) once, then evaluate every cell.

A *cell* is one (trained model, attack + config, epsilon) or the clean evaluation of a trained model. Each
finished cell is committed to the store at once with per-example correctness, so the worst case over the
attack suite can be computed per example later and a killed run resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_model, save_model

import qbench
from qbench.attack import Attack, AttackSkipped, attack_label
from qbench.art_bridge import gradient_check
from qbench.component import Component
from qbench.context import Context
from qbench.rng import derive_seed, isolated_rng
from qbench.dataset import DataSplit, Dataset, TrainingSchedule
from qbench.defense import Defense
from qbench.errors import QBenchError
from qbench.hashing import config_hash
from qbench.model import Model, is_stochastic
from qbench.progress import Reporter
from qbench.store import CellRecord, Store, TrainingRecord
from qbench.tracks import QNN

#: tolerance for the epsilon-ball and domain checks on an attack's output
BALL_TOLERANCE = 1e-5


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
    n_repeat: int = 5
    #: evaluate on the first ``n_test`` test examples only (None = the whole fixed test split)
    n_test: int | None = None
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
            "schedule": dataclasses.asdict(self.schedule),
            "quantum_device": self.quantum_device,
            "seed": seed,
        }

    def cell_spec(self, train_key: str, attack: Attack | None, epsilon: float | None, kind: str) -> dict[str, Any]:
        """The full configuration of one cell (its trained model's key plus the evaluation settings)."""
        extra = {"gradient_check_examples": self.gradient_check_examples} if kind == "clean" else {}
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
        }


@dataclass
class SeedRun:
    """What one seed of a plan produced: its training record and its cells (clean first)."""

    seed: int
    training: TrainingRecord | None
    cells: list[CellRecord] = field(default_factory=list)


@dataclass
class RunResult:
    """Everything a plan produced, with the data split it was evaluated on."""

    plan: Plan
    data: DataSplit
    seeds: list[SeedRun]
    #: cells computed in this run (the rest came from the store)
    computed: int = 0


class MissingCells(QBenchError):
    """A read-only run found cells that are not in the store yet."""


class Runner:
    """Runs plans against a store. ``data_dir`` and ``reporter`` are handed to plugins through the context.

    With ``compute=False`` the runner only reads the store and raises :class:`MissingCells` for a plan
    with cells not computed yet (``qbench leaderboard build``).
    """

    def __init__(
        self,
        store: Store,
        data_dir=None,
        reporter: Reporter | None = None,
        cache_dir=None,
        compute: bool = True,
    ) -> None:
        self.store = store
        self.compute = compute
        self.data_dir = data_dir
        self.reporter = reporter or Reporter()
        self.cache_dir = cache_dir or (store.artifacts / "cache")

    def context(self, seed: int, plan: Plan | None = None, data: DataSplit | None = None, run_seed: int = 0) -> Context:
        """A context for ``seed`` with this runner's directories and the plan's evaluation settings."""
        kwargs: dict[str, Any] = {"run_seed": run_seed}
        if plan is not None:
            kwargs = {"n_eot": plan.n_eot, "n_repeat": plan.n_repeat, "quantum_device": plan.quantum_device}
        return Context(
            seed=seed, data_dir=self.data_dir, cache_dir=self.cache_dir, progress=self.reporter, data=data, **kwargs
        )

    def load_data(self, dataset: Dataset) -> DataSplit:
        """Load a dataset's split (deterministic by its config; the cell seed plays no part)."""
        return dataset.load(self.context(0))

    def run(self, plan: Plan, data: DataSplit | None = None) -> RunResult:
        """Run every missing cell of ``plan``; cells already in the store are read back, not recomputed."""
        if data is None:
            data = self.load_data(plan.dataset)
        if plan.n_test is not None:
            data = dataclasses.replace(data, x_test=data.x_test[: plan.n_test], y_test=data.y_test[: plan.n_test])
        result = RunResult(plan, data, [])
        previous = torch.get_num_threads()
        # Circuit simulation is many small kernels: a second intra-op thread costs more than it gives
        # (measured ~40x slower on a loaded 2-core machine); CNN training on the mapped-DNN track keeps them.
        if plan.track == QNN:
            torch.set_num_threads(1)
        try:
            for seed in plan.seeds:
                result.seeds.append(self._run_seed(plan, data, seed, result))
        finally:
            torch.set_num_threads(previous)
        return result

    def _cells_of(self, plan: Plan, train_key: str) -> list[tuple[str, dict, Attack | None, float | None]]:
        todo: list[tuple[Attack | None, float | None, str]] = [(None, None, "clean")]
        todo += [(a, e, "attack") for a, e in plan.attack_cells()]
        if plan.probe is not None and plan.probe_epsilon is not None:
            todo.append((plan.probe, plan.probe_epsilon, "probe"))
        cells = []
        for attack, epsilon, kind in todo:
            spec = plan.cell_spec(train_key, attack, epsilon, kind)
            cells.append((config_hash(spec), spec, attack, epsilon))
        return cells

    def _run_seed(self, plan: Plan, data: DataSplit, seed: int, result: RunResult) -> SeedRun:
        train_spec = plan.training_spec(seed)
        train_key = config_hash(train_spec)
        cells = self._cells_of(plan, train_key)
        missing = [c for c in cells if not self.store.has_cell(c[0])]
        if not self.compute:
            absent = [c for c in missing if self.store.get_cell(c[0]) is None]  # failed cells are results too
            if absent:
                raise MissingCells(f"{len(absent)} of {len(cells)} cells of {plan.defense.name} seed {seed} are not in the store")
            missing = []
        training = self.store.get_training(train_key)
        model = None
        if missing:
            model, training = self._trained_model(plan, data, seed, train_key, train_spec)
            ctx = self.context(derive_seed(seed, "deploy"), plan, data, seed)
            with isolated_rng(ctx.seed):
                model = plan.defense.deploy(model, data, ctx)
            model.eval()
        run = SeedRun(seed, training)
        label = f"{plan.defense.name} seed {seed}"
        with self.reporter.task(f"evaluating {label}", total=len(cells)) as bar:
            for key, spec, attack, epsilon in cells:
                stored = self.store.get_cell(key)
                if stored is None or stored.status == "failed":
                    stored = self._evaluate_cell(plan, data, seed, train_key, key, spec, attack, epsilon, model)
                    self.store.put_cell(stored)
                    result.computed += 1
                run.cells.append(stored)
                bar.advance()
        return run

    # training ---------------------------------------------------------------------------------------
    def _fresh_model(self, plan: Plan, data: DataSplit, seed: int) -> torch.nn.Module:
        ctx = self.context(derive_seed(seed, "init"), plan, data, seed)
        with isolated_rng(ctx.seed):
            model = plan.model.build(data, ctx)
            return plan.defense.prepare(model, ctx)

    def _trained_model(
        self, plan: Plan, data: DataSplit, seed: int, train_key: str, train_spec: dict
    ) -> tuple[torch.nn.Module, TrainingRecord]:
        model = self._fresh_model(plan, data, seed)
        record = self.store.get_training(train_key)
        if record is not None:
            load_model(model, str(self.store.artifacts / record.weights))
            model.eval()
            return model, record
        ctx = self.context(derive_seed(seed, "fit"), plan, data, seed)
        start = time.perf_counter()
        try:
            with isolated_rng(ctx.seed):
                model = plan.defense.fit(model, data, plan.schedule, ctx)
        except QBenchError:
            raise
        except Exception as exc:
            raise QBenchError(
                f"defense {plan.defense.name!r} failed while training {plan.model.name} on "
                f"{plan.dataset.name} (seed {seed}): {type(exc).__name__}: {exc}"
            ) from exc
        seconds = time.perf_counter() - start
        model.eval()
        self.store.artifacts.mkdir(parents=True, exist_ok=True)
        weights = f"{train_key}.safetensors"
        tmp = self.store.artifacts / f".{weights}.tmp"
        save_model(model, str(tmp))
        tmp.replace(self.store.artifacts / weights)
        info = {"data_notes": data.notes, "data_files": data.files}
        record = TrainingRecord(train_key, train_spec, seed, weights, seconds, info, qbench.__version__)
        self.store.put_training(record)
        return model, record

    # evaluation -------------------------------------------------------------------------------------
    def _predict_correct(
        self, plan: Plan, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: Context
    ) -> tuple[np.ndarray, float]:
        """Per-example "correct in every repetition" and the mean accuracy over repetitions."""
        repeats = plan.n_repeat if is_stochastic(model) else 1
        all_correct = np.ones(len(y), dtype=bool)
        total = 0.0
        for _ in range(repeats):
            preds = torch.cat(
                [
                    plan.defense.predict(model, x[i : i + plan.eval_batch_size], ctx)
                    for i in range(0, len(x), plan.eval_batch_size)
                ]
            )
            correct = (preds == y).numpy()
            all_correct &= correct
            total += float(correct.mean()) if len(correct) else 0.0
        return all_correct, total / repeats

    def _evaluate_cell(
        self,
        plan: Plan,
        data: DataSplit,
        seed: int,
        train_key: str,
        key: str,
        spec: dict,
        attack: Attack | None,
        epsilon: float | None,
        model: torch.nn.Module,
    ) -> CellRecord:
        ctx = self.context(derive_seed(seed, key), plan, data, seed)
        x, y = data.x_test, data.y_test
        base = dict(
            key=key, train_key=train_key, spec=spec, kind=spec["kind"], attack=attack_label(attack) if attack else None,
            epsilon=epsilon, seed=seed, n=len(y), qbench_version=qbench.__version__,
        )
        start = time.perf_counter()
        with isolated_rng(ctx.seed):
            if attack is None:
                correct, mean_acc = self._predict_correct(plan, model, x, y, ctx)
                info = {
                    "stochastic": is_stochastic(model),
                    "accuracy_all_repeats": float(correct.mean()) if len(correct) else 0.0,
                    "defense": _jsonable(plan.defense.describe(model)),
                    "gradient_check": gradient_check(model, x[: plan.gradient_check_examples], y[: plan.gradient_check_examples], ctx),
                }
                return CellRecord(
                    **base, status="ok", n_correct=int(correct.sum()), accuracy=mean_acc, correct=correct,
                    info=info, seconds=time.perf_counter() - start,
                )
            try:
                x_adv = self._generate(plan, attack, model, x, y, float(epsilon), data, ctx)
            except AttackSkipped as exc:
                return CellRecord(
                    **base, status="skipped", n_correct=0, accuracy=None, correct=None, info={},
                    seconds=time.perf_counter() - start, error=str(exc),
                )
            except Exception as exc:
                return CellRecord(
                    **base, status="failed", n_correct=0, accuracy=None, correct=None,
                    info={"traceback": traceback.format_exc(limit=8)}, seconds=time.perf_counter() - start,
                    error=f"attack {attack.name!r}: {type(exc).__name__}: {exc}",
                )
            correct, mean_acc = self._predict_correct(plan, model, x_adv, y, ctx)
            # The robust prediction counts only if it is also correct on every repetition: robust accuracy
            # is the fraction robust in all repetitions (a sceptical reading of a stochastic defense).
            robust = float(correct.mean())
            info = {
                "stochastic": is_stochastic(model),
                "accuracy_mean_over_repeats": mean_acc,
                "max_perturbation": float((x_adv - x).abs().max()) if len(x) else 0.0,
                "threat": attack.threat,
            }
            return CellRecord(
                **base, status="ok", n_correct=int(correct.sum()), accuracy=robust, correct=correct, info=info,
                seconds=time.perf_counter() - start,
            )

    def _generate(
        self,
        plan: Plan,
        attack: Attack,
        model: torch.nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        epsilon: float,
        data: DataSplit,
        ctx: Context,
    ) -> torch.Tensor:
        parts = []
        with self.reporter.task(f"{attack.name} eps={epsilon:g}", total=len(x)) as bar:
            for i in range(0, len(x), plan.eval_batch_size):
                xb, yb = x[i : i + plan.eval_batch_size], y[i : i + plan.eval_batch_size]
                adv = attack.generate(model, xb.clone(), yb.clone(), epsilon, ctx)
                adv = torch.as_tensor(adv, dtype=xb.dtype).reshape(xb.shape).detach()
                _check_adversarial(attack.name, xb, adv, epsilon, data)
                parts.append(adv)
                bar.advance(len(xb))
        return torch.cat(parts) if parts else x.clone()


def _check_adversarial(name: str, x: torch.Tensor, adv: torch.Tensor, epsilon: float, data: DataSplit) -> None:
    if not torch.isfinite(adv).all():
        raise ValueError(f"attack {name!r} returned NaN or infinite inputs")
    if not data.domain.contains(adv, atol=1e-5):
        raise ValueError(f"attack {name!r} returned inputs outside the {data.domain.kind} domain")
    # A projection onto the unit sphere may move a point slightly beyond the box around x; the ball is
    # checked exactly only for box and unbounded domains.
    if data.domain.kind != "sphere" and float((adv - x).abs().max()) > epsilon + BALL_TOLERANCE:
        raise ValueError(f"attack {name!r} left the epsilon ball ({float((adv - x).abs().max()):.6g} > {epsilon:g})")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().tolist()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value
