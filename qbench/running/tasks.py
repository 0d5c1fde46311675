"""The units of work an executor runs: train one seed of a plan, evaluate one cell against a trained model.

A task is a picklable callable. It never touches the SQLite store: a training writes its weights into the
store's artifact folder (temporary name, then rename) and returns the :class:`~qbench.running.store.TrainingRecord`
for the coordinator to insert; a cell loads those weights and returns its
:class:`~qbench.running.store.CellRecord`. Everything a task computes is seeded from the run's seed and the cell's
key alone (:mod:`qbench.contract.rng`), so a cell's numbers do not depend on which process ran it, or when.

A plugin that raises, or returns something that breaks the contract (NaN or out-of-domain inputs, labels
out of range, non-finite weights), fails only the task it ran in: the task returns a failed record (or a
:class:`Failure`) whose reason names the plugin and the hook.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import dataclasses
import os
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from safetensors.torch import load_model, save_model

import qbench
from qbench.contract.art_bridge import gradient_check
from qbench.contract.attack import Attack, AttackSkipped, attack_label
from qbench.contract.checkpoint import Checkpoint, checkpoint_interval
from qbench.contract.circuit_model import reusing_unitaries
from qbench.contract.context import Context
from qbench.contract.dataset import DataSplit
from qbench.contract.defense import Defense
from qbench.errors import QBenchError
from qbench.hashing import config_hash
from qbench.contract.model import is_stochastic, noiseless_source
from qbench.running.cell_checkpoint import CellProgress
from qbench.running.plan import Plan
from qbench.contract.progress import Reporter
from qbench.contract.readout import has_quantum_readout
from qbench.contract.rng import derive_seed, isolated_rng
from qbench.running.scoring import Survivors
from qbench.running.store import CellRecord, TrainingRecord, checkpoint_path
from qbench.running.torch_device import computing_on


#: tolerance for the epsilon-ball and domain checks on an attack's output
BALL_TOLERANCE = 1e-5
#: datasets and deployed models a worker process keeps between tasks
CACHE_SIZE = 2


class PluginFault(QBenchError):
    """A plugin raised, or returned something that breaks the contract; the message names it and the hook."""


@dataclass(frozen=True)
class Failure:
    """A training that produced no weights, and why."""

    reason: str
    traceback: str = ""


@dataclass(frozen=True)
class Workspace:
    """Where tasks read and write: the store's artifact folder (trained weights), the data and cache folders."""

    artifacts: Path
    data_dir: Path | None = None
    cache_dir: Path | None = None


@contextlib.contextmanager
def blame(kind: str, name: str, hook: str) -> Iterator[None]:
    """Turn an exception raised by plugin code into a :class:`PluginFault` naming the plugin and the hook."""
    try:
        yield
    except (AttackSkipped, PluginFault):
        raise
    except QBenchError as exc:  # e.g. a DataError: already one clear line
        raise PluginFault(str(exc)) from exc
    except Exception as exc:
        raise PluginFault(f"{kind} {name!r} raised in {hook}: {type(exc).__name__}: {exc}") from exc


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads (None: leave the setting alone)."""
    previous = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n:
            torch.set_num_threads(previous)


class _Cache(collections.OrderedDict):
    """A small least-recently-used map (one per worker process)."""

    def get_or(self, key: str, make):
        if key in self:
            self.move_to_end(key)
            return self[key]
        value = make()
        self[key] = value
        while len(self) > CACHE_SIZE:
            self.popitem(last=False)
        return value


_DATA = _Cache()
_DEPLOYED = _Cache()
_TWINS = _Cache()


class Undefended(Defense):
    """The ``none`` defense as the core knows it: standard training, no change (the undefended twin)."""

    name = "none"
    description = "no defense (the undefended twin of transfer attacks)"
    tracks = ("qnn", "mapped-dnn")
    standard_training = True


def load_split(plan: "Plan", workspace: Workspace, reporter: Reporter | None = None) -> DataSplit:
    """The plan's dataset as every task sees it (the test split cut to ``n_test``), cached per process."""
    key = config_hash({"dataset": plan.dataset.config_dict(), "name": plan.dataset.name,
                       "version": plan.dataset.version, "data_dir": str(workspace.data_dir), "n_test": plan.n_test,
                       "test_selection": plan.test_selection})

    def load() -> DataSplit:
        ctx = Context(seed=0, data_dir=workspace.data_dir, cache_dir=workspace.cache_dir, progress=reporter or Reporter())
        with blame("dataset", plan.dataset.name, "load"):
            return evaluation_split(plan.dataset.load(ctx), plan.n_test, plan.test_selection)

    return _DATA.get_or(key, load)


