"""The ranking-epsilon suite as a cascade (issue 17): the gates on every example, the rest on the survivors.

Real runs of the tiny generated problem through the runner into real SQLite stores: a deterministic model
(the worst case must be exactly the full suite's), a stochastic one written as a third party would, a
recording attack that shows which examples it was given, and a failing gate.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import fault_plugins
import numpy as np
import pytest
import torch

import qbench
from qbench import Attack
from qbench.contract.dataset import TrainingSchedule
from qbench.running.executor import InProcessExecutor, ProcessPool
from qbench.registry import load_registry
from qbench.running.runner import Plan, Runner
from qbench.running.scoring import survivors, worst_case
from qbench.running.store import Store
from qbench.publishing.summary import summarize
from test_scoring_v2_runs import _Plugins as ScoringPlugins

SEEN: list[int] = []


class Recording(Attack):
    """PGD-like sign steps that also records how many examples each call was given."""

    name = "cascade_recording"
    description = "three signed-gradient steps; records its batch sizes"
    tracks = ("qnn",)
    threat = "white-box"
    iterative = True

    def generate(self, model, x, y, epsilon, ctx):
        SEEN.append(len(x))
        adv = x.clone()
        for _ in range(3):
            adv.requires_grad_(True)
            loss = torch.nn.functional.cross_entropy(model(adv), y)
            (grad,) = torch.autograd.grad(loss, adv)
            adv = (x + (adv.detach() + epsilon / 2 * grad.sign() - x).clamp(-epsilon, epsilon)).clamp(0, 1)
        return adv.detach()


class _Plugins:
    @qbench.hookimpl
    def register_attacks(self, register):
        register(Recording)


@pytest.fixture(scope="module")
def registry():
    return load_registry([("faults", fault_plugins), ("v2", ScoringPlugins()), ("cascade", _Plugins())])


def plan(registry, defense: str, attacks: list[str], gates: tuple[str, ...], epsilons=(0.3,)) -> Plan:
    create = registry.create
    return Plan(
        track="qnn", dataset=create("dataset", "tiny_box"), model=create("model", "tiny_linear"),
        defense=create("defense", defense), epsilons=list(epsilons), seeds=[0, 1],
        attacks=[create("attack", a) for a in attacks],
        schedule=TrainingSchedule(epochs=3, lr=0.05, batch_size=16), n_eot=2, n_repeat=6, cascade_gates=gates,
    )


def worst(summary, epsilon=0.3):
    return next(w for w in summary["worst_case"] if w["epsilon"] == epsilon)


def test_under_the_legacy_rule_survivors_are_the_examples_no_gate_brought_to_zero_on_set_a():
    clean = np.array([[1, 1, 1, 1], [1, 0, 1, 1], [0, 0, 1, 0], [1, 1, 0, 0]], dtype=bool)  # R = 2
    gate = np.array([[1, 0, 1, 1], [0, 0, 0, 1], [1, 1, 1, 1], [0, 0, 1, 0]], dtype=bool)
    s = survivors([clean, gate], "set-a")
    # example 0: A means 1, .5 -> standing; 1: gate A = 0 -> broken; 2: clean A = 0 -> broken; 3: gate A = 0
    assert s.mask.tolist() == [True, False, False, False]
    # a broken example inherits the bits worst_case selects among the gates (the last of the zeros)
    assert s.inherited[1].tolist() == gate[1].tolist()
    assert s.inherited[2].tolist() == clean[2].tolist()
    assert s.inherited[3].tolist() == gate[3].tolist()
    chosen = worst_case([clean, gate])
    assert np.array_equal(s.inherited[~s.mask][:, 2:].mean(axis=1), chosen.value[~s.mask])


def test_under_the_all_draws_rule_only_a_point_wrong_in_every_draw_breaks_an_example():
    clean = np.array([[1, 1, 1, 1], [1, 0, 1, 1], [0, 0, 0, 0], [1, 1, 0, 0]], dtype=bool)  # R = 2
    gate = np.array([[1, 0, 1, 1], [0, 0, 0, 1], [1, 1, 1, 1], [0, 0, 0, 0]], dtype=bool)
    s = survivors([clean, gate])
    # 0: standing; 1: zero on A but right in a draw of B -> still attacked; 2: clean all wrong; 3: gate all wrong
    assert s.mask.tolist() == [True, True, False, False]
    assert s.source.tolist() == [-1, -1, 0, 1]
    assert not s.inherited[~s.mask].any()  # the kept points report 0


def test_the_all_draws_cascade_never_reports_above_the_full_suite_on_the_same_points():
    """On random stochastic bits (10 draws per set): the full suite's per-example worst case against the
    cascade's, where the later attack's bits are replaced by the inherited ones on the broken examples.
    The legacy rule can report more (a kept zero-on-A point with right draws in B); all-draws never does."""
    rng = np.random.default_rng(0)
    n, r = 4000, 10
    p = rng.uniform(0, 0.3, size=(3, n, 1))  # per point, the chance a draw is right
    clean, gate, later = (rng.uniform(size=(n, 2 * r)) < p[i] for i in range(3))
    full = worst_case([clean, gate, later]).value
    overstated = {}
    for rule in ("set-a", "all-draws"):
        s = survivors([clean, gate], rule)
        staged = later.copy()
        staged[~s.mask] = s.inherited[~s.mask]
        if rule == "set-a":  # the legacy summary masks the copies so that the gate's point is selected
            staged[~s.mask] = True
        cascade = worst_case([clean, gate, staged]).value
        assert np.array_equal(cascade[s.mask], full[s.mask])  # the attacked examples: the same points
        overstated[rule] = float((cascade - full).max())
    assert overstated["all-draws"] <= 0 < overstated["set-a"]


def test_a_deterministic_cascade_keeps_the_full_suites_worst_case_and_attacks_only_survivors(registry, tmp_path):
    attacks = ["fgsm", "pgd", "cascade_recording"]
    with Store.open(tmp_path / "full.sqlite") as store:
        full = summarize(Runner(store).run(plan(registry, "none", attacks, ())))
    SEEN.clear()
    with Store.open(tmp_path / "cascade.sqlite") as store:
        result = Runner(store).run(plan(registry, "none", attacks, ("fgsm", "pgd")))
        cells = store.cells()
    cascade = summarize(result)
    assert worst(cascade)["robust"] == worst(full)["robust"]
    assert worst(cascade)["strict"] == worst(full)["strict"]
    recorded = [c for c in cells if c.attack == "cascade_recording"]
    assert len(recorded) == 2
    standing = []
    for c in recorded:
        seed_cells = [x for x in cells if x.seed == c.seed]
        gates = [x.correct for x in seed_cells if x.kind == "clean"] + \
                [x.correct for x in seed_cells if x.attack in ("fgsm", "pgd")]
        mask = survivors(gates).mask
        standing.append(int(mask.sum()))
        assert c.info["cascade"] == {"gates": 3, "attacked": int(mask.sum())}
        assert c.spec["cascade_after"] == [x.key for x in seed_cells if x.kind == "clean"] + \
            [x.key for x in seed_cells if x.attack in ("fgsm", "pgd")]
    assert 0 < sum(standing) < 2 * 32  # the gates broke some examples and left others
    assert sorted(SEEN) == sorted(n for n in standing if n)  # the attack was handed the survivors only
    row = next(a for a in cascade["attacks"] if a["attack"] == "cascade_recording")
    assert row["cascaded"] is True and row["attacked"] == pytest.approx(sum(standing) / 64)
    gate_row = next(a for a in cascade["attacks"] if a["attack"] == "pgd")
    assert "cascaded" not in gate_row  # a gate's number is the attack on its own
    # the cascade stage's number counts the gates' breaks: it is not above the full suite's worst case...
    # ...for a deterministic model it is the worst case over gates and the stage exactly
    assert row["robust"]["mean"] >= worst(cascade)["robust"]["mean"]
    assert worst(cascade)["selected"].get("cascade_recording", 0) <= sum(standing)


def test_a_stochastic_cascade_runs_and_never_attributes_breaks_to_inherited_copies(registry, tmp_path):
    attacks = ["fgsm", "pgd", "cascade_recording"]
    with Store.open(tmp_path / "s.sqlite") as store:
        result = Runner(store).run(plan(registry, "v2_noisy_logits", attacks, ("fgsm", "pgd")))
        cells = store.cells()
    summary = summarize(result)
    for c in cells:
        if c.attack == "cascade_recording":
            seed_cells = [x for x in cells if x.seed == c.seed]
            gates = [x.correct for x in seed_cells if x.kind == "clean"] + \
                    [x.correct for x in seed_cells if x.attack in ("fgsm", "pgd")]
            s = survivors(gates)
            assert np.array_equal(c.correct[~s.mask], s.inherited[~s.mask])
    selected = worst(summary)["selected"]
    attacked = sum(c.info["cascade"]["attacked"] for c in cells if c.attack == "cascade_recording")
    assert selected.get("cascade_recording", 0) <= attacked


def test_a_failed_gate_fails_its_cascaded_cells_and_both_are_retried(registry, tmp_path):
    gates = ("fgsm", "fault_generate_raises")
    with Store.open(tmp_path / "s.sqlite") as store:
        result = Runner(store).run(plan(registry, "none", ["fgsm", "fault_generate_raises", "pgd"], gates))
        cascaded = [c for s in result.seeds for c in s.cells if c.attack == "pgd"]
    assert cascaded and all(c.status == "failed" for c in cascaded)
    assert all("cascade gate fault_generate_raises failed" in c.error for c in cascaded)


def test_the_pool_executor_gives_the_same_cascaded_bits(registry, tmp_path):
    attacks = ["fgsm", "pgd", "cascade_recording"]
    p = plan(registry, "none", attacks, ("fgsm", "pgd"))
    with Store.open(tmp_path / "a.sqlite") as store:
        Runner(store).run(p)
        inprocess = {c.key: c.correct for c in store.cells()}
    with Store.open(tmp_path / "b.sqlite") as store:
        with ProcessPool(workers=2) as executor:
            Runner(store, executor=executor).run(p)
        pooled = {c.key: c.correct for c in store.cells()}
    assert inprocess.keys() == pooled.keys()
    assert all(np.array_equal(inprocess[k], pooled[k]) for k in inprocess)


def test_without_gates_nothing_is_cascaded(registry):
    p = plan(registry, "none", ["fgsm", "pgd"], ())
    assert not any(p.cascaded(a, 0.3) for a in p.attacks)
    p = dataclasses.replace(p, cascade_gates=("fgsm",))
    assert [p.cascaded(a, 0.3) for a in p.attacks] == [False, True]
    assert not p.cascaded(p.attacks[1], 0.1)  # only at the ranking epsilons


def test_verify_rebuilds_a_cascaded_cells_plan_with_its_gates(registry, tmp_path):
    """``qbench verify`` re-runs a cascaded cell behind its gates: the plan it builds from the entry names
    the entry's cell key (which names the gates' keys), and re-running it reproduces the stored bits."""
    from qbench.publishing.entry import build_entry
    from qbench.publishing.verify import _plan

    p = plan(registry, "none", ["fgsm", "pgd", "cascade_recording"], ("fgsm", "pgd"))
    with Store.open(tmp_path / "s.sqlite") as store:
        result = Runner(store).run(p)
        stored = {c.key: c for c in store.cells()}
    summary = summarize(result)
    cells = [{"key": c.key, "seed": c.seed, "kind": c.kind, "attack": c.attack, "epsilon": c.epsilon,
              "status": c.status, "accuracy": c.accuracy} for s in result.seeds for c in s.cells]
    entry = build_entry(summary, None, "tiny", 0.3, {}, cells, build_commit="x")
    assert entry["protocol"]["cascade_gates"] == ["fgsm", "pgd"]
    cell = next(c for c in cells if c["attack"] == "cascade_recording" and c["seed"] == 1)
    rebuilt = _plan(registry, entry, cell)
    with Store.open(tmp_path / "fresh.sqlite") as store:
        again = Runner(store).run(rebuilt)
    record = next(c for c in again.seeds[0].cells if c.key == cell["key"])
    assert np.array_equal(record.correct, stored[cell["key"]].correct)


def test_in_process_a_cascaded_cell_runs_right_after_its_gates(registry, tmp_path):
    """The in-process executor runs a released cascaded cell before the cells still queued, so a run stopped
    part-way leaves complete (defense, seed)s rather than every seed short of its cascade."""
    order = []
    p = plan(registry, "none", ["fgsm", "pgd", "cascade_recording"], ("fgsm", "pgd"), epsilons=(0.2, 0.3))

    class Recording(InProcessExecutor):
        def wait(self):
            outcomes = super().wait()
            order.extend(o.token for o in outcomes)
            return outcomes

    with Store.open(tmp_path / "s.sqlite") as store:
        Runner(store, executor=Recording()).run(p)
        cells = {c.key: c for c in store.cells()}
    labels = [(cells[key].seed, cells[key].attack, cells[key].epsilon) for kind, key in order if kind == "cell"]
    first_gates_done = max(labels.index((0, a, 0.2)) for a in ("fgsm", "pgd"))
    # seed 0's cascaded cell at 0.2 runs as soon as its gates are done, before seed 1 starts
    assert labels.index((0, "cascade_recording", 0.2)) == first_gates_done + 1
    assert labels.index((0, "cascade_recording", 0.2)) < labels.index((1, None, None))


# the curves carried up the epsilons ------------------------------------------------------------------------

SWEEP = [0.0, 0.1, 0.2, 0.4, 0.8, 1.0]


def curve_plan(registry, defense: str, carried: bool) -> Plan:
    """Suite fgsm+pgd at the ranking 0.3; the curves of pgd and the recording attack over SWEEP."""
    create = registry.create
    return dataclasses.replace(
        plan(registry, defense, ["fgsm", "pgd"], ()), cascade_curves=carried, sweep_epsilons=list(SWEEP),
        sweep_attacks=[create("attack", "pgd"), create("attack", "cascade_recording")],
    )


def by_point(cells, seed):
    return {(c.attack, c.epsilon): c for c in cells if c.seed == seed and c.kind == "attack"}


def test_a_carried_curve_attacks_only_what_its_smaller_epsilon_left_and_keeps_that_point_elsewhere(registry, tmp_path):
    SEEN.clear()
    with Store.open(tmp_path / "carried.sqlite") as store:
        # 2 draws per set: enough points are wrong in every draw for the carrying to be exercised
        result = Runner(store).run(dataclasses.replace(curve_plan(registry, "v2_noisy_logits", carried=True), n_repeat=2))
        cells = store.cells()
    summary = summarize(result)
    attacked_sizes = []
    for seed in (0, 1):
        point = by_point(cells, seed)
        clean = next(c for c in cells if c.seed == seed and c.kind == "clean")
        for label in ("pgd", "cascade_recording"):
            # the chain: 0.0 behind clean only; pgd at 0.4 behind the ranking epsilon's (standalone) pgd cell
            below = {0.0: None, 0.1: 0.0, 0.2: 0.1, 0.4: 0.3 if label == "pgd" else 0.2, 0.8: 0.4, 1.0: 0.8}
            for epsilon in SWEEP:
                cell = point[(label, epsilon)]
                previous = point[(label, below[epsilon])] if below[epsilon] is not None else None
                gates = [clean] + ([previous] if previous is not None else [])
                assert cell.spec["cascade_after"] == [g.key for g in gates]
                s = survivors([g.correct for g in gates])
                assert cell.info["cascade"]["attacked"] == int(s.mask.sum())
                # an example the smaller epsilon broke keeps that point's bits, exactly
                assert np.array_equal(cell.correct[~s.mask], s.inherited[~s.mask])
                if label == "cascade_recording" and s.mask.any():
                    attacked_sizes.append(int(s.mask.sum()))
        assert "cascade_after" not in point[("pgd", 0.3)].spec  # the ranking epsilon's cell is standalone
    assert sorted(SEEN) == sorted(attacked_sizes)  # the attack was handed the survivors only
    assert summary["protocol"]["cascade_curves"] is True
    rows = {(r["attack"], r["epsilon"]): r for r in summary["attacks"]}
    assert rows[("pgd", 0.4)]["carried"] is True and rows[("pgd", 0.4)]["carried_from"] == 0.3
    assert rows[("cascade_recording", 0.0)]["carried_from"] is None
    assert "carried" not in rows[("pgd", 0.3)] and "carried" not in rows[("fgsm", 0.3)]
    assert 0 < rows[("cascade_recording", 1.0)]["attacked"] < rows[("cascade_recording", 0.0)]["attacked"] < 1


def test_carrying_a_deterministic_curve_is_the_per_example_minimum_over_the_smaller_radii(registry, tmp_path):
    """The recording attack is deterministic per example, so the carried curve must be exactly the running
    per-example minimum of the uncarried one: never weaker, and no weaker than the attack on its own."""
    with Store.open(tmp_path / "full.sqlite") as store:
        Runner(store).run(curve_plan(registry, "none", carried=False))
        full = store.cells()
    with Store.open(tmp_path / "carried.sqlite") as store:
        summary = summarize(Runner(store).run(curve_plan(registry, "none", carried=True)))
        carried = store.cells()
    assert "cascade_curves" not in summarize_protocol(registry, tmp_path)  # uncarried: no flag
    for seed in (0, 1):
        alone, chained = by_point(full, seed), by_point(carried, seed)
        clean = next(c for c in full if c.seed == seed and c.kind == "clean").correct[:, 0]
        running = clean.copy()
        for epsilon in SWEEP:
            running &= alone[("cascade_recording", epsilon)].correct[:, 0]
            assert np.array_equal(chained[("cascade_recording", epsilon)].correct[:, 0], running)
    values = [next(r for r in summary["attacks"] if r["attack"] == "cascade_recording" and r["epsilon"] == e)
              ["robust"]["mean"] for e in SWEEP]
    assert values == sorted(values, reverse=True)  # carried, a deterministic curve cannot rise


def summarize_protocol(registry, tmp_path):
    with Store.open(tmp_path / "full.sqlite") as store:
        return summarize(Runner(store).run(curve_plan(registry, "none", carried=False)))["protocol"]


def test_verify_rebuilds_a_carried_cell_behind_its_smaller_epsilons(registry, tmp_path):
    from qbench.publishing.entry import build_entry, validate
    from qbench.publishing.verify import _plan

    with Store.open(tmp_path / "s.sqlite") as store:
        result = Runner(store).run(curve_plan(registry, "v2_noisy_logits", carried=True))
        stored = {c.key: c for c in store.cells()}
    cells = [{"key": c.key, "seed": c.seed, "kind": c.kind, "attack": c.attack, "epsilon": c.epsilon,
              "status": c.status, "accuracy": c.accuracy} for s in result.seeds for c in s.cells]
    entry = build_entry(summarize(result), None, "tiny", 0.3, {}, cells, build_commit="x")
    # the carried rows and protocol are schema-valid (the test plugin's defense block is not a distribution's)
    published = json.loads((Path(__file__).parents[1] / "leaderboards/mapped-dnn/mnist-lenet/none.json").read_text())
    validate({**entry, "defense": published["defense"]})
    for attack in ("pgd", "cascade_recording"):
        cell = next(c for c in cells if c["attack"] == attack and c["epsilon"] == 0.4 and c["seed"] == 1)
        with Store.open(tmp_path / f"fresh-{attack}.sqlite") as store:
            again = Runner(store).run(_plan(registry, entry, cell))
        record = next(c for c in again.seeds[0].cells if c.key == cell["key"])
        assert np.array_equal(record.correct, stored[cell["key"]].correct)


def test_the_dry_runs_keys_are_the_stored_cells_for_cascaded_and_carried_plans(registry, tmp_path):
    """``--dry-run`` counts what is missing by the keys the runner stores: a cascaded or carried cell's key
    names its gates', so a preflight keying it as a standalone cell would call every such cell missing."""
    from qbench.running.preflight import missing_work, plan_keys

    p = dataclasses.replace(curve_plan(registry, "none", carried=True), attacks=[registry.create("attack", a)
                            for a in ("fgsm", "pgd", "cascade_recording")], cascade_gates=("fgsm", "pgd"))
    with Store.open(tmp_path / "s.sqlite") as store:
        result = Runner(store).run(p)
        stored = {c.key for c in store.cells()}
        assert any(c.spec.get("cascade_after") for c in store.cells() if c.epsilon == 0.3)  # both kinds ran
        assert any(c.spec.get("cascade_after") for c in store.cells() if c.epsilon == 0.4)
        keys = {key for seed in p.seeds for key, _, _ in plan_keys(p, seed)[1]}
        assert keys == stored
        work = missing_work(store, [(p, result.data)])
    assert not work.cells and work.stored_cells == work.total_cells == len(stored)
