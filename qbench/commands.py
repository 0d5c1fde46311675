"""What each ``qbench`` command does: evaluate, sweep, plugins, results, leaderboard, store, merge, verify,
reproduce, load-model. The parser, ``main``, the exit codes and the order of the checks are in
:mod:`qbench.cli`, which imports this module only once a command line has parsed: everything a run needs
(torch, PennyLane, ART, the runner) is imported from here.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import difflib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Sequence

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

import qbench
from qbench.contract.config import parse_assignments
from qbench.contract.dataset import DataSplit
from qbench.errors import ConfigError, StoreError, UsageError
from qbench.running.executor_spec import ExecutorSpec, executor_spec
from qbench.running.grid import BOARDS, add_probe, check_board_names
from qbench.running.planning import make_plan
from qbench.running.preflight import check_plugin_sources, describe, estimate, missing_work, plan_components
from qbench.contract.progress import Reporter, RichReporter
from qbench.registry import Registry, load_registry
from qbench.publishing.render_markdown import pct
from qbench.running.plan import Plan
from qbench.running.runner import Runner
from qbench.running.store import Store, default_store_path
from qbench.running.torch_device import torch_device_name
from qbench.hashing import config_hash
from qbench.contract.readout import readout_shots
from qbench.publishing.summary import add_paper_protocol, compare, summarize
from qbench.contract.tracks import DEFAULTS, QNN, TRACKS
from qbench.publishing.store_commands import STORE_COMMANDS, print_wide


def _registry(console: Console) -> Registry:
    registry = load_registry()
    for problem in registry.problems:
        print(f"qbench: warning: {problem.message}", file=sys.stderr)
    return registry


def _attack_options(items: list[str] | None) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for key, value in parse_assignments(items, "--attack-option").items():
        attack, dot, option = key.partition(".")
        if not dot or not option:
            raise ConfigError(f"--attack-option: expected ATTACK.KEY=VALUE, got {key}={value}")
        out.setdefault(attack, {})[option] = value
    return out


def _track_choice(args: argparse.Namespace, registry: Registry) -> tuple[str, str | None]:
    """The --track, or the one track the named dataset (or model, or defense) supports, or qnn; with the
    line that says so when that moved the run off the default track."""
    if args.track:
        return args.track, None
    for kind, name in (("dataset", args.dataset), ("model", args.model), ("defense", args.defense)):
        if name and name in registry.names(kind) and len(registry.get(kind, name).tracks) == 1:
            track = registry.get(kind, name).tracks[0]
            if track == QNN:
                return track, None
            defaults = DEFAULTS[track]
            return track, (
                f"qbench: {kind} {name!r} runs on the {track} track only: using --track {track} "
                f"(dataset {args.dataset or defaults.dataset}, model {args.model or defaults.model})"
            )
    return QNN, None


def _track(args: argparse.Namespace, registry: Registry) -> str:
    return _track_choice(args, registry)[0]


def _check_device(name: str | None, track: str) -> None:
    """A usage error for a PennyLane device that is not installed (checked by name, nothing is built)."""
    if name is None:
        return
    if track != QNN:
        raise UsageError(f"--device {name}: the {track} track runs no circuits (a PennyLane device is for the qnn track)")
    from importlib.metadata import entry_points

    installed = sorted({ep.name for ep in entry_points(group="pennylane.plugins")})
    if name in installed:
        return
    if not installed:
        raise UsageError(f"unknown PennyLane device {name!r}: no PennyLane devices are installed")
    close = difflib.get_close_matches(name, installed, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise UsageError(f"unknown PennyLane device {name!r}{hint} (installed: {', '.join(installed)})")


def _plan(args: argparse.Namespace, registry: Registry, defense_name: str, defense_options: dict) -> Plan:
    track = _track(args, registry)
    defaults = DEFAULTS[track]
    dataset = args.dataset or defaults.dataset
    attack_options = _attack_options(args.attack_option)
    if args.attacks:
        suite = [(n, {}) for n in dict.fromkeys(args.attacks)]
    else:
        # the track's suite, minus attacks whose plugin is not installed or that do not support the track
        suite = [(n, o) for n, o in defaults.attacks if n in registry.names("attack") and track in registry.get("attack", n).tracks]
    unknown_opts = set(attack_options) - {n for n, _ in suite}
    if unknown_opts:
        raise ConfigError(f"--attack-option names attack {sorted(unknown_opts)[0]!r}, which is not being run")
    epsilons = list(dict.fromkeys(args.epsilons or registry.get("dataset", dataset).epsilons or defaults.epsilons))
    plan = make_plan(
        registry, track,
        dataset=(dataset, parse_assignments(args.dataset_option, "--dataset-option")),
        model=(args.model or defaults.model, parse_assignments(args.model_option, "--model-option")),
        defense=(defense_name, defense_options),
        attacks=[(n, {**o, **attack_options.get(n, {})}) for n, o in suite],
        epsilons=epsilons, seeds=list(range(args.seeds)), epochs=args.epochs,
        n_eot=args.n_eot, n_repeat=args.n_repeat, n_test=args.n_test or defaults.n_test,
        quantum_device=args.quantum_device, shots=readout_shots(args.shots, defaults.shots),
        cascade_gates=defaults.cascade_gates, torch_device=torch_device_name(args.torch_device),
        attack_only_above_chance=True,
    )
    _check_device(args.quantum_device, track)
    return plan


def _executor_spec(args: argparse.Namespace, default: str) -> ExecutorSpec:
    return executor_spec(args.executor, args.workers, args.scheduler, args.retries, default, args.threads)


def _data_dir(args: argparse.Namespace) -> Path | None:
    if args.data_dir is not None:
        if not args.data_dir.is_dir():
            raise UsageError(f"--data-dir {args.data_dir} is not a directory")
        return args.data_dir
    env = os.environ.get("QBENCH_DATA")
    return Path(env) if env else None


def _folder(path: Path, option: str) -> Path:
    if not path.is_dir():
        raise UsageError(f"{option} {path} is not a directory")
    return path


def _store_path(args: argparse.Namespace) -> Path:
    return Path(args.store or default_store_path()).expanduser()


def _reporter(args: argparse.Namespace, err: Console) -> Reporter:
    return RichReporter(err) if err.is_terminal and not args.json else Reporter()


class _Datasets:
    """Each dataset's split, loaded once and before the store is opened, so that a missing or corrupt data
    file is refused before anything is stored; runners of this command read the splits from here."""

    def __init__(self, data_dir: Path | None, reporter: Reporter, store_path: Path) -> None:
        # the runner's own loading (context, plugin-error wrapping); the cache folder is the store's
        self._loader = Runner(None, data_dir=data_dir, reporter=reporter,  # type: ignore[arg-type]
                              cache_dir=store_path.with_name(store_path.name + ".artifacts") / "cache")
        self._loaded: dict[str, DataSplit] = {}

    def __call__(self, dataset) -> DataSplit:
        key = config_hash([dataset.name, dataset.version, dataset.config_dict()])
        if key not in self._loaded:
            self._loaded[key] = self._loader.load_data(dataset)
        return self._loaded[key]


class _Runner(Runner):
    """A runner that takes its datasets from a :class:`_Datasets` (loaded before the store opened)."""

    def __init__(self, store: Store, datasets: _Datasets, **kwargs) -> None:
        super().__init__(store, **kwargs)
        self._datasets = datasets

    def load_data(self, dataset) -> DataSplit:
        return self._datasets(dataset)


@contextlib.contextmanager
def _executor_and_store(spec: ExecutorSpec, store_path: Path, create: bool = True):
    """The executor, then the store: a remote Dask scheduler is reached (and its workers counted) before the
    store is opened, so an unreachable one is refused with the store untouched."""
    with spec.create() as executor:
        if spec.kind == "dask" and spec.scheduler is not None:
            executor.client  # noqa: B018 (connects)
        with Store.open(store_path, create=create) as store:
            yield executor, store


def _preflight(store: Store, jobs: list[tuple[Plan, DataSplit]], workers: int = 1, notices: Sequence[str] = (),
               record: bool = True) -> None:
    """Before a run, on stderr: how the track was chosen, plugins edited without a new version, and what
    will be computed at what estimated cost (``record``: note the plugins' source hashes in the store)."""
    lines = [n for n in notices if n]
    lines += check_plugin_sources(store, plan_components(plan for plan, _ in jobs), record=record)
    work = missing_work(store, jobs)
    lines += describe(work, estimate(store, work), workers)
    for line in lines:
        print(line, file=sys.stderr)


def _dry_run(args: argparse.Namespace, jobs: list[tuple[Plan, DataSplit]], workers: int = 1,
             notices: Sequence[str] = ()) -> int:
    """``--dry-run``: the preflight lines against the store as it is (an absent store is empty), nothing
    written."""
    if getattr(args, "published", None) is not None:
        raise UsageError("--dry-run does not read --published: run `qbench store import` first, or leave it out")
    path = _store_path(args)
    with contextlib.ExitStack() as stack:
        if path.exists():
            store = stack.enter_context(Store.open(path, create=False))
        else:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="qbench-dry-run-"))
            store = stack.enter_context(Store.open(Path(folder) / "empty.sqlite"))
        _preflight(store, jobs, workers, notices, record=False)
    return 0


