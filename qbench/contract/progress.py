"""Progress reporting handed to plugins through the context (rich bars on a terminal, silent otherwise).

A bar shows its count, the time elapsed and the time remaining (rich's estimate from the speed so far;
``-:--:--`` until the first unit is done, and for a bar without a total).
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Protocol

from rich.console import Console
from rich.progress import (
    BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn,
)


class ProgressTask(Protocol):
    """One bar: advance it as work completes."""

    def advance(self, amount: float = 1) -> None:
        """Mark ``amount`` more units done."""

    def update(self, **fields: object) -> None:
        """Change the description or the total (``description=``, ``total=``)."""


class Reporter:
    """Hands out progress bars. The base class is silent; :class:`RichReporter` draws them."""

    @contextlib.contextmanager
    def task(self, description: str, total: float | None = None) -> Iterator[ProgressTask]:
        """A bar for the duration of the ``with`` block."""
        yield _NullTask()

    def log(self, message: str) -> None:
        """A one-line status message."""


class _NullTask:
    def advance(self, amount: float = 1) -> None:
        pass

    def update(self, **fields: object) -> None:
        pass


class _RichTask:
    def __init__(self, progress: Progress, task_id) -> None:
        self._progress, self._id = progress, task_id

    def advance(self, amount: float = 1) -> None:
        self._progress.advance(self._id, amount)

    def update(self, **fields: object) -> None:
        self._progress.update(self._id, **fields)


class RichReporter(Reporter):
    """Progress bars on stderr with rich, one live display shared by nested tasks."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self._progress = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self._depth = 0

    @contextlib.contextmanager
    def task(self, description: str, total: float | None = None) -> Iterator[ProgressTask]:
        if self._depth == 0:
            self._progress.start()
        self._depth += 1
        task_id = self._progress.add_task(description, total=total)
        try:
            yield _RichTask(self._progress, task_id)
        finally:
            self._progress.remove_task(task_id)
            self._depth -= 1
            if self._depth == 0:
                self._progress.stop()

    def log(self, message: str) -> None:
        self.console.print(message, highlight=False)
