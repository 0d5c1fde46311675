"""The Dask executor: tasks on a ``distributed`` cluster, a LocalCluster of worker processes or a running one.

The coordinator keeps the store; workers get tasks, read trained weights from the store's artifact folder
(which must be on a filesystem they share with the coordinator when they are on other machines) and return
results. A worker that dies is replaced by its nanny and the scheduler runs its task again elsewhere; after
``distributed.scheduler.allowed-failures`` deaths the task is reported lost. On a LocalCluster that bound
is ``retries``; a running cluster (``--scheduler``) keeps its own setting. See docs/executors.md.
"""

from __future__ import annotations

import logging
import multiprocessing
import uuid
from typing import Any, Callable, Iterable

from distributed.diagnostics.plugin import WorkerPlugin

from qbench.errors import UsageError
from qbench.running.executor import Executor, Outcome, limit_native_threads, run_task

#: how long to wait for a running scheduler to answer
CONNECT_TIMEOUT = "10s"


class _NativeThreads(WorkerPlugin):
    """A worker plugin: caps the BLAS/OpenMP thread pools of every LocalCluster worker, restarted ones too."""

    def __init__(self, threads: int) -> None:
        self.threads = threads

    def setup(self, worker: Any) -> None:
        limit_native_threads(self.threads)


class DaskExecutor(Executor):
    """Tasks on Dask: ``scheduler`` (``tcp://HOST:PORT``) or else a LocalCluster of ``workers`` processes.

    The cluster is started (or connected to) when the first task is submitted, and closed by :meth:`close`
    when this executor started it.
    """

    kind = "dask"

    def __init__(self, workers: int, scheduler: str | None = None, retries: int = 2, threads: int = 1) -> None:
        self.workers = workers
        self.scheduler = scheduler
        self.retries = retries
        self.threads_per_worker = threads
        self._client: Any = None
        self._cluster: Any = None
        self._futures: dict[Any, Any] = {}
        self._done: Any = None
        self._settings: Any = None
        self._preload: set[str] = {"distributed", "qbench.running.tasks"}

    def preload(self, modules: Iterable[str]) -> None:
        self._preload.update(modules)

    @property
    def client(self) -> Any:
        """The ``distributed.Client``, connecting (or starting the LocalCluster) on first use."""
        if self._client is None:
            self._connect()
        return self._client

    def _connect(self) -> None:
        import dask
        from distributed import Client, LocalCluster
        from distributed.utils import get_mp_context

        if self.scheduler is not None:
            try:
                self._client = Client(self.scheduler, timeout=CONNECT_TIMEOUT, set_as_default=False)
            except (OSError, TimeoutError) as exc:
                raise UsageError(f"cannot reach the Dask scheduler at {self.scheduler}: {exc}") from None
            threads = self._client.nthreads()
            if any(n != 1 for n in threads.values()):
                self._client.close()
                self._client = None
                raise UsageError(
                    f"the Dask workers at {self.scheduler} run {max(threads.values())} threads each; qbench needs "
                    "one thread per worker process (cells seed process-wide RNGs): start them with --nthreads 1"
                )
            self.workers = max(1, len(threads))
            return
        # Saturation 1.0 keeps one task per single-thread worker, so a dying worker takes no queued-up
        # innocent task with it. Workers fork from a server that has imported torch and the plugins once,
        # instead of each importing them; nannies read the start method again to restart a worker, so the
        # settings stay in force until close().
        settings: dict[str, Any] = {
            "distributed.scheduler.allowed-failures": self.retries,
            "distributed.scheduler.worker-saturation": 1.0,
        }
        forkserver = "forkserver" in multiprocessing.get_all_start_methods()  # not on Windows
        if forkserver:
            settings["distributed.worker.multiprocessing-method"] = "forkserver"
        self._settings = dask.config.set(settings)
        if forkserver:
            get_mp_context()  # distributed sets its own preload list on first use; ours replaces it
            multiprocessing.get_context("forkserver").set_forkserver_preload(sorted(self._preload))
        self._cluster = LocalCluster(
            n_workers=self.workers, threads_per_worker=1, processes=True, dashboard_address=None,
            silence_logs=logging.ERROR,
        )
        self._client = Client(self._cluster, set_as_default=False)
        self._client.register_plugin(_NativeThreads(self.threads_per_worker or 1))

    def _finished(self) -> Any:
        from distributed import as_completed

        if self._done is None:
            self._done = as_completed(loop=self.client.loop)
        return self._done

    def submit(self, token: Any, task: Callable[[], Any], resubmitted: int = 0, priority: int = 0) -> None:
        future = self.client.submit(run_task, task, key=f"qbench-task-{uuid.uuid4().hex}", pure=False,
                                    priority=priority)
        self._futures[future] = (token, task, resubmitted)
        self._finished().add(future)

    def submit_next(self, token: Any, task: Callable[[], Any]) -> None:
        # the scheduler runs higher priorities first among the tasks not yet started
        self.submit(token, task, priority=1)

    @property
    def pending(self) -> int:
        return len(self._futures)

    def wait(self) -> list[Outcome]:
        from distributed import KilledWorker

        if not self._futures:
            return []
        outcomes = []
        for future in self._finished().next_batch(block=True):
            token, task, resubmitted = self._futures.pop(future)
            status, value, exc = future.status, None, None
            if status == "finished":
                try:
                    value = future.result()
                except Exception:  # noqa: BLE001 - the result went with a worker that died since
                    status = "lost"
            elif status == "error":
                exc = future.exception()
            future.release()
            if status == "finished":
                outcomes.append(Outcome(token, value=value))
            elif status == "error":
                if isinstance(exc, KilledWorker):
                    times = getattr(exc, "allowed_failures", self.retries) + 1
                    outcomes.append(Outcome(token, lost=f"the Dask worker running it died ({times} times, every time it ran)"))
                else:
                    outcomes.append(Outcome(token, error=exc))
            elif resubmitted < self.retries:
                # A finished task whose result sat on a worker that died (another task's fault): run it again.
                self.submit(token, task, resubmitted + 1)
            else:
                outcomes.append(Outcome(token, lost=f"the Dask scheduler reports it {status}, {resubmitted + 1} times"))
        return outcomes

    def close(self) -> None:
        for future in self._futures:
            future.cancel()
        self._futures.clear()
        self._done = None
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None
        if self._settings is not None:
            self._settings.__exit__(None, None, None)
            self._settings = None