def cmd_evaluate(args: argparse.Namespace, out: Console, err: Console) -> int:
    """``qbench evaluate``: the defense and (unless --no-baseline) the undefended model, same protocol."""
    registry = _registry(err)
    track, notice = _track_choice(args, registry)
    plans = [_plan(args, registry, args.defense, parse_assignments(args.defense_option, "--defense-option"))]
    if not args.no_baseline:
        for other in type(plans[0].defense).compare_with:
            if other in registry.names("defense") and track in registry.get("defense", other).tracks:
                plans.append(_plan(args, registry, other, {}))
        if args.defense != "none":
            plans.append(_plan(args, registry, "none", {}))
    data_dir = _data_dir(args)
    spec = _executor_spec(args, "inprocess")
    reporter = _reporter(args, err)
    datasets = _Datasets(data_dir, reporter, _store_path(args))
    data = datasets(plans[0].dataset)
    for plan in plans:
        add_probe(plan, data, registry)
    if args.dry_run:
        return _dry_run(args, [(plan, data) for plan in plans], spec.workers, [notice])
    with _executor_and_store(spec, _store_path(args)) as (executor, store):
        _preflight(store, [(plan, data) for plan in plans], executor.workers, [notice])
        runner = _Runner(store, datasets, data_dir=data_dir, reporter=reporter, executor=executor)
        summaries = [summarize(runner.run(plan, data)) for plan in plans]
    for summary, plan in zip(summaries, plans):
        summary.pop("per_example", None)
        add_paper_protocol(summary, DEFAULTS[summary["track"]].paper_protocol, plan.epsilons[0])
    undefended = summaries[-1] if len(summaries) > 1 and summaries[-1]["defense"]["name"] == "none" else None
    if undefended is not None:
        for summary in summaries[:-1]:
            compare(summary, undefended)
    report = {"qbench": qbench.__version__, "store": str(store.path), "defense": summaries[0]}
    report["comparisons"] = summaries[1:-1] if undefended is not None else summaries[1:]
    if undefended is not None:
        report["undefended"] = undefended
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_evaluation(out, summaries)
    failed = [a for s in summaries for a in s["attacks"] if a["status"] == "failed"]
    for row in failed:
        print(f"qbench: error: {row['reason']}", file=sys.stderr)
    return 1 if failed else 0


