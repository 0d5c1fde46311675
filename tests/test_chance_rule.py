"""The boards' chance rule: a model whose clean accuracy over its seeds is not above chance is not attacked.

Real runs of the tiny generated problem through the runner into real SQLite stores: a defense that drowns
the logits in noise (the model guesses) and the undefended model (far above chance), with and without
``Plan.attack_only_above_chance``; then the entry, its schema, its rank and its page.
"""

from __future__ import annotations

import dataclasses
import sqlite3

import fault_plugins
import pytest
import torch

import qbench
from qbench import Dataset, Defense
from qbench.contract.dataset import TrainingSchedule
from qbench.contract.testing import tiny_split
from qbench.publishing import entry as entries
from qbench.publishing.leaderboard import assign_ranks
from qbench.publishing.render_markdown import board_page
from qbench.publishing.summary import summarize
from qbench.registry import load_registry
from qbench.running.chance import chance_verdict
from qbench.running.preflight import missing_work
from qbench.running.runner import Plan, Runner
from qbench.running.store import Store


class _Drowned(torch.nn.Module):
    stochastic = True

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x):
        logits = self.inner(x)
        return logits + 1000.0 * torch.randn_like(logits)


class Drowned(Defense):
    """Noise a thousand times the logits' scale: every prediction is a coin flip."""

    name = "chance_drowned"
    description = "Gaussian noise of sigma 1000 on the logits (the model guesses)"
    tracks = ("qnn",)

    def prepare(self, model, ctx):
        return _Drowned(model)


class WideBox(Dataset):
    """The tiny generated problem with 400 test examples: enough to know a model guesses (the rule's
    tolerance at 50% is then 5 points)."""

    name = "chance_wide_box"
    description = "64 + 400 examples of a separable 2-class problem in [0, 1]^4"
    version = "1"
    tracks = ("qnn",)

    def load(self, ctx):
        return tiny_split(n_test=400)


class _Plugins:
    @qbench.hookimpl
    def register_defenses(self, register):
        register(Drowned)

    @qbench.hookimpl
    def register_datasets(self, register):
        register(WideBox)


@pytest.fixture(scope="module")
def registry():
    return load_registry([("faults", fault_plugins), ("chance", _Plugins())])


def plan(registry, defense: str, rule: bool = True, dataset: str = "chance_wide_box") -> Plan:
    create = registry.create
    return Plan(
        track="qnn", dataset=create("dataset", dataset), model=create("model", "tiny_linear"),
        defense=create("defense", defense), epsilons=[0.0, 0.3], seeds=[0, 1],
        attacks=[create("attack", "fgsm"), create("attack", "pgd", {"steps": 5})],
        schedule=TrainingSchedule(epochs=30, lr=0.1, batch_size=16), n_eot=2, n_repeat=6,
        attack_only_above_chance=rule,
    )


def kinds(store: Store) -> list[str]:
    return sorted(c.kind for c in store.cells())


def test_a_guessing_model_gets_its_clean_cells_and_no_attack(registry, tmp_path):
    with Store.open(tmp_path / "s.sqlite") as store:
        result = Runner(store).run(plan(registry, "chance_drowned"))
        assert kinds(store) == ["clean", "clean"]  # 4 attack cells planned per seed, none computed
    assert result.unmeasured is not None and "not above chance" in result.unmeasured
    assert [len(s.cells) for s in result.seeds] == [1, 1]
    summary = summarize(result)
    assert 0.45 < summary["clean"]["mean"] < 0.55  # 2 x 400 predictions x 6 draws of a coin
    assert summary["worst_case"] == [] and summary["unmeasured"] == result.unmeasured
    assert {a["status"] for a in summary["attacks"]} == {"not-run"} and len(summary["attacks"]) == 4
    assert all(a["robust"] is None and a["reason"] == result.unmeasured for a in summary["attacks"])
    # (the gradient check also fires: noise of 1000 saturates the softmax)
    reasons = [r for r in summary["flags"]["reasons"] if r.startswith("clean-at-chance")]
    assert len(reasons) == 1 and "the attack suite was not run" in reasons[0]


def test_without_the_rule_the_same_guessing_model_is_attacked(registry, tmp_path):
    """The mutation check: the rule, not something else, is what left the attack cells out."""
    with Store.open(tmp_path / "s.sqlite") as store:
        result = Runner(store).run(plan(registry, "chance_drowned", rule=False))
        assert kinds(store).count("attack") == 8
    assert result.unmeasured is None
    assert any(r.startswith("clean-at-chance") and "measures guessing" in r for r in summarize(result)["flags"]["reasons"])


def test_a_model_above_chance_is_attacked_with_the_same_bits_as_without_the_rule(registry, tmp_path):
    """Holding the attack cells until every seed's clean cell is in changes their order, never their bits."""
    runs = {}
    for rule in (True, False):
        with Store.open(tmp_path / f"{rule}.sqlite") as store:
            result = Runner(store).run(plan(registry, "none", rule=rule))
            runs[rule] = {c.key: c.correct.tobytes() for c in store.cells()}
        assert result.unmeasured is None and [len(s.cells) for s in result.seeds] == [5, 5]
        assert summarize(result)["clean"]["mean"] > 0.9
    assert runs[True] == runs[False] and len(runs[True]) == 10


