"""The executor a user asked for (``--executor``, ``--workers``, ``--scheduler``, ``--retries``), checked and created.

Kept apart from :mod:`.executor` so that the executors themselves do not import one another: the in-process and
pool executors live in :mod:`.executor`, the Dask one in :mod:`.dask_executor` (built on :mod:`.executor`), and
only this module knows all three.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from qbench.errors import UsageError
from qbench.running.executor import Executor, InProcessExecutor, ProcessPool

KINDS = ("inprocess", "pool", "dask")

#: how a ``--scheduler`` address must look (``tcp://host:8786``, ``tls://...``)
ADDRESS = re.compile(r"^[a-z][a-z0-9+]*://[^\s/:]+:\d+/?$")


@dataclass(frozen=True)
class ExecutorSpec:
    """What the user asked for (``--executor``, ``--workers``, ``--scheduler``, ``--retries``, ``--threads``),
    checked."""

    kind: str
    workers: int
    scheduler: str | None = None
    retries: int = 2
    #: torch (and BLAS) threads per worker for mapped-DNN work; the QNN track always runs one
    threads: int = 1

    def create(self) -> Executor:
        """The executor (a Dask cluster is only started, or connected to, when the first task is submitted)."""
        if self.kind == "inprocess":
            return InProcessExecutor(self.threads)
        if self.kind == "pool":
            return ProcessPool(self.workers, self.retries, self.threads)
        from qbench.running.dask_executor import DaskExecutor  # dask is optional: imported when asked for

        return DaskExecutor(self.workers, self.scheduler, self.retries, self.threads)


def executor_spec(
    kind: str | None, workers: int | None, scheduler: str | None, retries: int = 2, default: str = "inprocess",
    threads: int = 1,
) -> ExecutorSpec:
    """Check the executor options (a :class:`UsageError` for a bad combination) before anything starts."""
    if kind is None:
        kind = "dask" if scheduler else ("pool" if workers is not None and workers > 1 else default)
    if kind not in KINDS:
        raise UsageError(f"unknown executor {kind!r} (executors: {', '.join(KINDS)})")
    if workers is not None and workers < 1:
        raise UsageError(f"--workers must be a positive integer, got {workers}")
    if retries < 0:
        raise UsageError(f"--retries must be >= 0, got {retries}")
    if threads < 1:
        raise UsageError(f"--threads must be a positive integer, got {threads}")
    if kind == "inprocess" and workers not in (None, 1):
        raise UsageError("--workers needs --executor pool or dask (the in-process executor runs one task at a time)")
    if scheduler is not None:
        if kind != "dask":
            raise UsageError(f"--scheduler needs --executor dask, not {kind}")
        if not ADDRESS.match(scheduler):
            raise UsageError(f"--scheduler {scheduler!r} is not a scheduler address like tcp://HOST:8786")
        if workers is not None:
            raise UsageError("--workers starts a local cluster; with --scheduler the cluster's own workers are used")
    if kind == "dask":
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise UsageError("--executor dask needs dask's distributed package: pip install 'dask[distributed]'") from None
    return ExecutorSpec(kind, workers or (1 if kind == "inprocess" else os.cpu_count() or 1), scheduler, retries, threads)
