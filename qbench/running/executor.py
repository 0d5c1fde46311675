"""Executors: where the runner's tasks (train one seed, evaluate one cell) run.

An executor takes picklable, argument-free callables (:mod:`qbench.running.tasks`) and hands back what each
returned as tasks finish. Three kinds, one interface:

- :class:`InProcessExecutor` runs each task in the calling process, one at a time (``qbench evaluate``);
- :class:`ProcessPool` runs them in local worker processes (the default of ``qbench leaderboard run``);
- :class:`qbench.running.dask_executor.DaskExecutor` runs them on a Dask cluster, local or remote.

:mod:`qbench.running.executor_spec` checks the user's executor options and creates the executor.

Workers only compute: what a task returns goes back to the coordinator, which alone writes the store. A
worker that dies (killed, out of memory, a crash in native code) loses only the task it was running; the
executor runs that task again up to ``retries`` times and then reports it as lost, with the reason.
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import multiprocessing
import os
import signal
import threading
import time
from abc import ABC, abstractmethod
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Callable, Iterable

log = logging.getLogger("qbench")


@dataclass
class Outcome:
    """One finished task: what it returned, or the exception it raised, or why it was lost."""

    token: Any
    value: Any = None
    error: BaseException | None = None
    #: the task's worker died more often than the executor retries; why (None when the task ran)
    lost: str | None = None


class Executor(ABC):
    """Runs tasks and returns their outcomes as they finish. Use as a context manager (or call :meth:`close`)."""

    #: short name shown in logs and the benchmark
    kind: str = ""
    #: tasks that can run at the same time
    workers: int = 1
    #: torch intra-op threads for a worker on tracks that keep them (None: leave the process's setting)
    threads_per_worker: int | None = None
    #: whether tasks run in this process (so they may carry unpicklable objects: the data, the reporter)
    in_process: bool = False

    @abstractmethod
    def submit(self, token: Any, task: Callable[[], Any]) -> None:
        """Queue ``task``; its :class:`Outcome` will carry ``token``."""

    def submit_next(self, token: Any, task: Callable[[], Any]) -> None:
        """Queue ``task`` ahead of the tasks waiting, where the executor has an order (a cascaded cell whose
        gates just finished: its (defense, seed) completes before the next one is started)."""
        self.submit(token, task)

    @abstractmethod
    def wait(self) -> list[Outcome]:
        """Block until at least one submitted task has finished; its outcomes (empty when none is pending)."""

    @property
    @abstractmethod
    def pending(self) -> int:
        """Tasks submitted whose outcome has not been returned yet."""

    def preload(self, modules: Iterable[str]) -> None:
        """A hint: modules every task will import (a process pool imports them once, before forking)."""

    def close(self) -> None:
        """Stop the workers; tasks still pending are abandoned."""

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class InProcessExecutor(Executor):
    """Runs each task in this process when :meth:`wait` is called, in submission order."""

    kind = "inprocess"
    in_process = True

    def __init__(self, threads: int = 1) -> None:
        self.threads_per_worker = threads
        self._queue: collections.deque[tuple[Any, Callable[[], Any]]] = collections.deque()

    def submit(self, token: Any, task: Callable[[], Any]) -> None:
        self._queue.append((token, task))

    def submit_next(self, token: Any, task: Callable[[], Any]) -> None:
        self._queue.appendleft((token, task))

    def wait(self) -> list[Outcome]:
        if not self._queue:
            return []
        token, task = self._queue.popleft()
        try:
            return [Outcome(token, value=task())]
        except Exception as exc:  # noqa: BLE001 - handed to the coordinator, which records it
            return [Outcome(token, error=exc)]

    @property
    def pending(self) -> int:
        return len(self._queue)


def run_task(task: Callable[[], Any]) -> Any:
    """Call ``task`` (a module-level function, so executors can ship it to a worker by reference)."""
    return task()


def limit_native_threads(n: int) -> None:
    """Cap the BLAS and OpenMP thread pools (numpy, scipy) of a worker process at ``n`` threads: each of N
    workers would otherwise start one thread per core."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(n)


def _init_worker(coordinator: int, threads: int) -> None:
    _watch_coordinator(coordinator)
    limit_native_threads(threads)


