"""The leaderboard pipeline for real on a tiny grid: run, build (schema-valid entries), render, verify."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from qbench.publishing import entry as entry_mod
from qbench.errors import UsageError
from qbench.publishing.leaderboard import rendered_files

ROOT = Path(__file__).resolve().parents[1]
GRID = ["--track", "qnn", "--board", "moons-qnn-angle", "--defense", "none", "--defense", "gaussian_augmentation",
        "--seeds", "1", "--epochs", "3", "--n-test", "40", "--no-sweep"]


def cli_run(*args):
    from conftest import run_cli

    return run_cli(*args)


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lb")
    store, out = tmp / "s.sqlite", tmp / "leaderboards"
    early = cli_run("leaderboard", "build", *GRID, "--store", str(store), "--out", str(out))
    assert early.returncode == 2 and "no qbench store" in early.stderr  # build never computes
    # in-process: the executors have their own tests, and a pool only adds start-up time here
    published = tmp / "store"
    published.mkdir()
    run = cli_run("leaderboard", "run", *GRID, "--executor", "inprocess", "--store", str(store),
                  "--published", str(published))
    assert run.returncode == 0, run.stderr
    build = cli_run("leaderboard", "build", *GRID, "--store", str(store), "--out", str(out), "--json")
    assert build.returncode == 0, build.stderr
    return out


def test_entries_are_schema_valid_and_ranked(board):
    paths = sorted((board / "qnn" / "moons-qnn-angle").glob("*.json"))
    assert [p.stem for p in paths] == ["gaussian_augmentation", "none"]
    entries = {p.stem: entry_mod.load(p) for p in paths}
    ga = entries["gaussian_augmentation"]
    assert ga["undefended"]["robust"] == entries["none"]["robust"]
    assert ga["robust"]["mean"] <= ga["clean"]["mean"]
    assert ga["paper_protocol"]["attack"] == "bim[n_eot=1]"
    assert ga["defense"]["distribution"] == "qbench"
    assert ga["provenance"]["packages"]["torch"].startswith("2.13")
    assert {c["kind"] for c in ga["cells"]} == {"clean", "attack", "probe"}
    readme = (board / "qnn" / "moons-qnn-angle" / "README.md").read_text()
    assert "| defense" in readme and "gaussian_augmentation" in readme


def test_rendered_pages_match_the_entries(board):
    for path, text in rendered_files(board).items():
        assert path.read_text() == text, f"{path} drifted from its entries"
    html = (board / "html" / "moons-qnn-angle.html").read_text()
    assert "<svg" in html
    # self-contained: nothing loaded from elsewhere (XML namespace URIs are names, not loads)
    for external in ('src="http', "src='http", "<link", "url(http", "<script"):
        assert external not in html


def test_build_takes_an_explicit_seed_list(board, tmp_path):
    store = board.parent / "s.sqlite"  # the fixture ran seed 0 only
    grid = [a for a in GRID if a not in ("--seeds", "1")]
    other = cli_run("leaderboard", "build", *grid, "--seed", "1", "--store", str(store), "--out", str(tmp_path), "--json")
    assert other.returncode == 0, other.stderr
    report = json.loads(other.stdout.splitlines()[0])
    assert report["written"] == [] and all("none seed 1" in s or "gaussian_augmentation seed 1" in s
                                           for s in report["skipped"])
    same = cli_run("leaderboard", "build", *grid, "--seed", "0", "--store", str(store), "--out", str(tmp_path), "--json")
    assert json.loads(same.stdout.splitlines()[0])["done"] == ["moons-qnn-angle/none", "moons-qnn-angle/gaussian_augmentation"]
    assert entry_mod.load(tmp_path / "qnn" / "moons-qnn-angle" / "none.json")["seeds"] == [0]


def test_schema_rejects_a_broken_entry(board, tmp_path):
    entry = json.loads((board / "qnn" / "moons-qnn-angle" / "none.json").read_text())
    entry["clean"]["mean"] = "98%"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(entry))
    with pytest.raises(UsageError, match="clean/mean"):
        entry_mod.load(bad)
    proc = cli_run("verify", str(bad))
    assert proc.returncode == 2 and "fails the entry schema" in proc.stderr


def test_verify_passes_and_catches_an_edited_number(board, tmp_path):
    path = board / "qnn" / "moons-qnn-angle" / "gaussian_augmentation.json"
    published = str(board.parent / "store")
    ok = cli_run("verify", str(path), "--sample", "2", "--json", "--published", published)
    assert ok.returncode == 0, ok.stderr
    report = json.loads(ok.stdout)
    assert report["ok"] and report["mismatches"] == [] and report["largest_difference"] == 0.0
    assert report["identical"] == len(report["cells"]) >= 2  # the ranking cells of one seed and 2 more

    entry = json.loads(path.read_text())
    target = next(c for c in entry["cells"] if c["kind"] == "clean")
    target["accuracy"] = max(0.0, target["accuracy"] - 0.3)
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(entry))
    (edited.parent / "none.json").write_text((path.parent / "none.json").read_text())  # the board, for the recompute
    bad = cli_run("verify", str(edited), "--sample", "40", "--published", published)
    assert bad.returncode == 1
    index = entry["cells"].index(target)
    assert f"cells[{index}].accuracy: entry" in bad.stderr  # the recomputation names the edited field
    assert "seed 0 clean" in bad.stdout and "DISAGREES" in bad.stdout  # and the re-run disagrees too
    assert "NOT verified" in bad.stdout and "largest difference 30.0 points" in bad.stdout


def test_committed_leaderboards_are_valid_and_match_their_entries():
    out = ROOT / "leaderboards"
    files = rendered_files(out)  # loads (and schema-validates) every committed entry
    assert files, "no committed entries"
    for path, text in files.items():
        assert path.exists() and path.read_text() == text, f"{path} drifted from the entries: run qbench leaderboard render"


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make test installs it when it can)")
def test_committed_board_page_renders_in_headless_chromium(tmp_path):
    page = next((ROOT / "leaderboards" / "html").glob("*-*.html"))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'id="ranking"' in dom.stdout and "<svg" in dom.stdout and "robust accuracy" in dom.stdout
    shot = tmp_path / "board.png"
    proc = subprocess.run([CHROMIUM, *flags, "--window-size=1200,1600", f"--screenshot={shot}", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and shot.exists() and shot.stat().st_size > 20_000


def test_board_protocol_reaches_the_plan_and_the_cli_overrides_it():
    from qbench.running.grid import board_plan, boards
    from qbench.publishing.leaderboard import GridOptions
    from qbench.registry import load_registry

    registry = load_registry()
    lenet = boards("mapped-dnn", ["mnist-lenet"])[0]
    plan = board_plan(registry, lenet, "intrinsic_noise", [0], sweep=False)
    assert (plan.n_eot, plan.n_test) == (lenet.n_eot, lenet.n_test) == (5, 200)
    assert board_plan(registry, lenet, "intrinsic_noise", [0], n_eot=20, sweep=False).n_eot == 20
    # a board without its own EOT setting gets the grid's 20
    moons = boards("qnn", ["moons-qnn-angle"])[0]
    assert moons.n_eot is None and board_plan(registry, moons, "none", [0], sweep=False).n_eot == 20
    (_, plans), = GridOptions(boards=["mnist-lenet"], defenses=["qnad"], n_eot=7, n_test=50).plans(registry, "mapped-dnn")
    assert (plans[0].n_eot, plans[0].n_test) == (7, 50)


def test_pages_name_what_the_grid_lacks_and_how_to_compute_it():
    from qbench.publishing.coverage import gaps
    from qbench.publishing.render_markdown import gap_line

    def entry(track, defense, seeds=(0, 1, 2)):
        return {"track": track, "defense": {"name": defense}, "seeds": list(seeds)}

    grouped = {
        "mnist-lenet": [entry("mapped-dnn", d) for d in ("qnad", "none", "adversarial_training")],
        "cifar10-alexnet": [entry("mapped-dnn", "none"), entry("mapped-dnn", "qnad")],
    }
    found = gaps(grouped)
    assert [(g.board, g.defenses, g.whole_board, g.seeds) for g in found] == [
        ("cifar10-alexnet", ("adversarial_training",), False, ()),
        ("cifar100-vgg16", ("none", "adversarial_training", "qnad"), True, ()),
    ]  # a track with no entries at all (qnn here) is not listed
    assert found[0].command() == (
        "qbench leaderboard run --track mapped-dnn --board cifar10-alexnet --defense adversarial_training --seeds 3")
    assert found[1].command() == "qbench leaderboard run --track mapped-dnn --board cifar100-vgg16 --seeds 3"
    assert gap_line(found[0]) == ("Not computed yet on this board: adversarial_training (`qbench leaderboard run "
                                  "--track mapped-dnn --board cifar10-alexnet --defense adversarial_training "
                                  "--seeds 3`).")

    # a preliminary board of one seed: the other seeds are named as missing too
    grouped["cifar10-alexnet"] = [entry("mapped-dnn", d, seeds=(1,)) for d in ("none", "qnad")]
    alexnet = gaps(grouped)[0]
    assert (alexnet.defenses, alexnet.seeds) == (("adversarial_training",), (0, 2))
    assert alexnet.describe() == "adversarial_training; seeds 0, 2 of the defenses shown"
    assert alexnet.command() == "qbench leaderboard run --track mapped-dnn --board cifar10-alexnet --seeds 3"

    committed = ROOT / "leaderboards"
    index = (committed / "README.md").read_text()
    published = {p.parent.name for p in committed.glob("*/*/*.json")}
    for board in ("cifar10-alexnet", "cifar100-vgg16"):
        assert (board in published) or f"mapped-dnn · {board}: the whole board" in index


def test_both_tracks_cascade_their_suite_and_carry_their_curves_unless_an_entry_predates_it():
    from qbench.contract.attack import attack_label
    from qbench.contract.tracks import DEFAULTS
    from qbench.publishing.leaderboard import GridOptions
    from qbench.registry import load_registry
    from qbench.running.grid import board_plan, boards

    registry = load_registry()
    for track, name in (("qnn", "mnist-1v9-qnn"), ("mapped-dnn", "cifar10-alexnet")):
        board = boards(track, [name])[0]
        plan = board_plan(registry, board, "none", [0])
        labels = [attack_label(a) for a in plan.attacks]
        gates = DEFAULTS[track].cascade_gates
        assert gates and set(gates) <= set(labels), (track, gates, labels)
        ranking = plan.epsilons[0]
        cascaded = sorted(attack_label(a) for a in plan.attacks if plan.cascaded(a, ranking))
        assert cascaded == sorted(set(labels) - set(gates)) and cascaded, (track, cascaded)
        # the paper-protocol column and the apgd-vs-pgd check need standalone numbers: they are gates
        paper_label = DEFAULTS[track].paper_protocol[0]
        assert paper_label in gates and "apgd-ce" in gates and "pgd" in gates
        carried = [(attack_label(a), e) for a, e in plan.attack_cells() if plan.carried(a, e)]
        assert carried and all(e not in plan.epsilons for _, e in carried)
        # an entry computed before its track had them rebuilds without either
        (_, (old,)), = GridOptions(boards=[name], defenses=["none"], cascade=False, carry_curves=False).plans(
            registry, track)
        assert old.cascade_gates == () and not any(old.carried(a, e) for a, e in old.attack_cells())
        assert not any(old.cascaded(a, ranking) for a in old.attacks)


def test_a_board_follows_the_protocol_its_published_entries_were_computed_with(tmp_path):
    """moons (no cascade), mnist-lenet (set-A cascade, curves not carried), AlexNet (today's protocol)."""
    from qbench.publishing.leaderboard import GridOptions, committed_protocol
    from qbench.registry import load_registry

    published = ROOT / "leaderboards"
    follow = GridOptions(follow=published)
    assert follow.switches("qnn", "moons-qnn-angle") == {"carry_curves": False, "cascade_rule": "set-a", "cascade": False}
    assert follow.switches("mapped-dnn", "mnist-lenet") == {"carry_curves": False, "cascade_rule": "set-a", "cascade": True}
    assert follow.switches("mapped-dnn", "cifar10-alexnet") == GridOptions().switches("mapped-dnn", "cifar10-alexnet")
    # a board without entries (or no folder to follow) gets the track's current protocol
    assert committed_protocol(tmp_path, "qnn", "mnist-1v9-qnn") is None
    assert GridOptions(follow=tmp_path).switches("qnn", "moons-qnn-angle") == GridOptions().switches("qnn", "x")
    # and the plans are built with those switches: moons' committed entries rebuild uncascaded
    (_, plans), = GridOptions(boards=["moons-qnn-angle"], defenses=["none"], seeds=[0], follow=published).plans(
        load_registry(), "qnn")
    assert plans[0].cascade_gates == () and not plans[0].cascade_curves


def test_per_seed_deployment_facts_print_floats_to_four_significant_digits():
    from qbench.publishing.render_markdown import varying_deployment

    entry = {"training": {"defense_info": [
        {"level": 0.05, "guard_final_accuracy": 0.02500000037252903, "stopped": 0, "curve": [1, 2]},
        {"level": 0.1, "guard_final_accuracy": 0.0625, "stopped": 0, "curve": [3]},
    ]}}
    assert varying_deployment(entry) == "guard_final_accuracy = 0.025, 0.0625; level = 0.05, 0.1"