def _fmt(est: dict | None) -> str:
    return pct(est, unit="%")


def _print_evaluation(out: Console, summaries: list[dict]) -> None:
    first = summaries[0]
    title = (
        f"{first['track']} · {first['dataset']['name']} · {first['model']['name']} · "
        f"seeds {len(first['seeds'])} · n_test {first['n_test']}"
    )
    table = Table(title=title)
    table.add_column("accuracy (mean ± std [95% CI])")
    for s in summaries:
        label = s["defense"]["name"] + (" (undefended)" if s["defense"]["name"] == "none" else "")
        table.add_column(label, justify="right")
    table.add_row("clean", *[_fmt(s["clean"]) for s in summaries])
    staged = False
    for i, row in enumerate(first["attacks"]):
        cells = []
        for s in summaries:
            r = s["attacks"][i]
            cell = (_fmt(r["robust"]) if r["status"] == "ok" else "not run (clean at chance)" if r["status"] == "not-run"
                    else f"{r['status']}: {r.get('reason', '')}")
            if r["status"] == "ok" and r.get("cascaded") and r.get("attacked") is not None:
                cell += f" (on {r['attacked']:.0%})"
            cells.append(cell)
        label = f"{row['attack']} ε={row['epsilon']:g}"
        if any(s["attacks"][i].get("cascaded") for s in summaries):
            label += " †"
            staged = True
        table.add_row(escape(label), *[escape(c) for c in cells])
    measured = next((s for s in summaries if s["worst_case"]), first)  # an entry at chance has no worst case
    for i, row in enumerate(measured["worst_case"]):
        table.add_row(f"[bold]worst case ε={row['epsilon']:g}[/bold]",
                      *[_fmt(s["worst_case"][i]["robust"]) if s["worst_case"] else "—" for s in summaries])
    for i, row in enumerate(measured["worst_case"]):
        cells = []
        for s in summaries:
            improvements = s.get("relative_improvement") or []
            value = improvements[i]["relative_improvement_percent"] if i < len(improvements) else None
            cells.append("—" if value is None else f"{value:+.0f}%")
        if any(c != "—" for c in cells):
            table.add_row(f"vs undefended, worst case ε={row['epsilon']:g}", *cells)
    if first.get("paper_protocol"):
        p = first["paper_protocol"]
        table.add_row(escape(f"paper protocol ({p['attack']} ε={p['epsilon']:g})"), *[_fmt((s.get("paper_protocol") or {}).get("robust")) for s in summaries])
    out.print(table)
    if staged:
        out.print("† a stage of the cascade (docs/protocol.md): run only on the examples the gates left standing (the "
                  "share in brackets); the others keep the gates' worst point. Not the attack's standalone accuracy.",
                  highlight=False, markup=False)
    for s in summaries:
        if s["flags"]["unreliable"]:
            out.print(f"[bold red]{s['defense']['name']}: UNRELIABLE[/bold red]")
            for reason in s["flags"]["reasons"]:
                out.print(f"  - {reason}", highlight=False, markup=False)
    cost = first["training"].get("relative_cost")
    if cost is not None:
        out.print(f"training time relative to standard training: {cost:.2f}x")
    info = [d for d in first["training"]["defense_info"] if d]
    if info:
        out.print(f"defense details (per seed): {json.dumps(info)}", highlight=False, markup=False)
    if first["data"]["notes"]:
        out.print(f"data: {first['data']['notes']}", highlight=False, markup=False)


