"""Paper reproductions: each seed paper's tables and figures as experiments run by the protocol runner.

``qbench reproduce NAME`` runs one of :data:`REPRODUCTIONS` (resumable from the store, sharing trained
models and cells with the leaderboard) and writes a JSON report and a Markdown page, our number beside the
paper's, under ``leaderboards/reproductions/``.
"""

from __future__ import annotations

from dataclasses import dataclass

from qbench.errors import UsageError
from qbench.reproductions import huang2023, qnad2024
from qbench.reproductions.experiment import Experiment


@dataclass(frozen=True)
class Reproduction:
    """A paper and the experiments that reproduce it."""

    name: str
    paper: str
    experiments: tuple[Experiment, ...]

    def select(self, ids: list[str] | None) -> tuple[Experiment, ...]:
        """The experiments named by ``ids`` (all when empty); an unknown id is a usage error."""
        if not ids:
            return self.experiments
        known = {e.id: e for e in self.experiments}
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise UsageError(f"{self.name} has no experiment {unknown[0]!r} (experiments: {', '.join(known)})")
        return tuple(known[i] for i in ids)


REPRODUCTIONS = {
    "huang2023": Reproduction("huang2023", huang2023.TITLE, huang2023.EXPERIMENTS),
    "qnad2024": Reproduction("qnad2024", qnad2024.TITLE, qnad2024.EXPERIMENTS),
}


def get(name: str) -> Reproduction:
    """The reproduction called ``name`` (a usage error naming the known ones otherwise)."""
    if name not in REPRODUCTIONS:
        raise UsageError(f"unknown reproduction {name!r} (known: {', '.join(REPRODUCTIONS)})")
    return REPRODUCTIONS[name]
