"""``qbench leaderboard run`` / ``build`` / ``render``: the grid into the store, the store into entries,
the entries into Markdown and HTML.

Rendered files are a pure function of the JSON entries, so ``render`` can be re-run anywhere and a test
checks that the committed pages match the committed entries.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from qbench.publishing import coverage
from qbench.publishing import entry as entries_mod
from qbench.contract.attack import format_label
from qbench.errors import QBenchError
from qbench.running.grid import CURVE_ATTACKS, add_probe, board_plan, boards, defenses_for
from qbench.registry import Registry
from qbench.publishing.render_html import board_html, index_html
from qbench.publishing.render_markdown import board_page, index_page
from qbench.running.runner import MissingCells, Runner
from qbench.publishing.summary import add_paper_protocol, compare, summarize
from qbench.running.scoring import CASCADE_RULE, compare_paired, shared_ranks
from qbench.contract.tracks import DEFAULTS


@dataclass(frozen=True)
class GridOptions:
    """Which part of the grid, and the protocol settings (``epochs``/``n_test``/``n_eot`` override the boards')."""

    boards: list[str] | None = None
    defenses: list[str] | None = None
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    n_eot: int | None = None
    n_repeat: int = 10
    #: readout override (None: the track's; :data:`qbench.contract.readout.EXACT`: exact probabilities)
    shots: int | None = None
    epochs: int | None = None
    n_test: int | None = None
    #: the test selection (:attr:`qbench.running.plan.Plan.test_selection`; None: each board's own)
    test_selection: str | None = None
    sweep: bool = True
    #: carry the curves up the epsilons where the track does (False: rebuild an entry whose protocol has
    #: no ``cascade_curves``, computed before it existed)
    carry_curves: bool = True
    #: the cascade's rule (:data:`qbench.running.scoring.CASCADE_RULE`; "set-a": entries computed before it)
    cascade_rule: str = CASCADE_RULE
    #: run the suite as a cascade where the track does (False: rebuild an entry whose protocol has no
    #: ``cascade_gates``, computed before its track had the cascade)
    cascade: bool = True
    #: a folder of published entries (``<track>/<board>/<defense>.json``): a board that has entries there is
    #: run and built under *their* protocol switches (the cascade, its rule, the carried curves), so that a
    #: board computed before a switch existed rebuilds as it was computed and gains seeds or defenses
    #: comparably; None: every board under the track's current protocol
    follow: Path | None = None
    #: the torch device every task computes on (:mod:`qbench.running.torch_device`)
    torch_device: str = "cpu"

    def plans(self, registry: Registry, track: str):
        """(board, dataset, plan) for every (board, defense) selected, the dataset loaded once per board."""
        for board in boards(track, self.boards):
            if self.epochs or self.n_test:
                board = replace(board, epochs=self.epochs or board.epochs, n_test=self.n_test or board.n_test)
            if self.test_selection is not None:
                board = replace(board, test_selection=self.test_selection)
            switches = self.switches(track, board.name)
            yield board, [
                board_plan(registry, board, d, self.seeds, self.n_eot, self.n_repeat, self.sweep, shots=self.shots,
                           torch_device=self.torch_device, **switches)
                for d in defenses_for(registry, track, self.defenses)
            ]

    def switches(self, track: str, board: str) -> dict[str, Any]:
        """The protocol switches of ``board``: those of its entries under :attr:`follow`, else these options'."""
        mine = {"carry_curves": self.carry_curves, "cascade_rule": self.cascade_rule, "cascade": self.cascade}
        protocol = committed_protocol(self.follow, track, board) if self.follow is not None else None
        if protocol is None:
            return mine
        return {
            "carry_curves": self.carry_curves and bool(protocol.get("cascade_curves")),
            "cascade_rule": protocol.get("cascade_rule", "set-a"),
            "cascade": self.cascade and bool(protocol.get("cascade_gates")),
        }


def committed_protocol(entries: Path, track: str, board: str) -> dict[str, Any] | None:
    """The protocol of a board's published entries in ``entries`` (its ``none`` entry's, else the first's)."""
    folder = Path(entries) / track / board
    paths = sorted(folder.glob("*.json"), key=lambda p: (p.stem != "none", p.name))
    if not paths:
        return None
    return entries_mod.load(paths[0])["protocol"]


def describe_switches(switches: dict[str, Any]) -> str:
    """The protocol switches in words, for the line a run prints about a board that follows its entries."""
    return ", ".join([
        f"cascade ({switches['cascade_rule']} rule)" if switches["cascade"] else "no cascade",
        "curves carried" if switches["carry_curves"] else "curves not carried",
    ])


@dataclass
class GridReport:
    """What a grid run or build did, per (board, defense)."""

    done: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)


