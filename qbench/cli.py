"""The ``qbench`` command line: its parser and ``main``; what each command does is in :mod:`qbench.commands`.

Exit codes: 0 success, 1 a run failed, 2 bad usage (unknown name, bad value, missing data, broken
plugin, unusable store). Errors are one line on stderr; ``--debug`` adds the traceback.

Every input (names, options, the PennyLane device, data files, the store, a remote scheduler) is checked
before the store is opened, so a bad one leaves it untouched. Before computing, ``evaluate``, ``sweep``,
``leaderboard run`` and ``reproduce`` say on stderr how the track was chosen when it was not given, which
plugins changed without a new version, and what they will compute at what estimated cost
(:mod:`qbench.running.preflight`); ``--dry-run`` stops there.

This module imports neither torch nor PennyLane: ``qbench --help`` and a mistyped command line answer at
once, and :mod:`qbench.commands` (with everything a run needs) is imported only for a command that parsed.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import traceback
from pathlib import Path
from typing import Sequence

from rich.console import Console

import qbench
from qbench.contract.tracks import TRACKS
from qbench.errors import QBenchError, UsageError
from qbench.running.executor_spec import KINDS
from qbench.running.torch_device import ENV_VAR as TORCH_DEVICE_ENV


class _HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default: ``(default: X)``, unless the text already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            "default" in text or not action.option_strings or action.nargs == 0
            or action.default in (None, argparse.SUPPRESS)
        ):
            return text
        return text + " (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # one line and exit 2, instead of argparse's usage block
        raise UsageError(message)


#: ``qbench.contract.readout.EXACT`` (importing that module would pull in torch; a test checks they agree)
EXACT_SHOTS = 0


def _shots(text: str) -> int:
    if text.strip().lower() == "exact":
        return EXACT_SHOTS
    return _positive_int(text)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _epsilon(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"epsilon must be a number, got {text!r}") from None
    if not (value >= 0) or value == float("inf"):
        raise argparse.ArgumentTypeError(f"epsilon must be a finite number >= 0, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _commit(text: str) -> str:
    if not COMMIT.fullmatch(text):
        raise argparse.ArgumentTypeError(f"expected a git commit (7 to 40 hex digits, optionally +dirty), got {text!r}")
    return text


COMMIT = re.compile(r"[0-9a-f]{7,40}(\+dirty)?")
DRY_RUN_HELP = "only say what would be computed and its estimated cost; compute and store nothing"
TORCH_DEVICE_HELP = (f"torch device every computation runs on: cpu, cuda or cuda:N; results off the CPU are stored "
                     f"under their own keys (default: ${TORCH_DEVICE_ENV}, else cpu)")
PUBLISHED = Path("leaderboards/store")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for the docs and tests)."""
    top = _Parser(add_help=False)
    top.add_argument("--debug", action="store_true", help="show tracebacks")
    top.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    # the same flags after the command; their default is no value at all, so that a subcommand does not
    # reset `qbench --json evaluate ...` to False (argparse applies a subparser's defaults last)
    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output on stdout")
    parser = _Parser(prog="qbench", description="Benchmark adversarial defenses of quantum ML models.", parents=[top])
    parser.add_argument("--version", action="version", version=f"qbench {qbench.__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    store_help = "result store (default: $QBENCH_STORE, else results.sqlite in the user cache)"
    data_help = "folder with data files (default: $QBENCH_DATA)"

    protocol = _Parser(add_help=False)
    protocol.add_argument("--defense", required=True, help="defense name (qbench plugins lists them)")
    protocol.add_argument("--track", choices=TRACKS, default=None,
                          help="leaderboard track (default: the one track the dataset, model or defense supports, "
                               "else qnn)")
    protocol.add_argument("--dataset", help="dataset name (default: the track's: moons, or mnist on mapped-dnn)")
    protocol.add_argument("--model", help="model name (default: the track's: qnn, or lenet on mapped-dnn)")
    protocol.add_argument("--attack", action="append", dest="attacks", metavar="NAME",
                          help="attack, repeatable (default: the track's whole suite)")
    protocol.add_argument("--epsilon", action="append", dest="epsilons", type=_epsilon, metavar="E",
                          help="repeatable (default: the dataset's, else the track's: 0.15 on qnn, 0.1 on mapped-dnn)")
    protocol.add_argument("--seeds", type=_positive_int, default=3, help="number of seeds 0..N-1")
    protocol.add_argument("--epochs", type=_positive_int, help="override the training epochs (default: the dataset's)")
    protocol.add_argument("--n-test", type=_positive_int,
                          help="evaluate on N test examples only: the first N, or N taken round-robin over the classes "
                               "where the dataset stores its test split class by class (default: the track's: all "
                               "on qnn, 1000 on mapped-dnn)")
    protocol.add_argument("--n-eot", type=_positive_int, default=20, help="EOT samples per gradient (stochastic models)")
    protocol.add_argument("--n-repeat", type=_positive_int, default=10,
                          help="evaluation draws per set of a stochastic prediction (scoring v2)")
    protocol.add_argument("--shots", type=_shots, default=None,
                          help="readout of a quantum classifier: single shots per prediction, or 'exact' "
                               "(default: the track's; 50 on the qnn track)")
    protocol.add_argument("--device", dest="quantum_device", metavar="NAME",
                          help="PennyLane device to run circuits on, e.g. default.qubit (default: qbench's engine)")
    protocol.add_argument("--torch-device", metavar="NAME", default=None, help=TORCH_DEVICE_HELP)
    protocol.add_argument("--data-dir", type=Path, default=None, help=data_help)
    protocol.add_argument("--store", type=Path, default=None, help=store_help)
    for kind in ("dataset", "model", "defense"):
        protocol.add_argument(f"--{kind}-option", action="append", metavar="KEY=VALUE",
                              help=f"{kind} config option, repeatable (default: the {kind}'s config; qbench plugins --json)")
    protocol.add_argument("--attack-option", action="append", metavar="ATTACK.KEY=VALUE",
                          help="attack config option, repeatable (default: the attack's config)")
    protocol.add_argument("--dry-run", action="store_true", help=DRY_RUN_HELP)

    executors = _Parser(add_help=False)
    executors.add_argument("--executor", choices=KINDS,
                           help="where cells run: inprocess, pool (local processes) or dask (default: inprocess for "
                                "evaluate and sweep, pool for leaderboard run)")
    executors.add_argument("--workers", type=_positive_int,
                           help="worker processes of the pool or local Dask cluster (default: one per core)")
    executors.add_argument("--scheduler", metavar="ADDRESS",
                           help="a running Dask scheduler, tcp://HOST:PORT (default: none; a local cluster)")
    executors.add_argument("--retries", type=_non_negative_int, default=2, help="reruns of a cell whose worker died")
    executors.add_argument("--threads", type=_positive_int, default=1,
                           help="torch threads per worker for mapped-DNN work, and the numpy/scipy thread pools of pool "
                                "and local Dask workers; more can pay on a machine of your own, on a shared one a "
                                "second thread ran the CNNs 2-3x slower (QNN-track torch work always runs one)")

    ev = sub.add_parser("evaluate", parents=[common, protocol, executors], help="train and attack one defense, next to the undefended model")
    ev.add_argument("--no-baseline", action="store_true", help="skip the undefended comparison")

    sw = sub.add_parser(
        "sweep", parents=[common, protocol, executors],
        help="evaluate a defense over the values of one of its options (e.g. qnad's crosstalk level) on the test split",
    )
    sw.add_argument("--option", required=True, help="the defense option to sweep")
    sw.add_argument("--values", required=True, help="comma-separated values")

    pl = sub.add_parser("plugins", parents=[common], help="list every registered dataset, model, defense, attack")
    pl.add_argument("--kind", choices=("dataset", "model", "defense", "attack"), help="only this kind (default: all)")
    pl.add_argument("--wide", action="store_true", help="one table with every column, as wide as it needs")

    rs = sub.add_parser("results", parents=[common], help="what the result store holds")
    rs.add_argument("--store", type=Path, default=None, help=store_help)
    rs.add_argument("--wide", action="store_true", help="every column (key, status, error, version), as wide as needed")

    mg = sub.add_parser("merge", parents=[common], help="merge other result stores into this one (cells, weights, caches)")
    mg.add_argument("sources", nargs="+", type=Path, metavar="SOURCE", help="stores to read (left unchanged)")
    mg.add_argument("--store", type=Path, default=None,
                    help="the store merged into, created if missing (default: $QBENCH_STORE, else the user cache's)")

    vf = sub.add_parser("verify", parents=[common],
                        help="recompute an entry from the published store, then re-run a random sample of its cells")
    vf.add_argument("entry", type=Path, help="a leaderboard entry JSON file")
    vf.add_argument("--sample", type=_non_negative_int, default=3,
                    help="random cells to re-run besides the ranking-epsilon cells of one seed")
    vf.add_argument("--seed", type=_non_negative_int, default=None, help="the sample's seed (default: a fresh one, printed)")
    vf.add_argument("--published", type=Path, default=PUBLISHED, metavar="DIR",
                    help="the published store holding the entry's cells")
    vf.add_argument("--recompute-only", action="store_true",
                    help="only recompute every number from the published bits (no re-run; seconds)")
    vf.add_argument("--data-dir", type=Path, default=None, help=data_help)

    lb = sub.add_parser("leaderboard", parents=[common], help="run the grid, build entries, render pages")
    lb_sub = lb.add_subparsers(dest="action", parser_class=_Parser)
    grid_args = _Parser(add_help=False)
    grid_args.add_argument("--track", choices=TRACKS, action="append", dest="tracks", help="repeatable (default: both)")
    grid_args.add_argument("--board", action="append", dest="boards", metavar="NAME",
                           help="restrict to boards of any selected track, repeatable (default: every board of the tracks)")
    grid_args.add_argument("--defense", action="append", dest="defenses", metavar="NAME",
                           help="restrict to defenses, repeatable (default: every defense of the track)")
    grid_args.add_argument("--seeds", type=_positive_int, default=3, help="seeds 0..N-1")
    grid_args.add_argument("--seed", type=_non_negative_int, action="append", dest="seed_list", metavar="S",
                           help="exactly these seeds instead, repeatable, e.g. a preliminary board of one seed "
                                "(default: --seeds)")
    grid_args.add_argument("--n-eot", type=_positive_int, help="override every board's EOT samples (default: the board's, else 20)")
    grid_args.add_argument("--n-repeat", type=_positive_int, default=10,
                           help="evaluation draws per set of a stochastic prediction")
    grid_args.add_argument("--shots", type=_shots, default=None,
                           help="readout of every quantum classifier on the boards: shots, or 'exact' (default: the track's)")
    grid_args.add_argument("--epochs", type=_positive_int, help="override every board's epochs, for smoke runs (default: the board's)")
    grid_args.add_argument("--n-test", type=_positive_int,
                           help="override every board's test-set size, for smoke runs (default: the board's)")
    grid_args.add_argument("--no-sweep", action="store_true", help="skip the epsilon sweep of the curve attacks")
    grid_args.add_argument("--torch-device", metavar="NAME", default=None, help=TORCH_DEVICE_HELP)
    grid_args.add_argument("--data-dir", type=Path, default=None, help=data_help)
    grid_args.add_argument("--store", type=Path, default=None, help=store_help)
    grid_args.add_argument("--published", type=Path, default=None, metavar="DIR",
                           help="a published store (e.g. leaderboards/store): read into --store first; `run` adds "
                                "what it computed back to it, also when interrupted (default: none)")
    grid_args.add_argument("--current-protocol", action="store_true",
                           help="run or build every board under the track's current protocol, even a board whose "
                                "published entries were computed before a switch of it existed (the cascade, its "
                                "rule, the carried curves; default: such a board follows its entries)")
    lb_run = lb_sub.add_parser("run", parents=[common, grid_args, executors], help="compute every missing cell of the grid")
    lb_run.add_argument("--dry-run", action="store_true", help=DRY_RUN_HELP)
    lb_run.add_argument("--entries", type=Path, default=None, metavar="DIR",
                        help="published entries (e.g. leaderboards): a board with entries there is computed under "
                             "their protocol switches, as `build --out DIR` will build it (default: the track's "
                             "current protocol)")
    build = lb_sub.add_parser("build", parents=[common, grid_args], help="write entries from the store and render")
    build.add_argument("--out", type=Path, default=Path("leaderboards"), help="where entries and pages go")
    build.add_argument("--draft", action="store_true",
                       help="build from a tree with uncommitted changes; the entries and pages say 'draft'")

    lm = sub.add_parser("load-model", parents=[common],
                        help="load a published trained model by name, check its clean cell, optionally save it")
    lm.add_argument("board", help="a board name, e.g. moons-qnn-angle")
    lm.add_argument("defense", help="a defense on that board, e.g. noise_layer")
    lm.add_argument("--seed", type=_non_negative_int, default=0, help="the run seed")
    lm.add_argument("--published", type=Path, default=PUBLISHED, metavar="DIR", help="the published store")
    lm.add_argument("--entries", type=Path, default=Path("leaderboards"), metavar="DIR", help="the published entries")
    lm.add_argument("--data-dir", type=Path, default=None, help=data_help)
    lm.add_argument("--save", type=Path, default=None, metavar="FILE",
                    help="write the deployed model's state dict here, safetensors (default: not saved)")

    st = sub.add_parser("store", parents=[common], help="move results between a store and the published store")
    st_sub = st.add_subparsers(dest="action", parser_class=_Parser)
    for action, text in (("export", "add the store's trainings, weights and cells to the published store"),
                         ("import", "add the published store's records to the store")):
        sp = st_sub.add_parser(action, parents=[common], help=text)
        sp.add_argument("--store", type=Path, default=None, help=store_help)
        sp.add_argument("--published", type=Path, default=PUBLISHED, metavar="DIR", help="the published store")
        if action == "export":
            sp.add_argument("--commit", default=None, type=_commit,
                            help="the commit to record for cells that do not carry the one that computed them "
                                 "(default: none recorded)")
    render = lb_sub.add_parser("render", parents=[common], help="re-render Markdown and HTML from the entries")
    render.add_argument("--out", type=Path, default=Path("leaderboards"), help="the folder of the entries")

    rp = sub.add_parser("reproduce", parents=[common], help="run a seed paper's experiments; ours beside the paper's")
    rp.add_argument("paper", help="huang2023 or qnad2024")
    rp.add_argument("--only", action="append", metavar="EXPERIMENT",
                    help="run only these experiments, repeatable (default: all of the paper's)")
    rp.add_argument("--seeds", type=_positive_int, default=1, help="number of seeds")
    rp.add_argument("--epochs", type=_positive_int,
                    help="override the epochs, for smoke runs; marked in the report (default: the experiment's)")
    rp.add_argument("--n-test", type=_positive_int,
                    help="override n_test, for smoke runs; marked in the report (default: the experiment's)")
    rp.add_argument("--torch-device", metavar="NAME", default=None, help=TORCH_DEVICE_HELP)
    rp.add_argument("--data-dir", type=Path, default=None, help=data_help)
    rp.add_argument("--store", type=Path, default=None, help=store_help)
    rp.add_argument("--out", type=Path, default=Path("leaderboards/reproductions"), help="where the report goes")
    rp.add_argument("--dry-run", action="store_true", help=DRY_RUN_HELP)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``qbench`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    err = Console(stderr=True)
    out = Console()
    try:
        args = build_parser().parse_args(argv)
        if not args.command:
            raise UsageError("a command is required: evaluate, plugins or results (qbench --help)")
        if "QBENCH_CHECKPOINT_SECONDS" in os.environ and args.command in ("evaluate", "leaderboard", "reproduce", "verify", "sweep"):
            from qbench.contract.checkpoint import checkpoint_interval

            checkpoint_interval()  # a bad value is one line now, not a failed training per seed later
        from qbench.publishing.store_commands import STORE_COMMANDS

        if args.command in STORE_COMMANDS:  # these start without the runner, PennyLane or ART
            return STORE_COMMANDS[args.command](args, out, err)
        from qbench.commands import COMMANDS

        return COMMANDS[args.command](args, out, err)
    except QBenchError as exc:
        print(f"qbench: error: {exc}", file=sys.stderr)
        if debug:
            traceback.print_exc()
        return exc.exit_code
    except KeyboardInterrupt:
        print("qbench: interrupted; every finished cell is kept in the store", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug or an unexpected plugin failure: still one line by default
        print(f"qbench: error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", file=sys.stderr)
        if debug:
            traceback.print_exc()
        return 1


if __name__ == "__main__":
    sys.exit(main())
