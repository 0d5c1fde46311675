"""A corpus of bad inputs: each is one clear line on stderr, the documented exit code, no traceback without
``--debug``, and the result store exactly as it was (its bytes hashed before and after).

The CLI runs in this process (``qbench.cli.main``), so the corpus costs milliseconds a case;
``tests/test_cli.py`` runs a few of the same kind through the console script. ``$QBENCH_STORE`` points
at a populated store for every case, so commands that take no ``--store`` are checked against it too.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import sqlite3
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import fault_plugins
import qbench
import qbench.cli
import qbench.commands
import qbench.running.dask_executor
import qbench.plugins
from qbench.registry import load_registry
from qbench.running.store import CellRecord, Store, TrainingRecord

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--epochs", "1", "--seeds", "1", "--n-test", "10", "--attack", "fgsm"]


@dataclass(frozen=True)
class Case:
    id: str
    #: the command line; ``{d}`` is the folder of prepared files, ``{store}`` the populated store
    args: tuple[str, ...]
    code: int
    #: a fragment of the one line on stderr
    message: str
    #: extra plugins registered next to the installed ones (see ``PLUGINS``), or another tweak of the set-up
    plugin: str | None = None


def case(id, args, code, message, plugin=None):
    return Case(id, tuple(args.split()) if isinstance(args, str) else tuple(args), code, message, plugin)


EVAL = "evaluate --defense none " + " ".join(FAST) + " --store {store}"
GRID = "leaderboard run --track qnn --board moons-qnn-angle --defense none --seeds 1 --epochs 1 --n-test 10 --store {store}"

CASES = [
    # unknown names, with did-you-mean where a name is close
    case("unknown-model", EVAL + " --model qnm", 2, "unknown model 'qnm'; did you mean 'qnn'?"),
    case("unknown-attack-close", EVAL.replace("fgsm", "apgd-cee"), 2, "unknown attack 'apgd-cee'; did you mean 'apgd-ce'?"),
    case("unknown-grid-defense", GRID.replace("none", "gaussian_augmentaton"), 2,
         "unknown defense 'gaussian_augmentaton'; did you mean 'gaussian_augmentation'?"),
    case("unknown-board", GRID.replace("moons-qnn-angle", "moons-qnn-angel"), 2, "unknown board 'moons-qnn-angel' on track qnn; did you mean 'moons-qnn-angle'?"),
    case("unknown-board-any-track", "leaderboard run --board mnist-lenett --dry-run --store {store}", 2,
         "unknown board 'mnist-lenett' on tracks qnn, mapped-dnn; did you mean 'mnist-lenet'?"),
    case("board-of-another-track", "leaderboard run --track qnn --board mnist-lenet --dry-run --store {store}", 2,
         "unknown board 'mnist-lenet' on track qnn"),
    case("unknown-defense-option", EVAL.replace("--defense none", "--defense gaussian_augmentation")
         + " --defense-option sigmaa=0.1", 2, "unknown option 'sigmaa'"),
    case("unknown-attack-option", EVAL + " --attack-option fgsm.stepz=3", 2, "unknown option 'stepz'"),
    case("unknown-command", "leaderboard publish", 2, "invalid choice: 'publish'"),
    case("unknown-executor", GRID + " --executor dusk", 2, "invalid choice: 'dusk'"),
    case("unknown-plugin-kind", "plugins --kind defence", 2, "invalid choice: 'defence'"),
    case("unknown-track", GRID.replace("--track qnn", "--track quantum"), 2, "invalid choice: 'quantum'"),
    # bad option values
    case("epsilon-nan", EVAL + " --epsilon nan", 2, "epsilon must be a finite number >= 0"),
    case("epsilon-inf", EVAL + " --epsilon inf", 2, "epsilon must be a finite number >= 0"),
    case("epsilon-text", EVAL + " --epsilon big", 2, "epsilon must be a number, got 'big'"),
    case("negative-epochs", EVAL + " --epochs -3", 2, "expected a positive integer, got '-3'"),
    case("zero-n-test", EVAL + " --n-test 0", 2, "expected a positive integer, got '0'"),
    case("zero-eot", GRID + " --n-eot 0", 2, "expected a positive integer, got '0'"),
    case("zero-shots", EVAL + " --shots 0", 2, "expected a positive integer, got '0'"),
    case("text-shots", GRID + " --shots many", 2, "expected a positive integer, got 'many'"),
    case("zero-hardware-shots", "evaluate --track mapped-dnn --defense intrinsic_noise --defense-option shots=0"
         " --store {store}", 2, "shots >= 1"),
    case("bad-bool", EVAL.replace("--defense none", "--defense noise_layer") + " --defense-option combined_loss=maybe", 2,
         "must be true or false"),
    case("attack-option-not-run", EVAL + " --attack-option pgd.steps=3", 2, "names attack 'pgd', which is not being run"),
    case("defense-wrong-track", "evaluate --track mapped-dnn --defense noise_layer --store {store}", 2,
         "defense 'noise_layer' does not support track 'mapped-dnn'"),
    case("dataset-wrong-track", EVAL + " --track qnn --dataset mnist", 2, "dataset 'mnist' does not support track 'qnn'"),
    case("attack-wrong-track", "evaluate --track mapped-dnn --defense none --attack transfer-fnn --store {store}", 2,
         "attack 'transfer-fnn' does not support track 'mapped-dnn'"),
    case("zero-workers", GRID + " --workers 0", 2, "expected a positive integer, got '0'"),
    case("negative-retries", GRID + " --retries -1", 2, "expected an integer >= 0, got '-1'"),
    case("workers-in-process", EVAL + " --executor inprocess --workers 2", 2, "--workers needs --executor pool or dask"),
    case("scheduler-not-an-address", GRID + " --scheduler localhost", 2, "is not a scheduler address"),
    case("scheduler-with-pool", GRID + " --executor pool --scheduler tcp://127.0.0.1:8786", 2,
         "--scheduler needs --executor dask"),
    case("scheduler-unreachable", GRID + " --scheduler tcp://127.0.0.1:9", 2,
         "cannot reach the Dask scheduler at tcp://127.0.0.1:9", plugin="impatient"),
    case("leaderboard-no-action", "leaderboard", 2, "leaderboard needs an action"),
    # missing and corrupt data files
    case("mnist-missing", EVAL + " --dataset mnist-1v9 --data-dir {d}/empty", 2,
         "train-images-idx3-ubyte[.gz] not found in data directory"),
    case("mnist-no-data-dir", EVAL + " --dataset mnist-1v9", 2, "MNIST needs a data directory"),
    case("idx-truncated", EVAL + " --dataset mnist-1v9 --data-dir {d}/idx-truncated", 2,
         "train-images-idx3-ubyte in {d}/idx-truncated: is truncated"),
    case("idx-wrong-magic", EVAL + " --dataset mnist-1v9 --data-dir {d}/idx-magic", 2,
         "train-labels-idx1-ubyte in {d}/idx-magic: has magic number 2051, expected 2049"),
    case("idx-not-gzip", "evaluate --track mapped-dnn --defense none --dataset mnist --data-dir {d}/idx-gz --store {store}",
         2, "train-images-idx3-ubyte.gz in {d}/idx-gz: is not a readable gzip file"),
    case("idx-empty", EVAL + " --dataset mnist-1v9 --data-dir {d}/idx-empty", 2, "train-images-idx3-ubyte in {d}/idx-empty: is empty"),
    case("cifar10-record-size", "evaluate --track mapped-dnn --defense none --dataset cifar10 --model alexnet "
         "--data-dir {d}/cifar10 --store {store}", 2, "data_batch_1.bin in {d}/cifar10/cifar-10-batches-bin"),
    case("cifar100-record-size", "evaluate --track mapped-dnn --defense none --dataset cifar100 --model vgg16 "
         "--data-dir {d}/cifar100 --store {store}", 2, "train.bin in {d}/cifar100/cifar-100-binary"),
    case("cifar10-missing-test", "evaluate --track mapped-dnn --defense none --dataset cifar10 --model alexnet "
         "--data-dir {d}/cifar10-no-test --store {store}", 2, "test_batch.bin not found"),
    case("data-dir-is-a-file", EVAL + " --data-dir {d}/bad-entry.json", 2, "is not a directory"),
    # stores that are not qbench stores
    case("store-corrupt", EVAL.replace("{store}", "{d}/corrupt.sqlite"), 2, "not a qbench store (not an SQLite file)"),
    case("store-foreign", EVAL.replace("{store}", "{d}/foreign.sqlite"), 2, "is an SQLite file but not a qbench store"),
    case("store-newer", EVAL.replace("{store}", "{d}/newer.sqlite"), 2, "was written by a newer qbench"),
    case("store-directory", EVAL.replace("{store}", "{d}/empty"), 2, "is a directory, not a qbench store file"),
    case("store-truncated-sqlite", "results --store {d}/truncated.sqlite", 2, "not a usable qbench store"),
    case("results-foreign", "results --store {d}/foreign.sqlite", 2, "is an SQLite file but not a qbench store"),
    case("build-without-store", "leaderboard build --track qnn --board moons-qnn-angle --store {d}/absent.sqlite "
         "--out {d}/out", 2, "no qbench store at {d}/absent.sqlite"),
    # leaderboard entries
    case("entry-schema", "verify {d}/bad-entry.json", 2, "fails the entry schema"),
    case("entry-not-json", "verify {d}/not-json.json", 2, "is not valid JSON"),
    case("entry-missing", "verify {d}/absent.json", 2, "no entry file at {d}/absent.json"),
    case("render-bad-entry", "leaderboard render --out {d}/lb", 2, "fails the entry schema"),
    # plugins that break while loading or registering: reported by name and skipped, the rest load
    case("plugin-raises-registering-datasets", "plugins --kind defense", 0,
         "warning: plugin 'broken' raised in register_datasets: RuntimeError: boom; skipped", plugin="register_datasets"),
    case("plugin-raises-registering-models", "plugins --kind defense", 0,
         "warning: plugin 'broken' raised in register_models: RuntimeError: boom; skipped", plugin="register_models"),
    case("plugin-raises-registering-defenses", "plugins --kind defense", 0,
         "warning: plugin 'broken' raised in register_defenses: RuntimeError: boom; skipped", plugin="register_defenses"),
    case("plugin-raises-registering-attacks", "plugins --kind defense", 0,
         "warning: plugin 'broken' raised in register_attacks: RuntimeError: boom; skipped", plugin="register_attacks"),
    case("plugin-registers-non-component", "plugins --kind model", 0,
         "registered <class 'object'> as a model, but it is not a qbench.Model", plugin="non-component"),
    case("plugin-fails-to-import", "plugins --kind defense", 0,
         "warning: plugin 'broken' failed to import: ModuleNotFoundError", plugin="import"),
    case("plugin-name-clash", EVAL, 2, "defense name 'none' is registered by both plugin 'broken' ((direct)) and plugin 'none' (qbench)",
         plugin="clash"),
    case("dataset-load-raises", EVAL + " --dataset fault_load_raises", 2,
         "dataset 'fault_load_raises' raised in load: OSError: disk on fire", plugin="faults"),
]


def _raising(hook: str):
    class Broken:
        pass

    def raises(self, register):
        raise RuntimeError("boom")

    setattr(Broken, hook, qbench.hookimpl(raises))
    return Broken()


class _NonComponent:
    @qbench.hookimpl
    def register_models(self, register):
        register(object)


class _Clash:
    @qbench.hookimpl
    def register_defenses(self, register):
        class Other(qbench.Defense):
            name, description, version, tracks = "none", "clashes with the built-in", "1", ("qnn",)

        register(Other)


def _idx(array: np.ndarray, magic: int | None = None) -> bytes:
    magic = 0x0800 | array.ndim if magic is None else magic
    return struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()


def _mnist(folder: Path, **replace: bytes) -> None:
    """Small valid MNIST files in ``folder``, with some replaced by the given bytes."""
    folder.mkdir(parents=True)
    arrays = {
        "train-images-idx3-ubyte": np.zeros((20, 28, 28)), "train-labels-idx1-ubyte": np.arange(20) % 10,
        "t10k-images-idx3-ubyte": np.zeros((10, 28, 28)), "t10k-labels-idx1-ubyte": np.arange(10) % 10,
    }
    for name, array in arrays.items():
        (folder / name).write_bytes(replace.get(name.replace("-", "_"), _idx(array)))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "empty").mkdir()
    (d / "pub").mkdir()
    images = _idx(np.zeros((20, 28, 28)))
    _mnist(d / "idx-truncated", train_images_idx3_ubyte=images[:-100])
    _mnist(d / "idx-magic", train_labels_idx1_ubyte=_idx(np.arange(20) % 10, magic=2051))
    _mnist(d / "idx-empty", train_images_idx3_ubyte=b"")
    (d / "idx-gz").mkdir()
    (d / "idx-gz" / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b" + b"not gzip after all")
    for name in ("train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (d / "idx-gz" / f"{name}.gz").write_bytes(gzip.compress(_idx(np.zeros((10, 28, 28)) if "images" in name else np.zeros(10))))
    record = np.zeros(1 + 3072, np.uint8).tobytes()
    for folder, test in (("cifar10", True), ("cifar10-no-test", False)):
        batches = d / folder / "cifar-10-batches-bin"
        batches.mkdir(parents=True)
        (batches / "data_batch_1.bin").write_bytes(record * 3 + b"\x00" * 100)
        if test:
            (batches / "test_batch.bin").write_bytes(record * 2)
    (d / "cifar100" / "cifar-100-binary").mkdir(parents=True)
    (d / "cifar100" / "cifar-100-binary" / "train.bin").write_bytes(np.zeros(2 + 3072, np.uint8).tobytes() * 2 + b"\x01")
    (d / "cifar100" / "cifar-100-binary" / "test.bin").write_bytes(np.zeros(2 + 3072, np.uint8).tobytes() * 2)

    (d / "corrupt.sqlite").write_bytes(b"definitely not a database")
    (d / "truncated.sqlite").write_bytes(b"SQLite format 3\x00" + b"\x07" * 90)
    conn = sqlite3.connect(d / "foreign.sqlite")
    conn.execute("CREATE TABLE customers (id INTEGER)")
    conn.commit()
    conn.close()
    with Store.open(d / "newer.sqlite"):
        pass
    conn = sqlite3.connect(d / "newer.sqlite")
    conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    conn.commit()
    conn.close()

    entry = json.loads(next((ROOT / "leaderboards" / "qnn").glob("*/none.json")).read_text())
    entry["clean"]["mean"] = "98%"
    (d / "bad-entry.json").write_text(json.dumps(entry))
    (d / "not-json.json").write_text("{not json")
    (d / "lb" / "qnn" / "some-board").mkdir(parents=True)
    (d / "lb" / "qnn" / "some-board" / "none.json").write_text(json.dumps(entry))

    with Store.open(d / "other.sqlite"):
        pass
    store = d / "populated.sqlite"
    with Store.open(store) as s:
        s.artifacts.mkdir()
        (s.artifacts / "t.safetensors").write_bytes(b"weights")
        s.put_training(TrainingRecord("t", {"track": "qnn"}, 0, "t.safetensors", 1.0, {}, "0"))
        s.put_cell(CellRecord("c", "t", {"kind": "clean"}, "clean", None, None, 0, "ok", 2, 1, 0.5,
                              np.array([True, False]), {}, 0.1))
    return d


def fingerprint(paths: list[Path]) -> dict[str, str | None]:
    """SHA-256 of every file (the store, its WAL, its artifacts) at these paths; None for a missing one."""
    out: dict[str, str | None] = {}
    for path in paths:
        for p in [path, Path(f"{path}-wal"), *sorted(Path(f"{path}.artifacts").rglob("*"))]:
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ("dir" if p.is_dir() else None)
    return out


PLUGINS = {
    "clash": lambda: [("broken", _Clash())],
    "non-component": lambda: [("broken", _NonComponent())],
    "faults": lambda: [("faults", fault_plugins)],
    **{hook: (lambda hook=hook: [("broken", _raising(hook))])
       for hook in ("register_datasets", "register_models", "register_defenses", "register_attacks")},
}


@pytest.mark.parametrize("bad", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_clear_line_and_leaves_the_store_alone(bad, files, monkeypatch, capsys):
    store = files / "populated.sqlite"
    monkeypatch.setenv("QBENCH_STORE", str(store))
    monkeypatch.delenv("QBENCH_DATA", raising=False)
    monkeypatch.delenv("QBENCH_PLUGINS", raising=False)
    if bad.plugin == "import":
        from importlib.metadata import EntryPoint

        real = qbench.plugins.entry_points
        broken = EntryPoint(name="broken", value="qbench_no_such_module_xyz", group="qbench")
        monkeypatch.setattr(qbench.plugins, "entry_points", lambda group: [*real(group=group), broken])
    elif bad.plugin == "impatient":
        monkeypatch.setattr(qbench.running.dask_executor, "CONNECT_TIMEOUT", "1s")
    elif bad.plugin is not None:
        monkeypatch.setattr(qbench.commands, "load_registry", lambda: load_registry(PLUGINS[bad.plugin]()))
    args = [a.replace("{d}", str(files)).replace("{store}", str(store)) for a in bad.args]
    touched = [store, *[Path(a) for a in args if a.endswith(".sqlite") or a == str(files / "empty")]]
    before = fingerprint(touched)

    code = qbench.cli.main(args)

    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == bad.code, err
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("qbench: error: " if code else "qbench: warning: "), err
    assert bad.message.replace("{d}", str(files)) in lines[0]
    assert fingerprint(touched) == before


def test_the_corpus_is_big_enough():
    assert len(CASES) >= 40 and len({c.id for c in CASES}) == len(CASES)


def test_debug_shows_the_traceback(files, monkeypatch, capsys):
    monkeypatch.setenv("QBENCH_STORE", str(files / "populated.sqlite"))
    assert qbench.cli.main(["verify", str(files / "bad-entry.json"), "--debug"]) == 2
    assert "Traceback" in capsys.readouterr().err


# --- every option of every command, each given one bad value ---------------------------------------------
#
# The walk below reads the commands and their options from the parser itself, so an option added later
# without a bad value here fails ``test_the_walk_covers_every_option``. Each case is the command's BASE
# line (valid and cheap) with one option replaced by, or given, a bad value; it must be refused with exit
# 2 and one line before anything is planned or stored (the populated store's bytes are compared).

ENTRY = str(ROOT / "leaderboards" / "qnn" / "moons-qnn-angle" / "none.json")
PUBLISHED = "{d}/pub"  # an (empty) published store: every case fails before reading it
BASE = {
    "evaluate": EVAL,
    "sweep": "sweep --defense gaussian_augmentation --option sigma --values 0.1 " + " ".join(FAST) + " --store {store}",
    "plugins": "plugins",
    "results": "results --store {store}",
    "merge": "merge {d}/other.sqlite --store {store}",
    "verify": f"verify {ENTRY} --published {PUBLISHED} --recompute-only",
    "leaderboard run": GRID,
    "leaderboard build": "leaderboard build --track qnn --board moons-qnn-angle --defense none --seeds 1 --store {store} "
                         "--out {d}/out --draft",
    "leaderboard render": "leaderboard render --out {d}/lb",
    "load-model": f"load-model moons-qnn-angle none --published {PUBLISHED} --entries {ROOT / 'leaderboards'}",
    "store export": "store export --store {store} --published {d}/published",
    "store import": f"store import --store {{store}} --published {PUBLISHED}",
    "reproduce": "reproduce huang2023 --only table1 --epochs 1 --n-test 10 --store {store} --out {d}/repro",
}
NOT_A_DIR = ("{d}/bad-entry.json", "is not a directory")
POSITIVE = ("0", "expected a positive integer, got '0'")
NON_NEGATIVE = ("-1", "expected an integer >= 0, got '-1'")
#: option -> (bad value, a fragment of the error); ``command option`` keys override for one command
BAD_VALUES = {
    "--defense": ("nonee", "unknown defense 'nonee'; did you mean 'none'?"),
    "--track": ("quantum", "invalid choice: 'quantum'"),
    "--dataset": ("moon", "unknown dataset 'moon'; did you mean 'moons'?"),
    "--model": ("qnm", "unknown model 'qnm'; did you mean 'qnn'?"),
    "--attack": ("fgsn", "unknown attack 'fgsn'; did you mean 'fgsm'?"),
    "--epsilon": ("-0.1", "epsilon must be a finite number >= 0"),
    "--seeds": POSITIVE, "--epochs": POSITIVE, "--n-test": POSITIVE, "--n-eot": POSITIVE, "--n-repeat": POSITIVE,
    "--shots": ("none", "expected a positive integer, got 'none'"),
    "--device": ("default.qubitt", "unknown PennyLane device 'default.qubitt'; did you mean 'default.qubit'?"),
    "--torch-device": ("gpu", "--torch-device 'gpu' is not a torch device (cpu, cuda or cuda:N)"),
    "--data-dir": ("{d}/absent", "--data-dir {d}/absent is not a directory"),
    "--store": ("{d}/empty", "is a directory, not a qbench store file"),
    "--dataset-option": ("noise=-1", "noise must be >= 0"),
    "--model-option": ("n_layers=zero", "n_layers must be an integer"),
    "--defense-option": ("sigmaa=0.1", "unknown option 'sigmaa'"),
    "--attack-option": ("fgsm.stepz=3", "unknown option 'stepz'"),
    "--executor": ("dusk", "invalid choice: 'dusk'"),
    "--workers": POSITIVE,
    "--scheduler": ("localhost", "is not a scheduler address"),
    "--retries": NON_NEGATIVE,
    "--threads": POSITIVE,
    "--option": ("sigmaa", "unknown option 'sigmaa'"),
    "--values": (",", "--values needs at least one value"),
    "--kind": ("defence", "invalid choice: 'defence'"),
    "--board": ("moons-qnn-angel", "unknown board 'moons-qnn-angel' on track qnn; did you mean 'moons-qnn-angle'?"),
    "--seed": NON_NEGATIVE,
    "--sample": NON_NEGATIVE,
    "--published": NOT_A_DIR,
    "--out": NOT_A_DIR,
    "--entries": NOT_A_DIR,
    "--save": ("{d}/absent/model.safetensors", "its folder {d}/absent does not exist"),
    "--commit": ("HEAD~1", "expected a git commit"),
    "--only": ("table9", "table9"),
    "merge sources": ("{d}/absent.sqlite", "no qbench store at {d}/absent.sqlite"),
    "verify entry": ("{d}/absent.json", "no entry file at {d}/absent.json"),
    "load-model board": ("moons-qnn-angel", "unknown board 'moons-qnn-angel'"),
    "load-model defense": ("nonee", "no published entry"),
    "load-model --seed": ("7", "has seeds [0, 1, 2], not 7"),
    "reproduce paper": ("huang2022", "unknown reproduction 'huang2022'"),
    "leaderboard run --defense": ("gaussian_augmentaton", "did you mean 'gaussian_augmentation'?"),
    "leaderboard build --defense": ("gaussian_augmentaton", "did you mean 'gaussian_augmentation'?"),
    "leaderboard run --published": ("{d}/bad-entry.json", "--published {d}/bad-entry.json is not a directory"),
    "leaderboard render --out": ("{d}/empty", "no entries under {d}/empty"),
}


def _leaves(parser, path=()):
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield " ".join(path), parser
    for action in subs:
        for name, child in action.choices.items():
            yield from _leaves(child, (*path, name))


def _walk() -> list[tuple[str, str, tuple[str, ...]]]:
    """(command, option, bad command line) for every value-taking option and positional of every command."""
    out = []
    for command, parser in _leaves(qbench.cli.build_parser()):
        for action in parser._actions:
            if action.nargs == 0 or isinstance(action, argparse._SubParsersAction):
                continue
            name = action.option_strings[0] if action.option_strings else action.dest
            value, _ = BAD_VALUES.get(f"{command} {name}") or BAD_VALUES[name]
            base = BASE[command].split()
            if action.option_strings:
                if name in base:
                    base[base.index(name) + 1] = value
                else:
                    base += [name, value]
            else:  # the positional's place: its index among the base line's positionals
                index = [a.dest for a in parser._actions if not a.option_strings].index(action.dest)
                base[len(command.split()) + index] = value
            out.append((command, name, tuple(base)))
    return out


WALK = _walk()


def test_the_walk_covers_every_option():
    commands = {c for c, _, _ in WALK}
    assert commands == set(BASE)
    assert {"--device", "--torch-device", "--save", "--commit", "--published", "sources", "entry", "paper"} <= {o for _, o, _ in WALK}
    assert len(WALK) >= 100


@pytest.mark.parametrize("command, option, args", WALK, ids=[f"{c}:{o}" for c, o, _ in WALK])
def test_every_option_with_a_bad_value_is_refused_before_anything_is_stored(command, option, args, files, monkeypatch,
                                                                          capsys):
    store = files / "populated.sqlite"
    monkeypatch.setenv("QBENCH_STORE", str(store))
    monkeypatch.delenv("QBENCH_DATA", raising=False)
    monkeypatch.delenv("QBENCH_PLUGINS", raising=False)
    args = [a.replace("{d}", str(files)).replace("{store}", str(store)) for a in args]
    touched = [store, files / "other.sqlite", files / "empty", files / "pub", files / "out", files / "published",
               files / "repro"]
    before = fingerprint(touched)

    code = qbench.cli.main(args)

    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("qbench: error: "), err
    _, message = BAD_VALUES.get(f"{command} {option}") or BAD_VALUES[option]
    assert message.replace("{d}", str(files)) in lines[0]
    assert fingerprint(touched) == before
    assert not (files / "published").exists() and not (files / "repro").exists() and not (files / "out").exists()