#: the ways of choosing ``n_test`` test examples (:attr:`qbench.running.plan.Plan.test_selection`)
TEST_SELECTIONS = ("first", "class-interleaved")


def class_interleaved(labels: torch.Tensor) -> torch.Tensor:
    """Indices of ``labels`` round-robin over the classes: every class's first example (classes in
    ascending order), then every class's second, ...; each class keeps the split's order, and a class that
    runs out drops out of the rotation. Any prefix is then as even across the classes as the split allows."""
    classes, codes = torch.unique(labels.reshape(-1).cpu(), return_inverse=True)  # codes 0..K-1, any labels
    order = torch.argsort(codes, stable=True)
    sorted_codes = codes[order]
    starts = torch.searchsorted(sorted_codes, sorted_codes, right=False)
    rank = torch.arange(codes.numel()) - starts  # each example's position within its class
    # sort by (rank within class, class); the product is exact in int64 for any realistic split
    return order[torch.argsort(rank * classes.numel() + sorted_codes, stable=True)]


def evaluation_split(data: DataSplit, n_test: int | None, selection: str = "first") -> DataSplit:
    """``data`` with its test split cut to ``n_test`` examples (all of it for None) chosen by ``selection``
    (:data:`TEST_SELECTIONS`)."""
    if selection not in TEST_SELECTIONS:
        raise ValueError(f"test selection must be one of {', '.join(TEST_SELECTIONS)}, not {selection!r}")
    if n_test is None:
        return data
    if selection == "first":
        return dataclasses.replace(data, x_test=data.x_test[:n_test], y_test=data.y_test[:n_test])
    index = class_interleaved(torch.as_tensor(data.y_test))[:n_test]
    return dataclasses.replace(data, x_test=data.x_test[index.to(data.x_test.device)],
                               y_test=data.y_test[index.to(data.y_test.device)])


@dataclass
class _Task:
    plan: "Plan"
    seed: int
    workspace: Workspace
    #: torch intra-op threads while the task runs (None: the process's setting)
    threads: int | None = None
    #: the evaluation split, handed over by an in-process executor (workers load it themselves)
    data: DataSplit | None = None
    #: progress bars, for an in-process executor (workers report nothing but their result)
    reporter: Reporter | None = None

    def split(self) -> DataSplit:
        """The evaluation split, on the plan's torch device."""
        data = self.data if self.data is not None else load_split(self.plan, self.workspace, self.reporter)
        return data.to(self.plan.torch_device)

    def context(self, seed: int, data: DataSplit) -> Context:
        plan = self.plan
        return Context(
            seed=seed, run_seed=self.seed, data_dir=self.workspace.data_dir, cache_dir=self.workspace.cache_dir,
            progress=self.reporter or Reporter(), data=data, n_eot=plan.n_eot, n_repeat=plan.n_repeat,
            quantum_device=plan.quantum_device, shots=plan.shots, device=torch.device(plan.torch_device),
            undefended_twin=lambda: self.undefended_twin(data),
        )

    def undefended_twin(self, data: DataSplit) -> torch.nn.Module:
        """The board's undefended model for this seed: same data, architecture, seed and standard training.

        It is the ``none`` defense's own training (same key, same seed streams, so the same weights bit for
        bit): loaded from the artifact folder when that training is stored, otherwise trained here and saved
        under its key, so whichever cell or training gets there first, there is one twin.
        """
        twin_plan = dataclasses.replace(self.plan, defense=Undefended())
        key = config_hash(twin_plan.training_spec(self.seed))
        path = self.workspace.artifacts / f"{key}.safetensors"

        def build() -> torch.nn.Module:
            twin = TrainTask(twin_plan, self.seed, self.workspace, self.threads, data, self.reporter, key=key)
            if not path.exists():
                model = twin.fresh_model(data)
                ctx = twin.context(derive_seed(self.seed, "fit"), data)
                with isolated_rng(ctx.seed):
                    model = Undefended().fit(model, data, twin_plan.schedule, ctx)
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
                save_model(model, str(tmp))
                tmp.replace(path)
            # always a freshly built module with the saved weights, exactly as a stored training is loaded
            model = twin.fresh_model(data)
            load_model(model, str(path))
            return model.eval()

        return copy.deepcopy(_TWINS.get_or(key, build))

    def fresh_model(self, data: DataSplit) -> torch.nn.Module:
        """The model as built and prepared for this seed, before training."""
        plan = self.plan
        ctx = self.context(derive_seed(self.seed, "init"), data)
        with isolated_rng(ctx.seed):
            with blame("model", plan.model.name, "build"):
                model = plan.model.build(data, ctx)
            with blame("defense", plan.defense.name, "prepare"):
                model = plan.defense.prepare(model, ctx)
        _check_module(model, f"defense {plan.defense.name!r} prepare")
        # tensors built under the device context are there already; this moves what a plugin made from numpy
        return model.to(plan.torch_device)


