"""APGD-CE under EOT is not weaker than PGD beyond noise, on the real stochastic models of both tracks.

The issue's claim, checked through the runner, a real SQLite store and :func:`qbench.publishing.summary.summarize`:
the ``noise_layer`` QNN on moons (angle encoding, 50-shot voting) and LeNet on MNIST read back through
ibm_nairobi's noise (``intrinsic_noise``). APGD version 1 let single noisy ``predict`` calls decide which
examples to attack and which iterate to keep; run with that behaviour (the plugin's stochastic branch
switched off) these settings showed it 8.75 points weaker than PGD on moons (flagged by the summary's
check) and 10.25 points weaker on LeNet (caught by the paired comparison below), so both tests can fail.

Both are paired comparisons on the same examples and, with common random numbers, the same evaluation
draws, so two tolerances are checked:

- the summary's own ``apgd-weaker-than-pgd`` check and the same rule restated, ``qbench.running.checks.tolerance``:
  two binomial standard errors at PGD's accuracy over the ``n`` test examples plus one example (what an
  unpaired reading of two accuracies on ``n`` examples may differ by from sampling alone);
- the paired rule: the mean per-example difference (APGD minus PGD, expected correctness on set B) must
  not exceed two standard errors of that difference plus one example. Pairing removes the examples'
  shared difficulty, so this catches a smaller weakening than the unpaired rule.
"""

from __future__ import annotations

import math

import pytest
import torch
from conftest import SHARED_DATA

from qbench.running.checks import tolerance
from qbench.contract.dataset import TrainingSchedule
from qbench.registry import load_registry
from qbench.running.runner import Plan, Runner
from qbench.running.scoring import expected_correct
from qbench.running.store import Store
from qbench.publishing.summary import summarize


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def run(tmp_path, plan: Plan, data_dir=None):
    """The plan's summary and its attack cells by label (one seed)."""
    with Store.open(tmp_path / "s.sqlite") as store:
        summary = summarize(Runner(store, data_dir=data_dir).run(plan))
        cells = {c.attack: c for c in store.cells() if c.kind == "attack"}
    return summary, cells


def check_apgd_not_weaker(summary, cells, epsilon: float) -> tuple[float, float, float]:
    """The assertions both tests share; returns (clean, pgd, apgd-ce)."""
    n = summary["n_test"]
    rows = {r["attack"]: r for r in summary["attacks"] if r["epsilon"] == epsilon}
    assert rows["pgd"]["status"] == "ok" and rows["apgd-ce"]["status"] == "ok"
    # the deployed prediction is random and was scored on n_repeat draws per set: EOT is what is tested
    assert summary["protocol"]["draws_per_set"] == summary["protocol"]["n_repeat"] > 1
    clean = summary["clean"]["mean"]
    pgd, apgd = rows["pgd"]["robust"]["mean"], rows["apgd-ce"]["robust"]["mean"]
    print(f"\n{summary['defense']['name']} on {summary['dataset']['name']}, eps={epsilon:g}, n={n}: "
          f"clean {clean:.4f}, pgd {pgd:.4f}, apgd-ce {apgd:.4f}")

    # not weaker than PGD beyond noise: the summary's check, and its rule (unpaired tolerance)
    assert not any(r.startswith("apgd-weaker-than-pgd") for r in summary["flags"]["reasons"]), summary["flags"]
    assert apgd <= pgd + tolerance(pgd, n), (apgd, pgd)
    # ... and paired, example by example on the same draws (the tighter rule, see the module docstring)
    diff = expected_correct(cells["apgd-ce"].correct) - expected_correct(cells["pgd"].correct)
    paired = 2 * diff.std(ddof=1) / math.sqrt(n) + 1 / n
    assert diff.mean() <= paired, (diff.mean(), paired)

    # teeth: the attack really works, far beyond the noise of the clean number
    assert apgd < clean - tolerance(clean, n), (apgd, clean)
    return clean, pgd, apgd


@pytest.mark.slow
def test_apgd_ce_is_not_weaker_than_pgd_on_the_noise_layer_qnn_on_moons(tmp_path):
    registry = load_registry()
    create = registry.create
    plan = Plan(
        track="qnn", dataset=create("dataset", "moons"), model=create("model", "qnn", {"encoding": "angle"}, "qnn"),
        defense=create("defense", "noise_layer", None, "qnn"),
        attacks=[create("attack", "pgd", None, "qnn"), create("attack", "apgd-ce", None, "qnn")],
        epsilons=[0.15], seeds=[0],
        # 5 of the dataset's 100 epochs (at a larger learning rate) already reach ~84% under noise and voting
        schedule=TrainingSchedule(epochs=5, lr=0.05, batch_size=32),
        # the whole test split (200 examples): at 100 the unpaired tolerance (~9 points) would let the
        # 8.75-point weakness of APGD version 1 through; a circuit this small makes the 200 cheap
        n_eot=8, n_repeat=4, n_test=200, shots=50,
    )
    summary, cells = run(tmp_path, plan)
    assert summary["n_test"] == 200
    clean, _, _ = check_apgd_not_weaker(summary, cells, 0.15)
    assert clean > 0.75  # chance is 0.5


@pytest.mark.slow
def test_apgd_ce_is_not_weaker_than_pgd_on_a_noisy_lenet_on_mnist(tmp_path):
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip(f"the MNIST IDX files are not in {SHARED_DATA / 'mnist'}")
    registry = load_registry()
    create = registry.create
    track = "mapped-dnn"
    plan = Plan(
        track=track,
        # a stratified 10000-image training subset, 2 epochs: ~2.5 s on one thread (the full schedule,
        # 5 epochs of 60000, is ~2 minutes)
        dataset=create("dataset", "mnist", {"n_train": 10000}, track), model=create("model", "lenet", None, track),
        # the board's backend, grid and 1024 shots per read-back (the noise level); 4 instead of 16
        # batches per value to estimate bias and spread: ~10 s of Aer instead of ~38 s, same clean accuracy
        defense=create("defense", "intrinsic_noise", {"repeats": 4}, track),
        attacks=[create("attack", "pgd", None, track), create("attack", "apgd-ce", None, track)],
        epsilons=[0.1], seeds=[0],
        schedule=TrainingSchedule(epochs=2, lr=0.001, batch_size=128, optimizer="adam"),
        n_eot=4, n_repeat=4, n_test=100,
    )
    summary, cells = run(tmp_path, plan, data_dir=SHARED_DATA)
    assert summary["n_test"] == 100
    clean, _, _ = check_apgd_not_weaker(summary, cells, 0.1)
    assert clean > 0.85  # chance is 0.1