def _watch_coordinator(coordinator: int) -> None:
    """Exit this worker when the coordinator is gone (SIGKILL leaves pool workers orphaned otherwise)."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(0.5)
            try:
                os.kill(coordinator, 0)
            except ProcessLookupError:
                os._exit(1)
            if os.getppid() != parent:  # the forkserver exits with the coordinator, even a zombie one
                os._exit(1)

    threading.Thread(target=watch, name="qbench-coordinator-watch", daemon=True).start()


def _death_reason(pool: concurrent.futures.ProcessPoolExecutor) -> str:
    # the pool's processes are private, but their exit code is the one useful fact about a death
    processes = getattr(pool, "_processes", None) or {}
    codes = [p.exitcode for p in processes.values() if getattr(p, "exitcode", None) not in (None, 0)]
    if not codes:
        return "the worker process died"
    code = codes[0]
    if code < 0:
        try:
            return f"the worker process was killed by {signal.Signals(-code).name}"
        except ValueError:
            pass
    return f"the worker process died with exit code {code}"


class ProcessPool(Executor):
    """Local worker processes (forkserver: started once with the heavy imports done, then forked).

    Each worker is its own one-process pool, so a worker that dies is known by the task it was running:
    only that task is retried (up to ``retries`` times, on a fresh worker) and the others run on.
    """

    kind = "pool"

    def __init__(self, workers: int, retries: int = 2, threads: int = 1) -> None:
        self.workers = workers
        self.retries = retries
        # one thread per worker unless asked (--threads): even a lone worker on a 2-core machine shared with
        # other jobs ran the mapped CNNs 2.2-2.8x slower at 2 threads than at 1
        self.threads_per_worker = threads
        forkserver = "forkserver" in multiprocessing.get_all_start_methods()  # not on Windows
        self._context = multiprocessing.get_context("forkserver" if forkserver else "spawn")
        self._preload: set[str] = {"qbench.running.tasks"}
        self._slots: list[concurrent.futures.ProcessPoolExecutor | None] = [None] * workers
        self._busy: dict[concurrent.futures.Future, tuple[int, Any, Callable[[], Any]]] = {}
        self._queue: collections.deque[tuple[Any, Callable[[], Any]]] = collections.deque()
        self._deaths: collections.Counter = collections.Counter()

    def preload(self, modules: Iterable[str]) -> None:
        self._preload.update(modules)

    def submit(self, token: Any, task: Callable[[], Any]) -> None:
        self._queue.append((token, task))
        self._dispatch()

    def submit_next(self, token: Any, task: Callable[[], Any]) -> None:
        self._queue.appendleft((token, task))
        self._dispatch()

    @property
    def pending(self) -> int:
        return len(self._queue) + len(self._busy)

    def _slot(self, index: int) -> concurrent.futures.ProcessPoolExecutor:
        if self._slots[index] is None:
            if self._context.get_start_method() == "forkserver":
                # Only the forkserver's first start reads the preload list; later pools fork from it.
                self._context.set_forkserver_preload(sorted(self._preload))
            self._slots[index] = concurrent.futures.ProcessPoolExecutor(
                max_workers=1, mp_context=self._context, initializer=_init_worker,
                initargs=(os.getpid(), self.threads_per_worker),
            )
        return self._slots[index]  # type: ignore[return-value]

    def _dispatch(self) -> None:
        idle = set(range(self.workers)) - {slot for slot, _, _ in self._busy.values()}
        for index in sorted(idle):
            if not self._queue:
                return
            token, task = self._queue.popleft()
            future = self._slot(index).submit(run_task, task)
            self._busy[future] = (index, token, task)

    def wait(self) -> list[Outcome]:
        if not self._busy:
            return []
        done, _ = concurrent.futures.wait(list(self._busy), return_when=concurrent.futures.FIRST_COMPLETED)
        outcomes = []
        for future in done:
            index, token, task = self._busy.pop(future)
            try:
                outcomes.append(Outcome(token, value=future.result()))
            except BrokenProcessPool:
                pool = self._slots[index]
                reason = _death_reason(pool) if pool is not None else "the worker process died"
                if pool is not None:
                    pool.shutdown(wait=False, cancel_futures=True)
                self._slots[index] = None
                self._deaths[token] += 1
                deaths = self._deaths[token]
                if deaths <= self.retries:
                    what = " ".join(map(str, token)) if isinstance(token, tuple) else token
                    log.warning("qbench: %s while running %s; running it again (%d of %d)", reason, what, deaths, self.retries)
                    self._queue.appendleft((token, task))
                else:
                    outcomes.append(Outcome(token, lost=f"{reason} ({deaths} times, every time it ran)"))
            except Exception as exc:  # noqa: BLE001 - e.g. a result that cannot be pickled
                outcomes.append(Outcome(token, error=exc))
        self._dispatch()
        return outcomes

    def close(self) -> None:
        abandoned = bool(self._busy or self._queue)
        self._queue.clear()
        for pool in self._slots:
            if pool is None:
                continue
            if abandoned:
                for process in list((getattr(pool, "_processes", None) or {}).values()):
                    process.kill()
            pool.shutdown(wait=not abandoned, cancel_futures=True)
        self._slots = [None] * self.workers
        self._busy.clear()
