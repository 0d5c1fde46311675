"""`qbench verify` v2 against forgeries: every edited number fails, naming the field or the cell.

A small real grid (moons, angle-encoded QNN, `none` and `gaussian_augmentation`, 2 seeds) is run into a
published store and built into entries by the CLI, as a board is; each test edits a copy the way a forger
would and checks that verification fails and says where.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from qbench.publishing import entry as entry_mod
from qbench.publishing.published_store import CELLS, read_jsonl
from qbench.registry import load_registry
from qbench.running.store import _pack, _unpack
from qbench.publishing.verify import verify

GRID = ["--track", "qnn", "--board", "moons-qnn-angle", "--defense", "none", "--defense", "gaussian_augmentation",
        "--seeds", "2", "--epochs", "2", "--n-test", "24", "--no-sweep"]


@pytest.fixture(scope="module")
def board(tmp_path_factory, request):
    from conftest import run_cli

    root = tmp_path_factory.mktemp("board")
    published = root / "store"
    published.mkdir()
    ran = run_cli("leaderboard", "run", *GRID, "--executor", "inprocess", "--store", str(root / "run.sqlite"),
                  "--published", str(published))
    assert ran.returncode == 0, ran.stderr
    built = run_cli("leaderboard", "build", *GRID, "--store", str(root / "build.sqlite"), "--published", str(published),
                    "--out", str(root / "out"), "--draft")
    assert built.returncode == 0, built.stderr
    return root


def copy_board(board: Path, tmp_path: Path) -> tuple[Path, Path]:
    shutil.copytree(board / "out", tmp_path / "out")
    shutil.copytree(board / "store", tmp_path / "store")
    return tmp_path / "out" / "qnn" / "moons-qnn-angle", tmp_path / "store"


def edit_entry(path: Path, change) -> dict:
    entry = json.loads(path.read_text())
    change(entry)
    path.write_text(json.dumps(entry, indent=2, sort_keys=True) + "\n")
    return entry_mod.load(path)  # the forgery still validates against the schema


def check(path: Path, published: Path, **kwargs):
    registry = load_registry()
    return verify(registry, entry_mod.load(path), str(path), kwargs.pop("k", 0), None, published=published, **kwargs)


def test_an_honest_entry_recomputes_exactly_and_its_cells_rerun_bit_for_bit(board, tmp_path):
    entries, published = copy_board(board, tmp_path)
    report = check(entries / "gaussian_augmentation.json", published, k=1, seed=7)
    assert report.recomputed and report.mismatches == []
    # the ranking-epsilon cells of one seed (clean + the whole suite at 0.15, less skipped ones) and one more
    assert len(report.checks) >= 5 and report.sample_seed == 7
    ran = [c for c in report.checks if c.claimed_status == "ok"]
    assert ran and all(c.exact and c.bits_equal for c in ran), [c.describe() for c in report.checks]
    # the seed's skipped attacks (APGD-DLR/-T on two classes, the CNN surrogate on 2 features) are re-run
    # and skip again: a skip drops an attack out of the worst case, so it is checked too
    skipped = [c for c in report.checks if c.claimed_status == "skipped"]
    assert {c.attack for c in skipped} >= {"apgd-dlr", "apgd-t"} and all(c.measured_status == "skipped" for c in skipped)
    assert report.ok


def test_a_claimed_skip_that_the_re_run_does_not_make_disagrees():
    from qbench.publishing.verify import CellCheck

    forged = CellCheck(0, "attack", "pgd", 0.15, 0.0, 0.0, 0.0, claimed_status="skipped", measured_status="ok")
    assert not forged.agrees and "entry skipped, re-run ok DISAGREES" in forged.describe()
    assert CellCheck(0, "attack", "apgd-t", 0.15, 0.0, 0.0, 0.0, claimed_status="skipped",
                     measured_status="skipped").agrees


def test_a_raised_headline_fails_naming_the_field(board, tmp_path):
    entries, published = copy_board(board, tmp_path)
    path = entries / "gaussian_augmentation.json"
    edit_entry(path, lambda e: e["robust"].update(mean=min(1.0, e["robust"]["mean"] + 0.15)))
    report = check(path, published, recompute_only=True)
    assert not report.ok and report.mismatches[0].startswith("robust.mean:")


def test_an_unsampled_cell_edit_fails_naming_the_cell(board, tmp_path):
    entries, published = copy_board(board, tmp_path)
    path = entries / "none.json"
    entry = json.loads(path.read_text())
    index = max(i for i, c in enumerate(entry["cells"]) if c["status"] == "ok")
    edit_entry(path, lambda e: e["cells"][index].update(accuracy=e["cells"][index]["accuracy"] - 0.04))
    report = check(path, published, recompute_only=True)
    assert [m.split(":")[0] for m in report.mismatches] == [f"cells[{index}].accuracy"]


def test_a_small_edit_of_an_attack_number_fails(board, tmp_path):
    entries, published = copy_board(board, tmp_path)
    path = entries / "none.json"
    edit_entry(path, lambda e: e["attacks"][3]["robust"].update(mean=e["attacks"][3]["robust"]["mean"] + 0.04))
    report = check(path, published, recompute_only=True)
    assert report.mismatches and report.mismatches[0].startswith("attacks[3].robust.mean:")


def test_edited_bits_in_the_published_store_fail(board, tmp_path):
    entries, published = copy_board(board, tmp_path)
    cells_path = next(published.glob(f"*/*/{CELLS}"))
    rows = read_jsonl(cells_path)
    entry = json.loads((entries / "none.json").read_text())
    clean_key = next(c["key"] for c in entry["cells"] if c["kind"] == "clean")
    bits = _unpack(base64.b64decode(rows[clean_key]["bits"]))
    bits[:5] = ~bits[:5]  # five examples flipped, accuracy field left alone
    rows[clean_key]["bits"] = base64.b64encode(_pack(bits)).decode()
    cells_path.write_text("".join(json.dumps(rows[k], sort_keys=True) + "\n" for k in sorted(rows)))
    report = check(entries / "none.json", published, recompute_only=True)
    # refused at the cell itself: its accuracy field no longer follows from its bits
    assert not report.ok and any(clean_key in m and "not what its bits give" in m for m in report.mismatches)
    # bits and accuracy edited together load, and then the entry's numbers no longer match
    rows[clean_key]["accuracy"] = float(bits.mean())
    rows[clean_key]["n_correct"] = int(bits[:, bits.shape[1] // 2:].all(axis=1).sum())
    cells_path.write_text("".join(json.dumps(rows[k], sort_keys=True) + "\n" for k in sorted(rows)))
    report = check(entries / "none.json", published, recompute_only=True)
    assert not report.ok and any(m.startswith("clean.mean:") for m in report.mismatches)


def test_the_cli_names_the_field_and_exits_1(board, tmp_path, cli):
    entries, published = copy_board(board, tmp_path)
    path = entries / "gaussian_augmentation.json"
    edit_entry(path, lambda e: e["robust"].update(mean=0.99))
    result = cli("verify", str(path), "--published", str(published), "--recompute-only")
    assert result.returncode == 1
    assert "robust.mean: entry 0.99" in result.stderr and "Traceback" not in result.stderr


def test_the_cli_says_no_cell_was_re_run_when_only_recomputing(board, tmp_path, cli):
    entries, published = copy_board(board, tmp_path)
    result = cli("verify", str(entries / "none.json"), "--published", str(published), "--recompute-only")
    assert result.returncode == 0, result.stderr
    assert "every number recomputed exactly" in result.stdout
    assert "verified (recomputed from the published bits; no cell re-run)" in result.stdout
    assert "0/0 cells" not in result.stdout