def _version_text(item: dict) -> str:
    """A component's version, with the versions it has on particular tracks: ``2 (qnn: 3)``."""
    per_track = item.get("track_versions") or {}
    return item["version"] + (f" ({', '.join(f'{t}: {v}' for t, v in per_track.items())})" if per_track else "")


def cmd_plugins(args: argparse.Namespace, out: Console, err: Console) -> int:
    """``qbench plugins``: every registered component, one table per kind: name, tracks, version, description.

    Names never wrap or get cut; descriptions wrap. Components of other distributions than qbench say which
    in a column of their own; ``--wide`` is one table with every column on one line per component.
    """
    registry = _registry(err)
    items = [r.to_dict() for r in registry.all() if args.kind in (None, r.kind)]
    if args.json:
        print(json.dumps({"components": items, "problems": [p.message for p in registry.problems]}, indent=2))
        return 0
    if args.wide:
        table = Table(title="qbench plugins")
        for col in ("kind", "name", "version", "tracks", "plugin", "distribution", "description"):
            table.add_column(col, no_wrap=True)
        for item in items:
            dist = f"{item['distribution']} {item['distribution_version']}".strip()
            table.add_row(*[escape(v) for v in (item["kind"], item["name"], _version_text(item), ", ".join(item["tracks"]),
                                                 item["plugin"], dist, item["description"])])
        print_wide(out, table)
        return 0
    dists = sorted({f"{i['distribution']} {i['distribution_version']}".strip() for i in items})
    own = f"qbench {qbench.__version__}"
    for kind in ("dataset", "model", "defense", "attack"):
        rows = [i for i in items if i["kind"] == kind]
        if not rows:
            continue
        third_party = any(i["distribution"] != "qbench" for i in rows)
        table = Table(title=f"{kind}s ({len(rows)})", title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1),
                      pad_edge=False, show_edge=False)
        table.add_column("name", no_wrap=True, style="bold")
        table.add_column("tracks", no_wrap=True)
        table.add_column("v", no_wrap=True, justify="right")
        if third_party:
            table.add_column("from", no_wrap=True)
        table.add_column("description", ratio=1, overflow="fold")
        for i in rows:
            tracks = "both" if set(i["tracks"]) == set(TRACKS) else ", ".join(i["tracks"])
            extra = [escape(i["distribution"] if i["distribution"] != "qbench" else "qbench")] if third_party else []
            table.add_row(escape(i["name"]), tracks, escape(_version_text(i)), *extra, escape(i["description"]))
        out.print(table)
    if items:
        out.print(f"tracks: both = {', '.join(TRACKS)}; v = the component's version (part of every cache key; "
                  "'2 (qnn: 3)': version 3 on the qnn track); "
                  f"from: {', '.join(dists) if dists != [own] else own}. qbench plugins --wide or --json for every "
                  "field.", highlight=False)
    return 0