@dataclass
class TrainTask(_Task):
    """Train one seed of a plan and save the weights in the artifact folder; returns the training record."""

    key: str = ""
    spec: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __call__(self) -> TrainingRecord | Failure:
        plan = self.plan
        with torch_threads(self.threads), computing_on(plan.torch_device):
            try:
                data = self.split()
                model = self.fresh_model(data)
                ctx = self.context(derive_seed(self.seed, "fit"), data)
                ctx.checkpoint = checkpoint = Checkpoint(
                    checkpoint_path(self.workspace.artifacts, self.key), self.key, checkpoint_interval(),
                    meta={"spec": self.spec, "seed": self.seed, "platform": platform_id()}, context=ctx,
                )
                with isolated_rng(ctx.seed), blame("defense", plan.defense.name, "fit"):
                    model = plan.defense.fit(model, data, plan.schedule, ctx)
                seconds = checkpoint.seconds()
                _check_module(model, f"defense {plan.defense.name!r} fit")
                if not all(torch.isfinite(p).all() for p in model.state_dict().values() if p.is_floating_point()):
                    raise PluginFault(f"defense {plan.defense.name!r} fit produced non-finite weights")
            except PluginFault as exc:
                return Failure(
                    f"training {plan.model.name} on {plan.dataset.name} failed: {exc}",
                    traceback.format_exc(limit=8),
                )
            model.eval()
            artifacts = self.workspace.artifacts
            artifacts.mkdir(parents=True, exist_ok=True)
            weights = f"{self.key}.safetensors"
            tmp = artifacts / f".{weights}.{os.getpid()}.tmp"
            save_model(model, str(tmp))
            tmp.replace(artifacts / weights)
            # the checkpoint is removed by the coordinator once this record is stored (a kill in between
            # must not cost the training)
            info = {"data_notes": data.notes, "data_files": data.files}
            if checkpoint.loaded_at is not None:
                # a different platform there means the weights splice two platforms' floating point
                info["resumed"] = {"loop": checkpoint.loaded_at[0], "epoch": checkpoint.loaded_at[1],
                                   "seconds_before": round(checkpoint.resumed_seconds, 3),
                                   "platform_before": checkpoint.saved_meta.get("platform"), "platform": platform_id()}
            if checkpoint.problems:
                info["checkpoint_problems"] = checkpoint.problems
            return TrainingRecord(self.key, self.spec, self.seed, weights, seconds, info, qbench.__version__)