def run_grid(
    registry: Registry, runner: Runner, track: str, options: GridOptions, log: Callable[[str], None] = lambda m: None
) -> GridReport:
    """Compute every missing cell of the grid, all (board, defense) plans at once on the runner's executor.

    A plan whose training or clean evaluation fails, or with failed cells, is reported as failed; the rest
    of the grid still runs. Bad input (an unknown name, missing data) stops the run before anything runs.
    """
    report = GridReport()
    jobs, labels = [], []
    for board, plans in options.plans(registry, track):
        data = runner.load_data(plans[0].dataset)
        for plan in plans:
            add_probe(plan, data, registry)
            jobs.append((plan, data))
            labels.append(f"{board.name}/{plan.defense.name}")
    for label, outcome in zip(labels, runner.run_all(jobs)):
        if isinstance(outcome, QBenchError):
            report.failed.append(f"{label}: {outcome}")
            log(f"failed {label}: {outcome}")
            continue
        failed = [c for s in outcome.seeds for c in s.cells if c.status == "failed"]
        if failed:
            report.failed.append(f"{label}: {len(failed)} cells failed; first: {failed[0].error}")
            log(f"failed {label}: {len(failed)} of its cells ({failed[0].error})")
            continue
        report.done.append(label)
        log(f"done {label}: {outcome.computed} cells computed")
    return report


def _stored_cells(result) -> list[dict[str, Any]]:
    return [
        {"key": c.key, "seed": c.seed, "kind": c.kind, "attack": c.attack, "epsilon": c.epsilon,
         "status": c.status, "accuracy": c.accuracy, "commit": c.info.get("commit")}
        for s in result.seeds for c in s.cells
    ]


def build(
    registry: Registry, runner: Runner, out: Path, track: str, options: GridOptions,
    build_commit: str | None = None, draft: bool = False,
) -> GridReport:
    """Write ``out/<track>/<board>/<defense>.json`` for every (board, defense) whose cells are all stored.

    ``build_commit`` is the clean commit the entries are built from (checked by the caller before anything
    is written, since writing entries dirties the tree); ``draft`` marks entries built from a dirty tree.
    """
    report = GridReport()
    protocol = DEFAULTS[track].paper_protocol
    for board, plans in options.plans(registry, track):
        data = runner.load_data(plans[0].dataset)
        summaries: dict[str, tuple[dict, list]] = {}
        epsilon = 0.0
        for plan in plans:
            defense = plan.defense.name
            add_probe(plan, data, registry)
            try:
                result = runner.run(plan, data)
            except MissingCells as exc:
                report.skipped.append(f"{board.name}/{defense}: {exc}")
                continue
            epsilon = plan.epsilons[0]  # the ranking epsilon: the dataset's (or track's) default
            summary = summarize(result)
            add_paper_protocol(summary, protocol, epsilon)
            summaries[defense] = (summary, _stored_cells(result))
        undefended = summaries.get("none", (None, None))[0]
        assign_ranks({d: s for d, (s, _) in summaries.items()}, epsilon)
        for defense, (summary, cells) in summaries.items():
            if undefended is not None and defense != "none":
                compare(summary, undefended)
            elif defense == "none":
                summary["training"]["relative_cost"] = 1.0
            summary.pop("per_example", None)
            entry = entries_mod.build_entry(
                summary, undefended if defense != "none" else None, board.name, epsilon,
                registry.entry("defense", defense).to_dict(), cells, build_commit=build_commit, draft=draft,
            )
            path = out / track / board.name / f"{defense}.json"
            entries_mod.write(entry, path)
            report.written.append(path)
            report.done.append(f"{board.name}/{defense}")
    return report


def ranking_order(summaries: dict[str, dict[str, Any]], epsilon: float) -> list[str]:
    """Defenses best first: reliable entries before unreliable ones, then by the worst case, then clean;
    entries left unattacked at chance (no worst case) last."""
    def robust(d: str) -> float:
        return next((w["robust"]["mean"] for w in summaries[d]["worst_case"] if w["epsilon"] == epsilon), -1.0)

    return sorted(summaries, key=lambda d: (bool(summaries[d].get("unmeasured")), summaries[d]["flags"]["unreliable"],
                                            -robust(d), -summaries[d]["clean"]["mean"], d))


