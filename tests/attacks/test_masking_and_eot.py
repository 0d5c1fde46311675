"""The suite against a gradient-masking defense and a stochastic model, through the real runner and store."""

import numpy as np
import pytest
import torch

from qbench import Dataset, Defense, Domain, Model, TrainingSchedule
from qbench.registry import load_registry
from qbench.running.runner import Plan, Runner
from qbench.running.store import Store
from qbench.publishing.summary import summarize
from qbench.contract.testing import TinyLinear, context, tiny_split

REGISTRY = load_registry()


class Tiny(Dataset):
    name = "tiny"
    description = "tiny generated data"
    tracks = ("qnn",)

    def load(self, ctx):
        return tiny_split(n_train=128, n_test=150, n_features=4)


class Linear(Model):
    name = "linear"
    description = "a linear model"
    tracks = ("qnn",)

    def build(self, data, ctx):
        return TinyLinear(4)


class Quantised(torch.nn.Module):
    """Rounds inputs to a grid of 0.5 before the model: zero input gradient almost everywhere."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(torch.round(x * 2) / 2)


class MaskingDefense(Defense):
    name = "masking"
    description = "input quantisation: masks the gradient"
    tracks = ("qnn",)

    def prepare(self, model, ctx):
        return Quantised(model)


def plan(defense, attacks, epsilons, seeds=(0,), **kw):
    return Plan(
        track="qnn", dataset=Tiny(), model=Linear(), defense=defense,
        attacks=[REGISTRY.create("attack", n, o) for n, o in attacks], epsilons=list(epsilons), seeds=list(seeds),
        schedule=TrainingSchedule(epochs=30, lr=0.05, batch_size=32), **kw,
    )


def test_gradient_masking_is_exposed_and_flagged(tmp_path):
    attacks = [("fgsm", {}), ("bim", {}), ("pgd", {"steps": 10}), ("nes", {"steps": 10, "samples": 40, "sigma": 0.05})]
    with Store.open(tmp_path / "s.sqlite") as store:
        runner = Runner(store)
        p = plan(MaskingDefense(), attacks, [0.25])
        # a one-step gradient probe: against a zero gradient it moves nothing, so accuracy stays at clean
        # (PGD's random start alone lands within a point of the threshold, a matter of its seed)
        p.probe, p.probe_epsilon = REGISTRY.create("attack", "fgsm"), 0.5
        summary = summarize(runner.run(p))
    acc = {r["name"]: r["robust"]["mean"] for r in summary["attacks"]}
    clean = summary["clean"]["mean"]
    # plain white-box attacks see a zero gradient: FGSM and BIM change nothing, PGD only its random start
    assert acc["fgsm"] == acc["bim"] == clean
    assert acc["pgd"] >= clean - 0.1
    # the gradient-free attack does not, and the per-example worst case follows it
    assert acc["nes"] < clean - 0.2
    assert summary["worst_case"][0]["robust"]["mean"] <= acc["nes"]
    assert summary["flags"]["unreliable"]
    reasons = " ".join(summary["flags"]["reasons"])
    assert "gradient:" in reasons and "zero loss gradient" in reasons
    assert "black-box-beats-white-box" in reasons
    assert "large-epsilon" in reasons


def test_undefended_linear_model_is_not_flagged(tmp_path):
    attacks = [("fgsm", {}), ("pgd", {"steps": 10, "step_fraction": 0.25}), ("nes", {"steps": 10, "samples": 40, "sigma": 0.05})]
    with Store.open(tmp_path / "s.sqlite") as store:
        p = plan(Defense(), attacks, [0.05, 0.15, 0.25])
        p.probe, p.probe_epsilon = REGISTRY.create("attack", "pgd", {"steps": 10}), 0.5
        summary = summarize(Runner(store).run(p))
    assert summary["flags"] == {"unreliable": False, "reasons": []}
    worst = [w["robust"]["mean"] for w in summary["worst_case"]]
    assert worst == sorted(worst, reverse=True)


class NoisyGradient(torch.nn.Module):
    """A linear model plus a small random term with a large, random input gradient.

    Its expected logits are those of the linear model, but one forward's gradient is dominated by the
    random term; only the expectation over transformation recovers the useful direction.
    """

    stochastic = True

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        r = torch.randn(x.shape[0], 1)
        wiggle = 0.05 * r * torch.sin(100 * x.sum(dim=1, keepdim=True))
        return self.inner(x - 0.5) + torch.cat([wiggle, -wiggle], dim=1)


def test_eot_pgd_is_stronger_than_plain_pgd_on_a_stochastic_model():
    data = tiny_split(n_train=64, n_test=300, n_features=4)
    plain, eot = [], []
    for seed in range(3):
        model = NoisyGradient(TinyLinear(4, seed=seed))
        y = model.inner(data.x_test - 0.5).argmax(1).detach()  # labels the model gets right
        for n_eot, out in ((1, plain), (20, eot)):
            ctx = context(data, seed=seed, n_eot=20)
            torch.manual_seed(seed)
            adv = REGISTRY.create("attack", "pgd", {"steps": 10, "n_eot": n_eot}).generate(model, data.x_test.clone(), y.clone(), 0.15, ctx)
            with torch.no_grad():
                out.append(float((model.inner(adv - 0.5).argmax(1) == y).float().mean()))
    assert np.mean(eot) < np.mean(plain) - 0.1, (plain, eot)