@dataclass
class CellTask(_Task):
    """Evaluate one cell (clean, attack at an epsilon, or the probe) against the trained weights."""

    train_key: str = ""
    weights: str = ""
    key: str = ""
    spec: dict[str, Any] = dataclasses.field(default_factory=dict)
    attack: Attack | None = None
    epsilon: float | None = None
    #: a cascaded cell's gate cell keys (see ``Plan.cascade_gates``), and, set by the runner once they are
    #: all stored, the examples to attack (or why the cell cannot run)
    gates: list[str] = dataclasses.field(default_factory=list)
    survivors: Survivors | str | None = None
    #: the attack's batches saved and resumed (set when the attack starts; None for a clean cell)
    progress: CellProgress | None = None

    def failed(self, reason: str, n: int, seconds: float = 0.0, trace: str = "") -> CellRecord:
        """This cell as a failed record with ``reason``."""
        return CellRecord(
            **self._base(n), status="failed", n_correct=0, accuracy=None, correct=None,
            info={"traceback": trace} if trace else {}, seconds=seconds, error=reason,
        )

    def _base(self, n: int) -> dict[str, Any]:
        return dict(
            key=self.key, train_key=self.train_key, spec=self.spec, kind=self.spec["kind"],
            attack=attack_label(self.attack) if self.attack else None, epsilon=self.epsilon, seed=self.seed, n=n,
            qbench_version=qbench.__version__,
        )

    def __call__(self) -> CellRecord:
        start = time.perf_counter()
        n = len(self.data.y_test) if self.data is not None else 0
        if isinstance(self.survivors, str):
            return self.failed(self.survivors, n)
        with torch_threads(self.threads), computing_on(self.plan.torch_device):
            try:
                data = self.split()
                n = len(data.y_test)
                model = self.deployed_model(data)
                return self.evaluate(model, data, start)
            except PluginFault as exc:
                return self.failed(str(exc), n, time.perf_counter() - start, traceback.format_exc(limit=8))
            except Exception as exc:  # noqa: BLE001 - e.g. the gradient check on a broken model: this cell only
                reason = f"{type(exc).__name__}: {exc}"
                return self.failed(reason, n, time.perf_counter() - start, traceback.format_exc(limit=8))

    def deployed_model(self, data: DataSplit) -> torch.nn.Module:
        """The trained model after the defense's ``deploy``: a private copy of this process's cached one."""
        _, model = _DEPLOYED.get_or(self.deployment_key(data), lambda: (data, self._deploy(data)))
        try:
            return copy.deepcopy(model)
        except Exception:  # noqa: BLE001 - a module that cannot be copied is deployed afresh instead
            return self._deploy(data)

    def deployment_key(self, data: DataSplit) -> str:
        """What a deployment depends on: the cache key under which this process keeps a deployed model."""
        plan = self.plan
        return config_hash({
            "training": self.train_key, "defense": [plan.defense.name, plan.defense.version, plan.defense.config_dict()],
            "data": id(data), "n_eot": plan.n_eot, "n_repeat": plan.n_repeat, "device": plan.quantum_device,
            "torch_device": plan.torch_device,
            # a defense's deploy may read ctx.shots (depolarizing: exact density matrix or sampled trajectories)
            "shots": plan.shots,
        })

    def _deploy(self, data: DataSplit) -> torch.nn.Module:
        plan = self.plan
        model = self.fresh_model(data)
        path = self.workspace.artifacts / self.weights
        try:
            load_model(model, str(path))
        except Exception as exc:  # noqa: BLE001 - a missing or damaged weights file fails the cell, not the run
            raise PluginFault(f"cannot load the trained weights {path}: {type(exc).__name__}: {exc}") from exc
        model.eval()
        ctx = self.context(derive_seed(self.seed, "deploy"), data)
        with isolated_rng(ctx.seed), blame("defense", plan.defense.name, "deploy"):
            model = plan.defense.deploy(model, data, ctx)
        _check_module(model, f"defense {plan.defense.name!r} deploy")
        model.eval()
        return model.to(plan.torch_device)

    def evaluate(self, model: torch.nn.Module, data: DataSplit, start: float) -> CellRecord:
        """The cell's numbers (the clean evaluation, or the attack's point per example) as a record.

        Whatever the cell, its final points are predicted on the evaluation draws of scoring v2
        (:meth:`_draws`) and the per-example, per-draw correctness of both sets is stored.
        """
        plan, attack = self.plan, self.attack
        ctx = self.context(derive_seed(self.seed, self.key), data)
        x, y = data.x_test, data.y_test
        base = self._base(len(y))
        with isolated_rng(ctx.seed):
            if attack is None:
                info = {
                    "gradient_check": gradient_check(
                        model, x[: plan.gradient_check_examples], y[: plan.gradient_check_examples], ctx
                    ),
                }
                with blame("defense", plan.defense.name, "describe"):
                    info["defense"] = _jsonable(plan.defense.describe(model))
                points = x
            else:
                # attacks need input gradients only: weight gradients would be computed and thrown away
                # (the noiseless network a mapping was made from, which some attacks craft on, too)
                for parameter in (*model.parameters(), *noiseless_source(model).parameters()):
                    parameter.requires_grad_(False)
                attacked = self.survivors.mask if isinstance(self.survivors, Survivors) else np.ones(len(y), bool)
                try:
                    points = x.clone()
                    if attacked.all():
                        points = self._generate(attack, model, x, y, float(self.epsilon), data, ctx)
                    elif attacked.any():
                        index = torch.as_tensor(np.flatnonzero(attacked), device=x.device)
                        points[index] = self._generate(attack, model, x[index], y[index], float(self.epsilon), data, ctx)
                except AttackSkipped as exc:
                    return CellRecord(
                        **base, status="skipped", n_correct=0, accuracy=None, correct=None, info={},
                        seconds=time.perf_counter() - start, error=str(exc),
                    )
                info = {
                    "max_perturbation": float((points - x).abs().max()) if len(x) else 0.0,
                    "threat": attack.threat,
                }
                if isinstance(self.survivors, Survivors):
                    info["cascade"] = {"gates": len(self.gates), "attacked": int(attacked.sum())}
        # every example is predicted, attacked or not, so that the evaluation batches (and with them the
        # common random numbers) are those of every other cell
        bits = self._draws(model, points, y, data)
        if attack is not None and isinstance(self.survivors, Survivors):
            bits[~self.survivors.mask] = self.survivors.inherited[~self.survivors.mask]
        draws = bits.shape[1] // 2
        progress = self.progress
        resumed = progress.info() if progress is not None else None
        if resumed:
            info["resumed"] = resumed
        info.update({
            "stochastic": is_stochastic(model),
            "draws_per_set": draws,
            "shots": plan.shots if has_quantum_readout(model) else None,
            # what must match for a re-run to reproduce these bits exactly (qbench verify)
            "platform": platform_id(),
        })
        return CellRecord(
            **base, status="ok",
            # examples right in every draw of set B (the strict number), and the mean over all draws
            n_correct=int(bits[:, draws:].all(axis=1).sum()), accuracy=float(bits.mean()) if len(y) else 0.0,
            correct=bits, info=info, seconds=time.perf_counter() - start + (progress.resumed_seconds if progress else 0.0),
        )

    def evaluation_stochastic(self, model: torch.nn.Module) -> bool:
        """Whether the deployed prediction is random: a stochastic forward, or a shot readout."""
        return is_stochastic(model) or (self.plan.shots is not None and has_quantum_readout(model))

    def _draws(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, data: DataSplit) -> np.ndarray:
        """Per-example, per-draw correctness ``(n, 2 R)`` of the deployed prediction on ``x``
        (:func:`evaluation_bits`)."""
        plan = self.plan
        repeats = plan.n_repeat if self.evaluation_stochastic(model) else 1
        return evaluation_bits(
            plan.defense, model, x, y, data.n_classes, self.seed, self.train_key, repeats, plan.eval_batch_size,
            lambda seed: self.context(seed, data),
        )

    def _generate(
        self, attack: Attack, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float,
        data: DataSplit, ctx: Context,
    ) -> torch.Tensor:
        plan = self.plan
        batch = plan.eval_batch_size
        # a cell longer than a session resumes after its last saved batch (qbench.running.cell_checkpoint)
        self.progress = progress = CellProgress(
            checkpoint_path(self.workspace.artifacts, self.key), self.key, len(x), batch,
            meta={"spec": self.plan.training_spec(self.seed), "seed": self.seed, "platform": platform_id()},
        )
        parts = [p.to(device=x.device, dtype=x.dtype) for p in progress.resume(ctx)]
        with ctx.progress.task(f"{attack.name} eps={epsilon:g}", total=len(x)) as bar:
            bar.advance(sum(len(p) for p in parts))
            for i in range(len(parts) * batch, len(x), batch):
                xb, yb = x[i : i + batch], y[i : i + batch]
                # the parameters are frozen here: a circuit's layers can be one cached unitary (exact)
                with blame("attack", attack.name, "generate"), reusing_unitaries(model):
                    adv = attack.generate(model, xb.clone(), yb.clone(), epsilon, ctx)
                    adv = torch.as_tensor(adv, dtype=xb.dtype, device=xb.device).detach()
                parts.append(check_adversarial(attack.name, xb, adv, epsilon, data))
                bar.advance(len(xb))
                progress.save(parts, ctx)
        return torch.cat(parts) if parts else x.clone()