def cmd_leaderboard(args: argparse.Namespace, out: Console, err: Console) -> int:
    """``qbench leaderboard run|build|render``."""
    from qbench.publishing import leaderboard
    if args.action is None:
        raise UsageError("leaderboard needs an action: run, build or render")
    if args.action == "render":
        if args.out.exists() and not args.out.is_dir():
            raise UsageError(f"--out {args.out} is not a directory")
        written = leaderboard.render(args.out)
        if not written:
            raise UsageError(f"no entries under {args.out} (qbench leaderboard build writes them)")
        print(json.dumps([str(p) for p in written]) if args.json else f"rendered {len(written)} pages under {args.out}")
        return 0
    from qbench.running.provenance import git_commit
    from qbench.publishing.published_store import export_store, import_store

    store_path = _store_path(args)
    create = args.action == "run" or args.published is not None
    if not create and not store_path.exists():
        raise StoreError(f"no qbench store at {store_path}")
    build_commit = None
    if args.action == "build":
        if args.out.exists() and not args.out.is_dir():
            raise UsageError(f"--out {args.out} is not a directory")
        # the publication's checkout: the git work tree holding --out (entries and pages are committed there)
        root = next((p for p in [args.out.resolve(), *args.out.resolve().parents] if p.exists()), Path.cwd())
        build_commit = git_commit(root)
        if build_commit and build_commit.endswith("+dirty") and not args.draft:
            raise UsageError(f"the tree at {root} has uncommitted changes: commit them first (entries record the "
                             "commit they were built from), or build a draft with --draft")
    if args.published is not None and not args.published.is_dir():
        raise UsageError(f"--published {args.published} is not a directory")
    if getattr(args, "entries", None) is not None and not args.entries.is_dir():
        raise UsageError(f"--entries {args.entries} is not a directory")
    registry = _registry(err)
    reporter = _reporter(args, err)
    tracks = args.tracks or list(TRACKS)
    if args.boards:  # --board names boards of any selected track; a track with none of them is left out
        check_board_names(tracks, args.boards)
        tracks = [t for t in tracks if any(b.name in args.boards for b in BOARDS[t])]
    spec = _executor_spec(args, "pool") if args.action == "run" else executor_spec(None, None, None)
    data_dir = _data_dir(args)
    options = _grid_options(args)
    # every board, defense and data file is checked before the store is opened
    datasets = _Datasets(data_dir, reporter, store_path)
    jobs = []
    current = dataclasses.replace(options, follow=None)
    for track in tracks:
        for _board, plans in options.plans(registry, track):
            switches = options.switches(track, _board.name)
            if switches != current.switches(track, _board.name):
                print(f"qbench: {_board.name}: following its published entries' protocol ({leaderboard.describe_switches(switches)}; "
                      "--current-protocol for the track's)", file=sys.stderr)
            data = datasets(plans[0].dataset)
            for plan in plans:
                add_probe(plan, data, registry)
                jobs.append((plan, data))
    if args.action == "run" and args.dry_run:
        return _dry_run(args, jobs, spec.workers)
    with _executor_and_store(spec, store_path, create) as (executor, store):
        log = lambda m: print(m, file=sys.stderr)  # noqa: E731
        runner = _Runner(store, datasets, data_dir=data_dir, reporter=reporter, compute=args.action == "run",
                         executor=executor, log=log)
        if args.published is not None:
            moved = import_store(args.published, store)
            log(f"read {moved.cells_added} cells and {moved.trainings_added} trainings from {args.published}"
                + (f" ({moved.checkpoints_added} checkpoints of trainings and cells under way)" if moved.checkpoints_added else ""))
        if args.action == "run":
            _preflight(store, jobs, executor.workers)
        try:
            status = _grid_actions(args, out, registry, runner, tracks, options, log, build_commit)
        finally:
            if args.published is not None and args.action == "run":
                moved = export_store(store, args.published)
                log(f"added {moved.cells_added} cells, {moved.trainings_added} trainings to {args.published}"
                    + (f" ({moved.checkpoints_added} checkpoints of trainings and cells under way)" if moved.checkpoints_added else ""))
    if args.action == "build":
        leaderboard.render(args.out)
    return status


