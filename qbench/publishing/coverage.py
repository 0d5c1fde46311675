"""What a published leaderboard does not hold yet: grid boards without entries, defenses missing from a board.

Worked out from the entries and the grid's board list only, never from the installed plugins, so the
rendered pages stay a pure function of the committed entries: a defense is expected on a board when it
has an entry on another board of the same track. A reader then sees a gap as a gap, with the command that
fills it, instead of a board that silently lacks a row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qbench.running.grid import BOARDS


@dataclass(frozen=True)
class Gap:
    """A board of the grid with defenses that have no entry (all of them when ``whole_board``), or whose
    entries lack seeds that the track's other boards have."""

    track: str
    board: str
    defenses: tuple[str, ...]
    whole_board: bool
    #: seeds the board's entries lack (the track's boards together define the expected seeds)
    seeds: tuple[int, ...]
    #: how many seeds the track's boards run (0..n_seeds-1)
    n_seeds: int

    def command(self) -> str:
        """The ``qbench leaderboard run`` that computes the missing cells."""
        only = "" if self.whole_board or self.seeds else "".join(f" --defense {d}" for d in self.defenses)
        return f"qbench leaderboard run --track {self.track} --board {self.board}{only} --seeds {self.n_seeds}"

    def describe(self) -> str:
        """What is missing, in words."""
        if self.whole_board:
            return "the whole board"
        parts = [", ".join(self.defenses)] if self.defenses else []
        if self.seeds:
            parts.append("seed" + ("s " if len(self.seeds) > 1 else " ") + ", ".join(map(str, self.seeds))
                         + " of the defenses shown")
        return "; ".join(parts)


def gaps(grouped: dict[str, list[dict[str, Any]]]) -> list[Gap]:
    """The gaps of every track that has at least one entry, in the grid's board order."""
    found: list[Gap] = []
    for track, track_boards in BOARDS.items():
        on_track = {b: es for b, es in grouped.items() if es[0]["track"] == track}
        if not on_track:
            continue
        expected = sorted({e["defense"]["name"] for es in on_track.values() for e in es}, key=lambda n: (n != "none", n))
        all_seeds = {s for es in on_track.values() for e in es for s in e["seeds"]}
        n_seeds = max(all_seeds) + 1
        for board in track_boards:
            entries = on_track.get(board.name, [])
            present = {e["defense"]["name"] for e in entries}
            missing = tuple(d for d in expected if d not in present)
            seeds = tuple(sorted(set(range(n_seeds)) - {s for e in entries for s in e["seeds"]})) if entries else ()
            if missing or seeds:
                found.append(Gap(track, board.name, missing, not present, seeds, n_seeds))
    return found
