"""What a published leaderboard does not hold yet: grid boards without entries, defenses missing from a board.

Worked out from the entries and the grid's board list only, never from the installed plugins, so the
rendered pages stay a pure function of the committed entries: a defense is expected on a board when it
has an entry on another board of the same track. A reader then sees a gap as a gap, with the command that
fills it, instead of a board that silently lacks a row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qbench.grid import BOARDS


@dataclass(frozen=True)
class Gap:
    """A board of the grid with defenses that have no entry (all of them when ``whole_board``)."""

    track: str
    board: str
    defenses: tuple[str, ...]
    whole_board: bool

    def command(self) -> str:
        """The ``qbench leaderboard run`` that computes the missing cells."""
        only = "" if self.whole_board else "".join(f" --defense {d}" for d in self.defenses)
        return f"qbench leaderboard run --track {self.track} --board {self.board}{only}"


def gaps(grouped: dict[str, list[dict[str, Any]]]) -> list[Gap]:
    """The gaps of every track that has at least one entry, in the grid's board order."""
    found: list[Gap] = []
    for track, track_boards in BOARDS.items():
        on_track = {b: es for b, es in grouped.items() if es[0]["track"] == track}
        if not on_track:
            continue
        expected = sorted({e["defense"]["name"] for es in on_track.values() for e in es}, key=lambda n: (n != "none", n))
        for board in track_boards:
            present = {e["defense"]["name"] for e in on_track.get(board.name, [])}
            missing = tuple(d for d in expected if d not in present)
            if missing:
                found.append(Gap(track, board.name, missing, whole_board=not present))
    return found

