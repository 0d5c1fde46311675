"""The protocol runner: train each (track, dataset, model, defense, seed) once, then evaluate every cell.

A *cell* is one (trained model, attack + config, epsilon) or the clean evaluation of a trained model. The
runner is the coordinator: it decides what is missing from the store, hands trainings and cells to an
executor (:mod:`qbench.running.executor`: in this process, a local process pool, or Dask) as tasks
(:mod:`qbench.running.tasks`), and alone writes what comes back to the store, each cell at once, with per-example
correctness, so the worst case over the attack suite can be computed later and a killed run resumes where
it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

import qbench
from qbench.contract.component import Component
from qbench.contract.context import Context
from qbench.contract.dataset import DataSplit, Dataset
from qbench.errors import PluginError, QBenchError
from qbench.running.executor import Executor, InProcessExecutor, Outcome
from qbench.contract.progress import Reporter
from qbench.running.chance import chance_verdict
from qbench.running.scoring import CASCADE_RULE, Survivors, survivors
from qbench.running.store import CellRecord, Store, TrainingRecord, checkpoint_path
from qbench.running.provenance import git_commit
from qbench.running.plan import Plan, PlannedCell, SeedPlan, component_ref, seed_cells  # noqa: F401 - Plan, component_ref, seed_cells re-exported
from qbench.running.tasks import CellTask, Failure, TrainTask, Workspace, evaluation_split
from qbench.contract.tracks import QNN


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
    #: why the attack suite was not run (the clean accuracy is at chance; ``Plan.attack_only_above_chance``):
    #: then every seed holds its clean cell only. None: the suite ran.
    unmeasured: str | None = None


class MissingCells(QBenchError):
    """A read-only run found cells that are not in the store yet (or whose clean evaluation failed)."""


class PlanFailed(QBenchError):
    """A plan's training or clean evaluation failed, so it has no numbers; the failed cells are stored."""


@dataclass
class _Job:
    plan: Plan
    data: DataSplit
    seeds: list[SeedPlan]
    computed: int = 0
    #: attack tasks held back by the chance rule (``Plan.attack_only_above_chance``), by their seed's clean key
    held: dict[str, list[CellTask]] = field(default_factory=dict)
    #: whether the chance rule has been applied (always True for plans without it)
    decided: bool = False
    unmeasured: str | None = None

    @property
    def clean_keys(self) -> list[str]:
        return [s.cells[0].key for s in self.seeds]