def evaluation_bits(
    defense: Defense, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, n_classes: int, run_seed: int,
    train_key: str, repeats: int, batch_size: int, make_context: Callable[[int], Context],
) -> np.ndarray:
    """Per-example, per-draw correctness ``(n, 2 repeats)`` of ``defense.predict`` on the deployed ``model``.

    Scoring v2 (DESIGN section 4): ``repeats`` draws in each of two sets, A (columns ``[:repeats]``, used to
    select each example's worst attack point) and B (``[repeats:]``, used to report). Common random
    numbers: draw r of set S for the batch starting at example i is seeded by (run seed, training key, S,
    r, i) only, so an input gives the same r-th prediction in every cell of the training: at epsilon 0 every
    attack's point is the clean input and scores exactly like it. The batches are fixed (``batch_size``).
    """
    bits = np.zeros((len(y), 2 * repeats), dtype=bool)
    for column, (label, r) in enumerate([(s, r) for s in ("A", "B") for r in range(repeats)]):
        for i in range(0, len(x), batch_size):
            xb = x[i : i + batch_size]
            seed = derive_seed(run_seed, "evaluation-draw", train_key, label, str(r), str(i))
            with isolated_rng(seed), blame("defense", defense.name, "predict"):
                labels = defense.predict(model, xb, make_context(seed))
            labels = _check_labels(defense.name, labels, len(xb), n_classes)
            bits[i : i + len(xb), column] = (labels.to(y.device) == y[i : i + len(xb)]).cpu().numpy()
    return bits


