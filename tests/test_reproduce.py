"""`qbench reproduce`: experiments run by the real runner, values beside the paper's, reports merged."""

import json

import pytest

from qbench.registry import load_registry
from qbench.reproductions import REPRODUCTIONS, get
from qbench.reproductions import report as rr
from qbench.reproductions.experiment import Experiment, Setting, Value, accuracy_value, robust
from qbench.running.runner import Runner
from qbench.running.store import Store


def test_every_experiment_builds_valid_plans_with_the_papers_protocol():
    registry = load_registry()
    for reproduction in REPRODUCTIONS.values():
        assert reproduction.experiments
        for experiment in reproduction.experiments:
            plans = experiment.plans(registry, [0])
            assert len(plans) == len(experiment.settings) >= 1
            for setting, plan in plans:
                assert plan.track == setting.track and plan.defense.name == setting.defense
    # huang2023 runs the paper's protocol: one-sample gradients, one prediction, epsilon 0.15
    table2 = get("huang2023").select(["table2"])[0]
    assert table2.n_eot == 1 and table2.n_repeat == 1 and table2.epsilons == (0.15,)
    # the QNN-CN setting is the defense's default configuration, so it shares the leaderboard's training
    cn = [p for s, p in table2.plans(registry, [0]) if s.label == "QNN-CN"][0]
    assert cn.defense.config_dict() == registry.create("defense", "noise_layer").config_dict()


def test_unknown_experiment_is_a_usage_error():
    from qbench.errors import UsageError

    with pytest.raises(UsageError, match="has no experiment 'table9'"):
        get("huang2023").select(["table9"])
    with pytest.raises(UsageError, match="unknown reproduction 'huang2022'"):
        get("huang2022")


def test_value_flags_a_paper_number_outside_our_interval():
    inside = Value("r", "c", 0.5, 0.55, (0.45, 0.6))
    outside = Value("r", "c", 0.5, 0.7, (0.45, 0.6))
    assert inside.beyond_noise is False and outside.beyond_noise is True
    assert Value("r", "c", 0.5, None, (0.4, 0.6)).beyond_noise is None


def test_a_value_without_an_interval_is_marked_as_untested_not_left_bare():
    cells = [rr._cell(v.to_dict()) for v in (
        Value("r", "c", 0.5, 0.7, (0.45, 0.6)),  # outside the interval
        Value("r", "c", 0.5, 0.55, (0.45, 0.6)),  # inside
        Value("ratio", "c", 317.0, 268.0, None, unit="percent"),  # no interval: not testable
        Value("beta", "c", 0.08, None, None, unit=""),  # no paper number: nothing to mark
    )]
    assert cells == ["50.0 (70.0) *", "50.0 (55.0)", "317.0 (268.0) †", "0.0800"]
    assert "`†` marks" in rr.markdown({"paper": "p", "command": "c", "qbench": "q", "git_commit": "g",
                                       "created": "t", "experiments": []})


def _tiny_experiment() -> Experiment:
    def read(summaries):
        s = summaries["baseline"]
        return [
            accuracy_value("baseline", "clean", s["clean"], 0.74),
            accuracy_value("baseline", "FGSM", robust(s, "fgsm", 0.15), 0.55),
            accuracy_value("baseline", "FGSM at 0.3 (not run)", robust(s, "fgsm", 0.3), None),
        ]

    return Experiment(
        id="tiny", title="moons, 3 epochs", read=read, epsilons=(0.15,), n_test=40,
        settings=(Setting("baseline", "qnn", "moons", "qnn", "none", epochs=3),),
        attacks=(("fgsm", {}),),
    )


def test_run_experiment_reads_back_from_the_store_and_renders(tmp_path):
    registry = load_registry()
    with Store.open(tmp_path / "s.sqlite") as store:
        runner = Runner(store, cache_dir=tmp_path / "cache")
        first = rr.run_experiment(_tiny_experiment(), registry, runner, [0])
        again = rr.run_experiment(_tiny_experiment(), registry, runner, [0])
    assert first["cells_computed"] == 2 and again["cells_computed"] == 0  # clean + fgsm, then from the store
    assert first["values"] == again["values"]
    clean, fgsm, missing = first["values"]
    assert clean["paper"] == 0.74 and 0.5 <= clean["ours"] <= 1.0
    assert clean["ci"][0] <= clean["ours"] <= clean["ci"][1]
    assert fgsm["ours"] <= clean["ours"]  # an attack never raises the accuracy of a deterministic model
    assert missing["ours"] is None
    page = rr.experiment_markdown(first)
    assert f"{100 * clean['ours']:.1f} (74.0)" in page
    assert "| baseline |" in page