def _grid_options(args: argparse.Namespace):
    from qbench.publishing import leaderboard
    follow = None if args.current_protocol else (args.out if args.action == "build" else args.entries)
    return leaderboard.GridOptions(
        boards=args.boards, defenses=args.defenses, n_eot=args.n_eot,
        seeds=sorted(set(args.seed_list)) if args.seed_list else list(range(args.seeds)),
        n_repeat=args.n_repeat, epochs=args.epochs, n_test=args.n_test, sweep=not args.no_sweep, shots=args.shots,
        follow=follow if follow is not None and Path(follow).is_dir() else None,
        torch_device=torch_device_name(args.torch_device),
    )


def _grid_actions(args, out, registry, runner, tracks, options, log, build_commit) -> int:
    """The grid's run or build over the selected tracks; 1 when a part failed."""
    from qbench.publishing import leaderboard
    status = 0
    for track in tracks:
        if args.action == "run":
            report = leaderboard.run_grid(registry, runner, track, options, log)
        else:
            report = leaderboard.build(registry, runner, args.out, track, options, build_commit=build_commit,
                                       draft=bool(build_commit and build_commit.endswith("+dirty")))
        status = 1 if report.failed else status
        if args.json:
            print(json.dumps({"track": track, **{k: [str(v) for v in vals] for k, vals in vars(report).items()}}))
        else:
            out.print(f"{track}: {len(report.done)} done, {len(report.failed)} failed, {len(report.skipped)} skipped")
            for line in report.failed + report.skipped:
                out.print(f"  {line}", markup=False, highlight=False)
    return status