def assign_ranks(summaries: dict[str, dict[str, Any]], epsilon: float) -> None:
    """Set ``summary["rank"]`` of every defense of one board (scoring v2's shared ranks).

    Reliable entries are ranked first and apart: an ``unreliable`` entry is never ranked above a reliable
    one, whatever its number. An entry whose model was found at chance and not attacked gets no rank ("-"). Within each group a defense shares the rank of the group above it unless
    the paired comparison (same seeds and examples, :func:`qbench.running.scoring.compare_paired`) with that
    group's best entry separates them at 95%.
    """
    order = ranking_order(summaries, epsilon)
    for d in order:
        if summaries[d].get("unmeasured"):  # nothing to rank it by: listed last, without a rank
            summaries[d]["rank"] = {"label": "-", "group": "unmeasured", "compared_with": None, "comparison": None}
    order = [d for d in order if not summaries[d].get("unmeasured")]
    offset = 0
    for unreliable in (False, True):
        group = [d for d in order if bool(summaries[d]["flags"]["unreliable"]) == unreliable]
        comparisons: dict[tuple[int, int], Any] = {}

        def separated(i: int, k: int) -> bool:
            a, b = paired_values(summaries, group[i], group[k], epsilon)
            comparisons[(i, k)] = compare_paired(a, b)
            return comparisons[(i, k)].separated

        ranks = shared_ranks(len(group), separated)
        for k, d in enumerate(group):
            # shared_ranks compared entry k once, with the best entry of the rank group above it
            leader = next((i for (i, j) in comparisons if j == k), None)
            pair = comparisons.get((leader, k)) if leader is not None else None
            number = int(ranks[k].lstrip("=")) + offset
            summaries[d]["rank"] = {
                "label": ("=" if ranks[k].startswith("=") else "") + str(number),
                "group": "unreliable" if unreliable else "reliable",
                "compared_with": group[leader] if leader is not None else None,
                "comparison": pair.to_dict() if pair is not None else None,
            }
            if leader is not None and leader != k - 1:
                # the rule compares with the group's best; DESIGN's neighbour comparison is shown beside it,
                # so a reader sees where the two rules differ (README, "Departures")
                summaries[d]["rank"]["neighbour"] = {
                    "defense": group[k - 1],
                    "comparison": compare_paired(*paired_values(summaries, group[k - 1], d, epsilon)).to_dict(),
                }
        offset += len(group)


def paired_values(summaries: dict[str, dict[str, Any]], a: str, b: str,
                  epsilon: float) -> tuple[list[Any], list[Any]]:
    """The per-example worst cases of defenses ``a`` and ``b`` at ``epsilon``, paired seed by seed.

    Seeds are matched by value, not by position, and only the seeds both entries have are compared. Two
    entries with no seed in common, or with different test examples, cannot be compared example by
    example: that is an error, not a tie.
    """
    per_seed = [dict(zip(summaries[d]["seeds"], summaries[d]["per_example"][epsilon])) for d in (a, b)]
    common = [s for s in summaries[a]["seeds"] if s in per_seed[1]]
    if not common:
        raise QBenchError(f"{a} (seeds {summaries[a]['seeds']}) and {b} (seeds {summaries[b]['seeds']}) share no "
                          "seed: they cannot be compared paired, so they cannot be ranked on one board")
    left, right = [per_seed[0][s] for s in common], [per_seed[1][s] for s in common]
    if [v.shape for v in left] != [v.shape for v in right]:
        raise QBenchError(f"{a} and {b} were evaluated on different test examples ({left[0].shape} against "
                          f"{right[0].shape} values a seed): they cannot be compared paired")
    return left, right


def load_entries(out: Path) -> dict[str, list[dict[str, Any]]]:
    """Every entry under ``out`` (validated), grouped by board."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(out.glob("*/*/*.json")):
        entry = entries_mod.load(path)
        grouped.setdefault(entry["board"], []).append(entry)
    return grouped


def rendered_files(out: Path) -> dict[Path, str]:
    """Every generated page (path → text) from the entries under ``out``; nothing is written."""
    grouped = load_entries(out)
    files: dict[Path, str] = {}
    if not grouped:
        return files
    missing = coverage.gaps(grouped)
    files[out / "README.md"] = index_page(grouped, missing)
    files[out / "html" / "index.html"] = index_html(grouped, missing)
    for board, entries in grouped.items():
        track = entries[0]["track"]
        gap = next((g for g in missing if g.board == board), None)
        files[out / track / board / "README.md"] = board_page(board, entries, gap)
        curve_names = [format_label(n, o) for n, o in CURVE_ATTACKS[track]]
        files[out / "html" / f"{board}.html"] = board_html(board, entries, curve_names, gap)
    return files


def render(out: Path) -> list[Path]:
    """Write the Markdown and HTML pages generated from the entries under ``out``."""
    written = []
    for path, text in rendered_files(out).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written


def write_report(path: Path, report: GridReport) -> None:
    """A JSON record of a grid run (what was done, failed, skipped)."""
    path.write_text(json.dumps({k: [str(v) for v in vals] for k, vals in vars(report).items()}, indent=2))