def test_write_merges_experiments_of_an_earlier_report(tmp_path):
    rep = REPRODUCTIONS["huang2023"]
    a = {"id": "table1", "values": [], "title": "A"}
    b = {"id": "table2", "values": [], "title": "B"}
    merged = rr.merge(rr.build_report(rep, [a, b], "x"), rr.build_report(rep, [{**b, "title": "B2"}], "y"))
    assert [e["title"] for e in merged["experiments"]] == ["A", "B2"]
    # the kept experiment keeps the run that computed it; the re-run one has the report's own
    assert merged["command"] == "y" and merged["experiments"][0]["provenance"]["command"] == "x"
    assert "provenance" not in merged["experiments"][1]
    # merged again later, it still names its own run, not the run in between
    again = rr.merge(merged, rr.build_report(rep, [{**b, "title": "B3"}], "z"))
    assert again["experiments"][0]["provenance"]["command"] == "x"
    other = rr.merge(rr.build_report(REPRODUCTIONS["qnad2024"], [a], "x"), rr.build_report(rep, [b], "y"))
    assert [e["id"] for e in other["experiments"]] == ["table2"]


def test_cli_reproduce_smoke_run_writes_report_and_page(cli, tmp_path):
    out = tmp_path / "reports"
    store = tmp_path / "s.sqlite"
    proc = cli("reproduce", "huang2023", "--only", "table1", "--epochs", "1", "--n-test", "10",
               "--store", str(store), "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "huang2023.json").read_text())
    assert report == json.loads(proc.stdout)
    (table1,) = report["experiments"]
    assert table1["protocol"]["overrides"] == {"epochs": 1, "n_test": 10}
    rows = {(v["row"], v["column"]): v for v in table1["values"]}
    assert rows[("this work, angle", "clean")]["paper"] == 0.89
    assert all(v["ours"] is not None for v in table1["values"])
    assert all(0 <= v["ours"] <= 1 for v in table1["values"])
    page = (out / "huang2023.md").read_text()
    assert "Smoke run" in page and "(89.0)" in page


def test_cli_reproduce_unknown_paper_exits_2(cli, tmp_path):
    proc = cli("reproduce", "huang2022", "--store", str(tmp_path / "s.sqlite"))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["qbench: error: unknown reproduction 'huang2022' (known: huang2023, qnad2024)"]
    assert not (tmp_path / "s.sqlite").exists()


def test_write_renders_curves_as_inline_svg(tmp_path):
    values = [Value(f"{name}, FGSM", f"ε={e:g}", acc, None, (acc - 0.05, acc + 0.05)).to_dict()
              for name, accs in (("none", (0.9, 0.5, 0.2)), ("noise_layer", (0.9, 0.7, 0.4)))
              for e, acc in zip((0.0, 0.1, 0.2), accs)]
    result = {"id": "figure7", "title": "Figure 7", "values": values, "notes": "", "paper_claim": "claim",
              "settings": [], "cells_computed": 0, "seconds": 1.0,
              "protocol": {"attacks": [{"name": "fgsm", "options": {}}], "epsilons": [0.1, 0.2], "seeds": [0],
                           "n_test": 10, "n_repeat": 1, "n_eot": 1, "overrides": {}}}
    json_path, page = rr.write(rr.build_report(REPRODUCTIONS["huang2023"], [result], "qbench reproduce huang2023"), tmp_path)
    html = (tmp_path / "huang2023.html").read_text()
    assert html.count("<svg") == 1 and "noise_layer, FGSM" in html and "http" not in html.split("<svg")[0]
    assert "| noise_layer, FGSM | 90.0  | 70.0    | 40.0    |" in page.read_text()
    assert json.loads(json_path.read_text())["experiments"][0]["values"] == values


@pytest.mark.parametrize("name", sorted(REPRODUCTIONS))
def test_committed_reproduction_pages_match_their_reports(name):
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "leaderboards" / "reproductions"
    path = folder / f"{name}.json"
    if not path.exists():
        pytest.skip(f"no committed {name} report")
    report = json.loads(path.read_text())
    assert report["reproduction"] == name and report["experiments"]
    assert (folder / f"{name}.md").read_text() == rr.markdown(report)
    assert (folder / f"{name}.html").read_text() == rr.html_page(report)
    for experiment in report["experiments"]:
        assert experiment["values"], experiment["id"]


def test_a_crosstalk_level_chosen_per_seed_is_shown_for_every_seed():
    from qbench.reproductions.qnad2024 import _curve_reader

    def summary(levels):
        return {"seeds": [0, 1, 2], "clean": {"mean": 0.2, "ci_low": 0.1, "ci_high": 0.3}, "attacks": [],
                "training": {"defense_info": [{"level": lv} for lv in levels]}}

    read = _curve_reader("cifar100", (2 / 255,))
    values = read({"QNAD": summary([0.05, 0.0, 0.1]), "level 0.02": summary([0.02] * 3), "undefended": summary([])})
    levels = {(v.row, v.column): v.ours for v in values if v.column.startswith("crosstalk level")}
    # validation chose a different level for each seed: all three are shown, not seed 0's alone
    assert levels == {("QNAD", "crosstalk level used, seed 0"): 0.05, ("QNAD", "crosstalk level used, seed 1"): 0.0,
                      ("QNAD", "crosstalk level used, seed 2"): 0.1, ("level 0.02", "crosstalk level used"): 0.02}