def cmd_load_model(args: argparse.Namespace, out: Console, err: Console) -> int:
    """``qbench load-model BOARD DEFENSE``: the published model, its clean cell recomputed against the store."""
    import numpy as np
    from safetensors.torch import save_file

    from qbench.publishing.loading import clean_bits, load_trained
    from qbench.publishing.published_store import published_cells

    _folder(args.published, "--published")
    _folder(args.entries, "--entries")
    if args.save is not None and (args.save.is_dir() or not args.save.parent.is_dir()):
        raise UsageError(f"--save {args.save}: " + ("is a directory" if args.save.is_dir() else
                                                    f"its folder {args.save.parent} does not exist"))
    trained = load_trained(args.board, args.defense, args.seed, args.published, args.entries, _data_dir(args))
    bits = clean_bits(trained)
    from qbench.running.scoring import expected_correct

    clean_key = config_hash(trained.plan.cell_spec(trained.train_key, None, None, "clean"))
    committed = published_cells(args.published).get(clean_key)
    same = committed is not None and committed.correct is not None and np.array_equal(committed.correct, bits)
    if args.save:
        state = {k: v.detach().contiguous() for k, v in trained.module.state_dict().items()}
        save_file(state, str(args.save))
    report = {
        "board": args.board, "defense": args.defense, "seed": args.seed, "module": type(trained.module).__name__,
        "parameters": int(sum(p.numel() for p in trained.module.parameters())),
        "clean_accuracy": float(expected_correct(bits).mean()), "matches_published_clean_cell": same,
        "saved": str(args.save) if args.save else None,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        out.print(f"{args.board}/{args.defense} seed {args.seed}: {report['module']}, {report['parameters']} parameters; "
                  f"clean accuracy {100 * report['clean_accuracy']:.1f}%, "
                  + ("identical to the published clean cell" if same else "DIFFERENT from the published clean cell"),
                  markup=False, highlight=False, soft_wrap=True)
    return 0 if same else 1


def cmd_verify(args: argparse.Namespace, out: Console, err: Console) -> int:
    """``qbench verify ENTRY``: exit 0 when every re-run cell agrees, 1 when one does not."""
    from qbench.publishing import entry as entry_mod
    from qbench.publishing.verify import verify

    entry = entry_mod.load(args.entry)
    _folder(args.published, "--published")
    data_dir = _data_dir(args)
    registry = _registry(err)
    reporter = _reporter(args, err)
    report = verify(registry, entry, str(args.entry), args.sample, data_dir, reporter,
                    published=args.published, seed=args.seed, recompute_only=args.recompute_only)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        if report.recomputed:
            verdict = "every number recomputed exactly" if not report.mismatches else \
                f"{len(report.mismatches)} fields differ from the recomputation"
            out.print(f"recomputed from {args.published}: {verdict}", markup=False, highlight=False, soft_wrap=True)
            for line in report.mismatches[:20]:
                out.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
        if report.sample_seed is not None:
            out.print(f"re-running cells sampled with --seed {report.sample_seed}", markup=False, highlight=False)
        for check in report.checks:
            out.print(check.describe(), markup=False, highlight=False, soft_wrap=True)
        if report.checks:
            detail = (f"{sum(c.agrees for c in report.checks)}/{len(report.checks)} cells agree, "
                      f"{report.identical} identical; largest difference "
                      f"{100 * report.largest_difference:.1f} points")
        else:
            detail = "recomputed from the published bits; no cell re-run"
        out.print(f"{args.entry}: {'verified' if report.ok else 'NOT verified'} ({detail})",
                  markup=False, soft_wrap=True)
    if not report.ok:
        first = report.mismatches[0] if report.mismatches else next(c for c in report.checks if not c.agrees).describe()
        print(f"qbench: error: {args.entry}: {first}", file=sys.stderr)
    return 0 if report.ok else 1


def cmd_sweep(args: argparse.Namespace, out: Console, err: Console) -> int:
    """``qbench sweep``: one defense option over a list of values, every attack's accuracy per value.

    These are curves on the test split (the seed papers' figures), for reading, not for choosing a value:
    a defense that tunes itself (qnad's level) does so on validation data.
    """
    registry = _registry(err)
    values = [v.strip() for v in args.values.split(",") if v.strip()]
    if not values:
        raise UsageError("--values needs at least one value")
    base = parse_assignments(args.defense_option, "--defense-option")
    notice = _track_choice(args, registry)[1]
    plans = [_plan(args, registry, args.defense, {**base, args.option: v}) for v in values]
    spec = _executor_spec(args, "inprocess")
    data_dir = _data_dir(args)
    reporter = _reporter(args, err)
    datasets = _Datasets(data_dir, reporter, _store_path(args))
    data = datasets(plans[0].dataset)
    if args.dry_run:
        return _dry_run(args, [(plan, data) for plan in plans], spec.workers, [notice])
    with _executor_and_store(spec, _store_path(args)) as (executor, store):
        _preflight(store, [(plan, data) for plan in plans], executor.workers, [notice])
        runner = _Runner(store, datasets, data_dir=data_dir, reporter=reporter, executor=executor)
        rows = []
        for value, plan in zip(values, plans):
            summary = summarize(runner.run(plan, data))
            rows.append({"value": value, "clean": summary["clean"], "attacks": summary["attacks"],
                         "worst_case": summary["worst_case"], "defense_info": summary["training"]["defense_info"]})
    if args.json:
        print(json.dumps({"defense": args.defense, "option": args.option, "rows": rows}, indent=2))
        return 0
    table = Table(title=f"{args.defense}: accuracy vs {args.option} (test split)")
    table.add_column(args.option)
    table.add_column("clean", justify="right")
    labels = [f"{a['attack']} ε={a['epsilon']:g}" for a in rows[0]["attacks"]]
    for label in labels:
        table.add_column(escape(label), justify="right")
    table.add_column("worst case", justify="right")
    for row in rows:
        cells = [_fmt(a["robust"]) if a["status"] == "ok" else a["status"] for a in row["attacks"]]
        table.add_row(escape(row["value"]), _fmt(row["clean"]), *cells, _fmt(row["worst_case"][0]["robust"]))
    out.print(table)
    return 0


def cmd_reproduce(args: argparse.Namespace, out: Console, err: Console) -> int:
    """``qbench reproduce``: a seed paper's experiments under its protocol, written as a report."""
    from qbench.reproductions import get
    from qbench.reproductions import report as reproduction_report

    reproduction = get(args.paper)
    experiments = reproduction.select(args.only)
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out} is not a directory")
    registry = _registry(err)
    reporter = _reporter(args, err)
    data_dir = _data_dir(args)
    seeds = list(range(args.seeds))
    torch_device = torch_device_name(args.torch_device)
    # every setting's plan and data are checked before the store is opened
    datasets = _Datasets(data_dir, reporter, _store_path(args))
    jobs = [(plan, datasets(plan.dataset)) for experiment in experiments
            for _setting, plan in experiment.plans(registry, seeds, epochs=args.epochs, n_test=args.n_test,
                                                   torch_device=torch_device)]
    if args.dry_run:
        return _dry_run(args, jobs)
    results = []
    with Store.open(_store_path(args)) as store:
        _preflight(store, jobs)
        runner = _Runner(store, datasets, data_dir=data_dir, reporter=reporter)
        for experiment in experiments:
            if not args.json:
                err.print(f"{reproduction.name}: {experiment.id} ({len(experiment.settings)} settings)")
            results.append(reproduction_report.run_experiment(
                experiment, registry, runner, seeds, epochs=args.epochs, n_test=args.n_test, torch_device=torch_device,
            ))
    command = "qbench reproduce " + " ".join(sys.argv[2:] if sys.argv[1:2] == ["reproduce"] else [args.paper])
    report = reproduction_report.build_report(reproduction, results, command)
    json_path, page = reproduction_report.write(report, args.out)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        out.print(reproduction_report.markdown({**report, "experiments": results}), markup=False, highlight=False,
                  soft_wrap=True)
        out.print(f"wrote {json_path} and {page}")
    return 0


COMMANDS = {"reproduce": cmd_reproduce, "evaluate": cmd_evaluate, "sweep": cmd_sweep, "verify": cmd_verify, "plugins": cmd_plugins, "leaderboard": cmd_leaderboard, "load-model": cmd_load_model, **STORE_COMMANDS}