def test_a_seed_above_chance_is_attacked_without_waiting_for_the_other_seeds(registry, tmp_path):
    """Only a seed that guesses waits for the other seeds' clean cells: here seed 0 (trained and evaluated
    earlier) is attacked before seed 1 is even trained, so no worker idles behind a long training."""
    path = tmp_path / "s.sqlite"
    with Store.open(path) as store:
        Runner(store).run(dataclasses.replace(plan(registry, "none"), attacks=[], seeds=[0]))
        result = Runner(store).run(plan(registry, "none"))
    assert result.unmeasured is None
    db = sqlite3.connect(path)
    trained = dict(db.execute("SELECT seed, created FROM trainings").fetchall())
    attacked = [created for (created,) in db.execute("SELECT created FROM cells WHERE seed = 0 AND kind = 'attack'")]
    assert len(trained) == 2 and len(attacked) == 4
    assert max(attacked) < trained[1]


def test_a_small_test_set_cannot_tell_a_guessing_model_so_it_is_attacked(registry, tmp_path):
    """On 32 examples the tolerance at 50% is 21 points: chance cannot be told from a weak model (a smoke
    run's), so the suite runs, and check 8 flags the entry as before."""
    with Store.open(tmp_path / "s.sqlite") as store:
        result = Runner(store).run(plan(registry, "chance_drowned", dataset="tiny_box"))
        assert kinds(store).count("attack") == 8
    assert result.unmeasured is None


def test_a_stored_verdict_is_read_back_and_estimated(registry, tmp_path):
    """A read-only runner (leaderboard build, verify) and the cost estimate follow the stored clean cells."""
    guessing, above = plan(registry, "chance_drowned"), plan(registry, "none")
    data = Runner(Store.open(tmp_path / "unused.sqlite")).load_data(guessing.dataset)
    with Store.open(tmp_path / "s.sqlite") as store:
        assert missing_work(store, [(guessing, data)]).total_cells == 10  # nothing known yet: all of them
        Runner(store).run(guessing)
        work = missing_work(store, [(guessing, data), (above, data)])
        assert work.total_cells == 2 + 10 and len(work.cells) == 10  # only the model above chance has work
        read = Runner(store, compute=False).run(guessing)
        assert read.unmeasured is not None and [len(s.cells) for s in read.seeds] == [1, 1]
        clean = [store.get_cell(c.key) for c in (s.cells[0] for s in read.seeds)]
    # the verdict needs every seed's clean cell: with one missing the suite is still to run
    assert chance_verdict(guessing, 2, clean) == read.unmeasured
    assert chance_verdict(guessing, 2, clean[:1] + [None]) is None
    assert chance_verdict(dataclasses.replace(guessing, attack_only_above_chance=False), 2, clean) is None


def test_the_entry_has_no_robust_number_no_rank_and_says_why(registry, tmp_path):
    with Store.open(tmp_path / "s.sqlite") as store:
        runner = Runner(store)
        measured = summarize(runner.run(plan(registry, "none")))
        guessing = summarize(runner.run(plan(registry, "chance_drowned")))
    summaries = {"none": measured, "chance_drowned": guessing}
    assign_ranks(summaries, 0.3)
    assert guessing["rank"]["label"] == "-" and guessing["rank"]["group"] == "unmeasured"
    assert measured["rank"]["label"] == "1"
    built = {}
    for name, summary in summaries.items():
        summary.pop("per_example")
        registered = {"plugin": "tests", "distribution": "qbench", "distribution_version": "0"}
        built[name] = entries.build_entry(summary, measured if name != "none" else None, "tiny", 0.3, registered,
                                          [], build_commit="0" * 40)
        entries.validate(built[name])  # the published schema accepts both
    entry = built["chance_drowned"]
    assert entry["robust"] is None and entry["strict"] is None and entry["worst_case"] == []
    assert entry["relative_improvement_percent"] is None and entry["unmeasured"] == guessing["unmeasured"]
    broken = dict(entry, unmeasured=None)
    del broken["unmeasured"]
    with pytest.raises(Exception, match="robust|None|null"):
        entries.validate(broken)  # a null robust number needs the reason
    page = board_page("tiny", list(built.values()))
    assert "not attacked: clean at chance" in page and "Not attacked: clean accuracy" in page
    assert page.index("| 1 ") < page.index("| -   | chance_drowned")  # listed after the ranked entry


def test_the_evaluate_table_says_not_run_beside_a_measured_model(registry, tmp_path):
    """`qbench evaluate`'s table: the guessing model's attack rows say why, its worst case is a dash."""
    from rich.console import Console

    from qbench.commands import _print_evaluation

    with Store.open(tmp_path / "s.sqlite") as store:
        runner = Runner(store)
        guessing = summarize(runner.run(plan(registry, "chance_drowned")))
        measured = summarize(runner.run(plan(registry, "none")))
    for order in ([guessing, measured], [measured, guessing]):
        console = Console(record=True, width=300)
        _print_evaluation(console, order)
        text = console.export_text()
        assert text.count("not run (clean at chance)") == 4
        worst = [line for line in text.splitlines() if "worst case ε=0.3" in line]
        assert len(worst) == 1 and "—" in worst[0] and "%" in worst[0]
        assert "chance_drowned: UNRELIABLE" in text and "the attack suite was not run" in text