class Runner:
    """Runs plans against a store; ``data_dir`` and ``reporter`` are handed to plugins through the context.

    Trainings and cells run on ``executor`` (default: in this process, one at a time); whatever runs them,
    only this object writes the store. With ``compute=False`` the runner only reads the store and raises
    :class:`MissingCells` for a plan with cells not computed yet (``qbench leaderboard build``).
    """

    def __init__(
        self,
        store: Store,
        data_dir=None,
        reporter: Reporter | None = None,
        cache_dir=None,
        compute: bool = True,
        executor: Executor | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.compute = compute
        self.data_dir = data_dir
        self.reporter = reporter or Reporter()
        self.cache_dir = cache_dir or (store.artifacts / "cache")
        self.executor = executor or InProcessExecutor()
        self.log = log or (lambda message: None)
        self._commit: str | None | bool = False

    @property
    def source_commit(self) -> str | None:
        """The commit of the qbench checkout computing cells (``+dirty`` with changes), stored with each."""
        if self._commit is False:
            self._commit = git_commit()
        return self._commit  # type: ignore[return-value]

    def context(self, seed: int, plan: Plan | None = None, data: DataSplit | None = None, run_seed: int = 0) -> Context:
        """A context for ``seed`` with this runner's directories and the plan's evaluation settings."""
        kwargs: dict[str, Any] = {"run_seed": run_seed}
        if plan is not None:
            kwargs.update(n_eot=plan.n_eot, n_repeat=plan.n_repeat, quantum_device=plan.quantum_device, shots=plan.shots,
                          device=torch.device(plan.torch_device))
        return Context(
            seed=seed, data_dir=self.data_dir, cache_dir=self.cache_dir, progress=self.reporter, data=data, **kwargs
        )

    def load_data(self, dataset: Dataset) -> DataSplit:
        """Load a dataset's split (deterministic by its config; the cell seed plays no part)."""
        try:
            return dataset.load(self.context(0))
        except QBenchError:
            raise
        except Exception as exc:
            raise PluginError(f"dataset {dataset.name!r} raised in load: {type(exc).__name__}: {exc}") from exc

    @property
    def workspace(self) -> Workspace:
        """Where tasks find the trained weights, the data and the plugin caches (absolute paths)."""
        data_dir = Path(self.data_dir).resolve() if self.data_dir is not None else None
        return Workspace(self.store.artifacts.resolve(), data_dir, Path(self.cache_dir).resolve())

    def run(self, plan: Plan, data: DataSplit | None = None) -> RunResult:
        """Run every missing cell of ``plan``; cells already in the store are read back, not recomputed.

        Raises :class:`PlanFailed` when a training or a clean evaluation failed (the failed cells are
        stored, and retried by the next run); a failed attack cell is part of the result.
        """
        outcome = self.run_all([(plan, data)])[0]
        if isinstance(outcome, QBenchError):
            raise outcome
        return outcome

    def run_all(self, jobs: list[tuple[Plan, DataSplit | None]]) -> list[RunResult | QBenchError]:
        """Run several plans at once (a grid): trainings and cells of all of them share the executor.

        Returns, per plan, its result or the error that left it without numbers (:class:`PlanFailed`,
        or :class:`MissingCells` when not computing).
        """
        prepared = []
        for plan, data in jobs:
            data = evaluation_split(data if data is not None else self.load_data(plan.dataset), plan.n_test,
                                    plan.test_selection)
            prepared.append(_Job(plan, data, [self._seed(plan, seed) for seed in plan.seeds]))
        if not self.compute:
            return [self._read_only(job) for job in prepared]
        records = self._compute(prepared)
        return [self._result(job, records) for job in prepared]

    def _seed(self, plan: Plan, seed: int) -> SeedPlan:
        return seed_cells(plan, seed)

    def _read_only(self, job: _Job) -> RunResult | QBenchError:
        reason = chance_verdict(job.plan, job.data.n_classes, [self.store.get_cell(k) for k in job.clean_keys])
        if reason is not None:
            runs = [SeedRun(s.seed, self.store.get_training(s.train_key), [self.store.get_cell(s.cells[0].key)])  # type: ignore[list-item]
                    for s in job.seeds]
            return RunResult(job.plan, job.data, runs, unmeasured=reason)
        runs = []
        for s in job.seeds:
            stored = [self.store.get_cell(c.key) for c in s.cells]
            absent = sum(c is None for c in stored)
            name = f"{job.plan.defense.name} seed {s.seed}"
            if absent:
                return MissingCells(f"{absent} of {len(stored)} cells of {name} are not in the store")
            if stored[0].status == "failed":  # failed attack cells are results; a failed clean cell is not
                return MissingCells(f"the clean evaluation of {name} failed: {stored[0].error}")
            runs.append(SeedRun(s.seed, self.store.get_training(s.train_key), stored))  # type: ignore[arg-type]
        return RunResult(job.plan, job.data, runs)

    def _result(self, job: _Job, records: dict[str, CellRecord]) -> RunResult | QBenchError:
        runs = []
        for s in job.seeds:
            cells = [records[c.key] for c in (s.cells[:1] if job.unmeasured else s.cells)]
            if cells[0].status == "failed":
                return PlanFailed(f"{job.plan.defense.name} seed {s.seed}: {cells[0].error}")
            runs.append(SeedRun(s.seed, self.store.get_training(s.train_key), cells))
        return RunResult(job.plan, job.data, runs, job.computed, unmeasured=job.unmeasured)

    # the coordinator ---------------------------------------------------------------------------------
    def _compute(self, jobs: list[_Job]) -> dict[str, CellRecord]:
        """Every cell of ``jobs``: read from the store, or computed on the executor and stored."""
        executor = self.executor
        records: dict[str, CellRecord] = {}
        owners: dict[str, list[_Job]] = {}  # cell key -> the jobs it is a cell of
        tasks: dict[str, CellTask] = {}  # cell key -> its task
        waiting: dict[str, list[CellTask]] = {}  # train key -> cells waiting for that training
        blocked: list[CellTask] = []  # cascaded cells waiting for their gate cells

        def release(task: CellTask, just_unblocked: bool = False) -> None:
            """Submit ``task``, a cascaded one once every gate cell has a record (its survivors known).

            A cascaded cell unblocked by a gate that just finished goes ahead of the queue: a stopped run
            then leaves whole (defense, seed)s rather than every seed short of its cascade.
            """
            if not task.gates:
                executor.submit(("cell", task.key), task)
            elif all(g in records for g in task.gates):
                task.survivors = gate_survivors([records[g] for g in task.gates], task.plan.cascade_rule)
                (executor.submit_next if just_unblocked else executor.submit)(("cell", task.key), task)
            else:
                blocked.append(task)

        # The chance rule: a seed's attack cells wait for its clean cell, and run at once unless that seed is
        # known to guess on its own; those of a guessing seed wait for every seed's clean cell, and the
        # verdict over all of them drops or releases them. So no worker idles while another seed trains,
        # except behind a seed that guesses.
        held_by: dict[str, tuple[_Job, str]] = {}  # attack cell key -> its job and its seed's clean key
        dropped: list[CellTask] = []  # attack tasks of a job found at chance, not to be computed

        def guessing(job: _Job, clean_key: str) -> bool:
            """Whether the seed of ``clean_key`` has no clean record yet or guesses on its own."""
            record = records.get(clean_key)
            return record is None or chance_verdict(job.plan, job.data.n_classes, [record]) is not None

        def submit(task: CellTask) -> None:
            """``release`` ``task`` unless the chance rule still holds it back."""
            job, clean_key = held_by.get(task.key, (None, ""))
            if job is not None and not job.decided and guessing(job, clean_key):
                job.held.setdefault(clean_key, []).append(task)
            else:
                release(task)

        def decide(job: _Job, key: str) -> None:
            """Release the held tasks of the seed whose clean cell ``key`` just came (unless it guesses); once
            every seed's clean cell has a record, drop or release the rest by the verdict over all seeds."""
            if job.decided:
                return
            if key in job.held and not guessing(job, key):
                for task in job.held.pop(key):
                    release(task)
            if not all(k in records for k in job.clean_keys):
                return
            job.decided = True
            job.unmeasured = chance_verdict(job.plan, job.data.n_classes, [records[k] for k in job.clean_keys])
            held = [t for tasks_of_seed in job.held.values() for t in tasks_of_seed]
            job.held = {}
            if job.unmeasured is None:
                for task in held:
                    release(task)
                return
            left = f" ({len(held)} attack cells not computed)" if held else ""
            self.log(f"qbench: {job.plan.defense.name} on {job.plan.dataset.name}/{job.plan.model.name}: "
                     f"{job.unmeasured}{left}")
            for task in held:
                tasks.pop(task.key, None)
            dropped.extend(held)

        executor.preload(sorted({type(c).__module__ for job in jobs for c in _components(job.plan)}))
        for job in jobs:
            job.decided = not job.plan.attack_only_above_chance
            for s in job.seeds:
                missing = []
                for cell in s.cells:
                    stored = self.store.get_cell(cell.key)
                    if stored is not None and stored.status != "failed":
                        records[cell.key] = stored
                    elif cell.key in owners:
                        owners[cell.key].append(job)
                    else:
                        owners[cell.key] = [job]
                        missing.append(cell)
                if not missing:
                    continue
                training = self.store.get_training(s.train_key)
                cell_tasks = [self._cell_task(job, s, cell, training) for cell in missing]
                tasks.update((t.key, t) for t in cell_tasks)
                if not job.decided:
                    held_by.update((t.key, (job, s.cells[0].key)) for t in cell_tasks if t.key != s.cells[0].key)
                if training is not None:
                    for task in cell_tasks:
                        submit(task)
                    continue
                if s.train_key not in waiting:
                    waiting[s.train_key] = []
                    executor.submit(("train", s.train_key), self._train_task(job, s))
                waiting[s.train_key].extend(cell_tasks)
        for job in jobs:  # a resumed run may find every clean cell stored already
            decide(job, "")
        dropped.clear()  # not yet counted in the progress bar's total
        with self.reporter.task(f"computing {len(tasks)} cells ({executor.kind})", total=len(tasks)) as bar:
            while executor.pending:
                for outcome in executor.wait():
                    kind, key = outcome.token
                    if kind == "train":
                        finished = self._training_done(outcome, waiting.pop(key), submit)
                    else:
                        finished = [self._cell_done(outcome, tasks[key])]
                    for record in finished:
                        record.info["commit"] = self.source_commit
                        if record.status == "failed" and record.n == 0:
                            record.n = len(owners[record.key][0].data.y_test)
                        self.store.put_cell(record)
                        if record.status != "failed":  # a failed cell keeps its batches for the retry
                            checkpoint_path(self.workspace.artifacts, record.key).unlink(missing_ok=True)
                        records[record.key] = record
                        for job in owners[record.key]:
                            job.computed += 1
                            decide(job, record.key)
                        bar.advance()
                    while dropped:
                        dropped.pop()
                        bar.advance()
                    if finished and blocked:
                        ready = [t for t in blocked if all(g in records for g in t.gates)]
                        blocked[:] = [t for t in blocked if t not in ready]
                        for task in ready:
                            release(task, just_unblocked=True)
        return records

    def _train_task(self, job: _Job, s: SeedPlan) -> TrainTask:
        return TrainTask(
            job.plan, s.seed, self.workspace, *self._task_extras(job), key=s.train_key, spec=s.train_spec
        )

    def _cell_task(self, job: _Job, s: SeedPlan, cell: PlannedCell, training: TrainingRecord | None) -> CellTask:
        return CellTask(
            job.plan, s.seed, self.workspace, *self._task_extras(job), train_key=s.train_key,
            weights=training.weights if training else f"{s.train_key}.safetensors", key=cell.key, spec=cell.spec,
            attack=cell.attack, epsilon=cell.epsilon, gates=list(cell.gates),
        )

    def _task_extras(self, job: _Job) -> tuple[int | None, DataSplit | None, Reporter | None]:
        # One intra-op thread per process unless the user asks for more (--threads): circuit simulation is
        # many small kernels (a second thread measured ~40x slower on a loaded 2-core machine), and even the
        # mapped-DNN CNNs ran 2.2-2.8x slower with torch's default 2 threads on these shared 2-core machines.
        threads = 1 if job.plan.track == QNN else (self.executor.threads_per_worker or 1)
        if self.executor.in_process:
            return threads, job.data, self.reporter
        return threads, None, None

    def _training_done(self, outcome: Outcome, waiting: list[CellTask], release: Callable[[CellTask], None]) -> list[CellRecord]:
        """Store the training and ``release`` its cells, or record every cell waiting for it as failed."""
        value = outcome.value
        if isinstance(value, TrainingRecord):
            self.store.put_training(value)
            checkpoint_path(self.workspace.artifacts, value.key).unlink(missing_ok=True)  # stored: no longer needed
            for task in waiting:
                task.weights = value.weights
                release(task)
            return []
        if isinstance(value, Failure):
            reason, trace = value.reason, value.traceback
        elif outcome.lost is not None:
            reason, trace = f"training lost: {outcome.lost}", ""
        else:
            reason, trace = f"training raised {type(outcome.error).__name__}: {outcome.error}", ""
        self.log(f"failed: {reason}")
        return [task.failed(reason, 0, trace=trace) for task in waiting]

    def _cell_done(self, outcome: Outcome, task: CellTask) -> CellRecord:
        if isinstance(outcome.value, CellRecord):
            return outcome.value
        if outcome.lost is not None:
            reason = f"cell lost: {outcome.lost}"
        else:
            reason = f"the cell raised {type(outcome.error).__name__}: {outcome.error}"
        self.log(f"failed: {reason}")
        return task.failed(reason, 0)


def gate_survivors(gates: list[CellRecord], rule: str = CASCADE_RULE) -> Survivors | str:
    """The survivors of a cascaded cell's gate records (clean first), or why there are none.

    A skipped gate (an attack that does not apply to the task) breaks nothing; a failed gate makes the
    cascaded cell fail too, so that both are retried together and the cell's examples are never chosen
    from a partial set of gates.
    """
    failed = [g for g in gates if g.status == "failed"]
    if failed:
        label = failed[0].attack or "the clean evaluation"
        return f"not run: its cascade gate {label} failed ({failed[0].error})"
    return survivors([g.correct for g in gates if g.correct is not None], rule)


def _components(plan: Plan) -> list[Component]:
    return [plan.dataset, plan.model, plan.defense, *plan.attacks, *plan.sweep_attacks, *([plan.probe] if plan.probe else [])]