def platform_id() -> str:
    """Machine architecture, OS, torch version and intra-op threads: a re-run on the same is bit-identical."""
    import platform
    import sys

    return f"{platform.machine()}-{sys.platform}-torch{torch.__version__}-threads{torch.get_num_threads()}"


def check_adversarial(name: str, x: torch.Tensor, adv: torch.Tensor, epsilon: float, data: DataSplit) -> torch.Tensor:
    """``adv`` shaped like ``x``, or a :class:`PluginFault` when the attack broke the contract."""
    if adv.numel() != x.numel():
        raise PluginFault(f"attack {name!r} returned {adv.numel()} values for {x.numel()} inputs")
    adv = adv.reshape(x.shape)
    if not torch.isfinite(adv).all():
        raise PluginFault(f"attack {name!r} returned NaN or infinite inputs")
    if not data.domain.contains(adv, atol=BALL_TOLERANCE):
        raise PluginFault(f"attack {name!r} returned inputs outside the {data.domain.kind} domain")
    # on the sphere the threat set is the renormalised ball (Domain.within_ball), whose points may lie a
    # few epsilon from x in L-inf
    if not data.domain.within_ball(adv, x, epsilon, atol=BALL_TOLERANCE):
        distance = float((adv - x).abs().max()) if len(x) else 0.0
        where = "the renormalised epsilon ball" if data.domain.kind == "sphere" else "the epsilon ball"
        raise PluginFault(f"attack {name!r} left {where} ({distance:.6g} from x, epsilon {epsilon:g})")
    return adv


def _check_labels(defense: str, labels: Any, n: int, n_classes: int) -> torch.Tensor:
    labels = torch.as_tensor(labels)
    if labels.shape != (n,):
        raise PluginFault(f"defense {defense!r} predict returned shape {tuple(labels.shape)} for {n} inputs")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise PluginFault(f"defense {defense!r} predict returned {labels.dtype} values, not integer labels")
    if n and (int(labels.min()) < 0 or int(labels.max()) >= n_classes):
        raise PluginFault(f"defense {defense!r} predict returned labels outside 0..{n_classes - 1}")
    return labels.to(torch.int64)


def _check_module(model: Any, what: str) -> None:
    if not isinstance(model, torch.nn.Module):
        raise PluginFault(f"{what} returned {type(model).__name__}, not a torch.nn.Module")


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
