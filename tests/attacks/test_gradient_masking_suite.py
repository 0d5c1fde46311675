"""Issue 18: a suite that gradient masking cannot fool, on a 2-D problem like moons.

A third party's defense quantises its input to a 0.1 grid with ``torch.round`` (zero input gradient almost
everywhere) in front of an ordinary MLP. PGD sees no gradient; ``grid-search`` (exhaustive over the
epsilon ball), ``square`` (random search, now on vectors too) and ``nes`` (probes scaled with epsilon)
only query outputs and must bring the masked model down to what PGD achieves on the unmasked one.
Also: the EOT scores of the gradient-free searches on a stochastic model, grid-search's skip and
optimality, and APGD-T (AutoAttack's targeted APGD) against APGD-CE on 3 classes.
"""

import numpy as np
import pytest
import torch
from sklearn.datasets import make_moons

from qbench import AttackSkipped, DataSplit, Domain
from qbench.registry import load_registry
from qbench.contract.testing import TinyLinear, check_attack, check_component, context, tiny_split

REGISTRY = load_registry()
EPS = 0.1
#: how far above PGD-on-the-unmasked-model a gradient-free attack on the masked model may stay
#: (measured: pgd 0.670 unmasked; grid-search 0.600, square 0.600, nes 0.630 masked; pgd masked 0.965)
TOLERANCE = 0.08


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make(name, **options):
    return REGISTRY.create("attack", name, options)


class MLP(torch.nn.Module):
    def __init__(self, n_features=2, n_classes=2, hidden=32):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(
            torch.nn.Linear(n_features, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, hidden), torch.nn.Tanh(),
            torch.nn.Linear(hidden, n_classes),
        )

    def forward(self, x):
        return self.net(x)


class RoundInput(torch.nn.Module):
    """A third party's "defense": quantise the input to a grid of ``step`` before the model."""

    def __init__(self, inner, step=0.1):
        super().__init__()
        self.inner, self.step = inner, step

    def forward(self, x):
        return self.inner(torch.round(x / self.step) * self.step)


class NoisyLogits(torch.nn.Module):
    """Gaussian noise of scale ``sd`` on every logit of every forward."""

    stochastic = True

    def __init__(self, inner, sd):
        super().__init__()
        self.inner, self.sd = inner, sd

    def forward(self, x):
        z = self.inner(x)
        return z + self.sd * torch.randn_like(z)


def train(model, x, y, steps=300, lr=0.01):
    opt = torch.optim.Adam(model.parameters(), lr)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.requires_grad_(False)


def scaled_moons(n, seed):
    """sklearn's two moons scaled into [0, 1]^2 (a box domain)."""
    x, y = make_moons(n_samples=n, noise=0.1, random_state=seed)
    x = (x - np.array([-1.2, -0.7])) / np.array([3.4, 2.0])
    return torch.tensor(x, dtype=torch.float32).clamp(0, 1), torch.tensor(y)


@pytest.fixture(scope="module")
def moons():
    torch.set_num_threads(1)
    x_train, y_train = scaled_moons(400, 0)
    x_test, y_test = scaled_moons(200, 1)
    data = DataSplit(x_train, y_train, x_test, y_test, n_classes=2, domain=Domain("box", 0.0, 1.0), notes="moons in [0, 1]")
    plain = train(MLP(), x_train, y_train)
    return data, plain, RoundInput(plain)


def accuracy(model, x, y, repeats=1):
    torch.manual_seed(1234)
    with torch.no_grad():
        return float(np.mean([(model(x).argmax(1) == y).float().mean() for _ in range(repeats)]))


def attacked(name, model, data, eps=EPS, seed=0, n_eot=4, **options):
    # ART's random starts draw from numpy's global RNG: seeded too, or the numbers depend on the tests
    # that ran before in the same worker
    torch.manual_seed(seed)
    np.random.seed(seed)
    adv = make(name, **options).generate(model, data.x_test.clone(), data.y_test.clone(), eps, context(data, seed=seed, n_eot=n_eot))
    assert adv.shape == data.x_test.shape and data.domain.contains(adv)
    assert float((adv - data.x_test).abs().max()) <= eps + 1e-6
    return adv


@pytest.fixture(scope="module")
def reference(moons):
    """PGD on the unmasked model, and PGD on the masked one."""
    data, plain, masked = moons
    return {
        "clean-masked": accuracy(masked, data.x_test, data.y_test),
        "pgd-plain": accuracy(plain, attacked("pgd", plain, data), data.y_test),
        "pgd-masked": accuracy(masked, attacked("pgd", masked, data), data.y_test),
    }


def test_rounding_masks_the_gradient_from_pgd(moons, reference):
    data, plain, masked = moons
    assert reference["clean-masked"] >= 0.95
    assert reference["pgd-plain"] <= reference["clean-masked"] - 0.2  # the model is not robust at this epsilon
    assert reference["pgd-masked"] >= reference["clean-masked"] - 0.05  # but PGD on the masked one says it is
    # as did NES with version 1's fixed probes of 0.001, far below the grid's step
    old_nes = accuracy(masked, attacked("nes", masked, data, sigma=0.001), data.y_test)
    assert old_nes >= reference["clean-masked"] - 0.05


@pytest.mark.parametrize("name", ["grid-search", "square", "nes"])
def test_gradient_free_attacks_see_through_input_rounding(moons, reference, name):
    data, plain, masked = moons
    acc = accuracy(masked, attacked(name, masked, data), data.y_test)
    assert acc <= reference["pgd-plain"] + TOLERANCE, (name, acc, reference)
    assert acc <= reference["pgd-masked"] - 0.25, (name, acc, reference)


@pytest.mark.parametrize("name", ["grid-search", "square"])
def test_random_and_grid_search_average_noisy_scores_over_eot(moons, name):
    """On a noisy model, scoring candidates on n_eot forwards beats scoring them on one (measured over seeds
    0-3: grid-search 0.556-0.566 vs 0.669-0.691, square 0.564-0.569 vs 0.656-0.674)."""
    data, plain, masked = moons
    noisy = NoisyLogits(masked, sd=5.0)
    eot = accuracy(noisy, attacked(name, noisy, data, n_eot=10), data.y_test, repeats=20)
    single = accuracy(noisy, _single_sample(name, noisy, data), data.y_test, repeats=20)
    assert eot <= single - 0.05, (eot, single)


def _single_sample(name, model, data, seed=0):
    torch.manual_seed(seed)
    return make(name, n_eot=1).generate(model, data.x_test.clone(), data.y_test.clone(), EPS, context(data, seed=seed, n_eot=10))


def worst_vertex_margin(model, x, y, eps, low=0.0, high=1.0):
    """The exact minimum over the L-inf ball (clipped to the box) of a linear binary model's margin."""
    w = model.linear.weight
    direction = torch.sign(w[1 - y] - w[y])  # raises the other logit, lowers the true one
    worst = (x + eps * direction).clamp(low, high)
    with torch.no_grad():
        z = model(worst)
    return z.gather(1, y[:, None]).squeeze(1) - z.gather(1, (1 - y)[:, None]).squeeze(1), worst


def test_grid_search_finds_the_exact_worst_point_of_a_linear_model():
    data = tiny_split(n_features=2, n_test=64)
    model = TinyLinear(2)
    x, y = data.x_test, data.y_test
    adv = attacked("grid-search", model, data, eps=0.15)
    best, _ = worst_vertex_margin(model, x, y, 0.15)
    with torch.no_grad():
        z = model(adv)
    got = z.gather(1, y[:, None]).squeeze(1) - z.gather(1, (1 - y)[:, None]).squeeze(1)
    torch.testing.assert_close(got, best, atol=1e-5, rtol=0)


def test_square_on_vectors_fools_every_example_the_worst_vertex_fools():
    for d in (2, 5):  # 5: not a square length either
        data = tiny_split(n_features=d, n_test=64, seed=d)
        model = TinyLinear(d, seed=d)
        x, y = data.x_test, data.y_test
        best, _ = worst_vertex_margin(model, x, y, 0.1)
        adv = attacked("square", model, data, max_iter=300)
        with torch.no_grad():
            fooled = model(adv).argmax(1) != y
        assert bool(fooled[best < 0].all()) and int(fooled.sum()) == int((best < 0).sum())


def test_grid_search_skips_inputs_of_more_than_4_features():
    data = tiny_split(n_features=5)
    with pytest.raises(AttackSkipped, match="at most 4 features"):
        make("grid-search").generate(TinyLinear(5), data.x_test, data.y_test, 0.1, context(data))


@pytest.mark.parametrize("domain", [Domain("box", 0.0, 1.0), Domain("sphere"), Domain("unbounded")])
@pytest.mark.parametrize("name,d", [("grid-search", 2), ("grid-search", 4), ("square", 2), ("square", 3), ("nes", 2)])
def test_new_searches_follow_the_attack_contract(name, d, domain):
    check_attack(type(make(name)), data=tiny_split(n_features=d, n_test=16, domain=domain), model=TinyLinear(d))


def three_blobs(n, seed, d=4):
    centres = torch.rand(3, d, generator=torch.Generator().manual_seed(99))
    y = torch.arange(n) % 3
    x = (centres[y] + 0.15 * torch.randn(n, d, generator=torch.Generator().manual_seed(seed))).clamp(0, 1)
    return x, y


@pytest.fixture(scope="module")
def three_classes():
    torch.set_num_threads(1)
    x_train, y_train = three_blobs(300, 0)
    x_test, y_test = three_blobs(150, 1)
    data = DataSplit(x_train, y_train, x_test, y_test, n_classes=3, domain=Domain("box", 0.0, 1.0), notes="3 blobs")
    return data, train(MLP(n_features=4, n_classes=3), x_train, y_train, lr=0.02)


class Scaled(torch.nn.Module):
    """Logits times ``k``: a large ``k`` saturates the softmax, and the cross-entropy gradient underflows to 0."""

    def __init__(self, inner, k):
        super().__init__()
        self.inner, self.k = inner, k

    def forward(self, x):
        return self.k * self.inner(x)


def test_apgd_t_is_registered_and_skips_binary_tasks():
    cls = type(make("apgd-t"))
    check_component(cls)
    assert cls.threat == "white-box" and cls.iterative is True and cls.Config().n_targets == 9
    data = tiny_split()
    with pytest.raises(AttackSkipped, match="at least 3 classes"):
        make("apgd-t").generate(TinyLinear(4), data.x_test, data.y_test, 0.1, context(data))


@pytest.mark.parametrize("stochastic", [False, True])
def test_apgd_t_is_at_least_as_strong_as_apgd_ce_on_three_classes(three_classes, stochastic):
    """Measured (eps 0.2): apgd-t 0.820 vs apgd-ce 0.820 deterministic, 0.802 vs 0.818 with logit noise."""
    data, mlp = three_classes
    model = NoisyLogits(mlp, sd=0.5) if stochastic else mlp
    repeats = 10 if stochastic else 1
    acc = {name: accuracy(model, attacked(name, model, data, eps=0.2, n_eot=8), data.y_test, repeats)
           for name in ("apgd-ce", "apgd-t")}
    assert acc["apgd-t"] <= accuracy(model, data.x_test, data.y_test, repeats) - 0.1
    assert acc["apgd-t"] <= acc["apgd-ce"] + 0.02, acc


def test_apgd_t_does_not_need_the_cross_entropy_gradient(three_classes):
    """With logits scaled by 1e4 the cross-entropy gradient is zero in float32: APGD-CE stalls (0.993 measured),
    the targeted DLR loss is scale-free (0.813; 0.820 on the unscaled model)."""
    data, mlp = three_classes
    model = Scaled(mlp, 1e4)
    ce = accuracy(model, attacked("apgd-ce", model, data, eps=0.2), data.y_test)
    t = accuracy(model, attacked("apgd-t", model, data, eps=0.2), data.y_test)
    unscaled = accuracy(mlp, attacked("apgd-t", mlp, data, eps=0.2), data.y_test)
    assert t <= ce - 0.1 and abs(t - unscaled) <= 0.02, (ce, t, unscaled)


def test_apgd_t_vector_dlr_matches_arts_dlr():
    from art.attacks.evasion import AutoProjectedGradientDescent
    from art.estimators.classification import PyTorchClassifier

    from qbench_plugins.attacks.apgd import _DLRLoss

    torch.manual_seed(0)
    net = torch.nn.Linear(4, 5)
    clf = PyTorchClassifier(model=net, loss=torch.nn.CrossEntropyLoss(), input_shape=(4,), nb_classes=5, clip_values=(0, 1))
    art_loss = AutoProjectedGradientDescent(clf, loss_type="difference_logits_ratio", verbose=False).estimator._loss
    x = torch.rand(40, 4)
    y = torch.nn.functional.one_hot(torch.randint(0, 5, (40,)), 5).float()
    for reduction in ("none", "mean", "sum"):
        ours = _DLRLoss()
        art_loss.reduction = ours.reduction = reduction
        torch.testing.assert_close(ours(net(x), y), art_loss(net(x), y))


def test_the_runner_reports_the_masking_defense_as_unreliable_with_the_new_attacks(tmp_path):
    """Through the runner and store: on a 2-D task the rounding defense's worst case follows the gradient-free
    attacks (measured: clean 0.95, pgd 0.96, grid-search 0.74, square 0.74, nes 0.75), apgd-t is recorded as
    skipped (2 classes), and the summary flags the gradient-free attacks beating every white-box one."""
    from qbench import Dataset, Defense, Model, TrainingSchedule
    from qbench.running.runner import Plan, Runner
    from qbench.running.store import Store
    from qbench.publishing.summary import summarize

    class Moons01(Dataset):
        name, description, tracks = "moons01", "moons scaled to [0, 1]", ("qnn",)

        def load(self, ctx):
            x_train, y_train = scaled_moons(400, 0)
            x_test, y_test = scaled_moons(200, 1)
            return DataSplit(x_train, y_train, x_test, y_test, n_classes=2, domain=Domain("box", 0.0, 1.0), notes="")

    class Net(Model):
        name, description, tracks = "mlp", "a small tanh MLP", ("qnn",)

        def build(self, data, ctx):
            return MLP()

    class Rounding(Defense):
        name, description, tracks = "rounding", "rounds the input to a 0.1 grid", ("qnn",)

        def prepare(self, model, ctx):
            return RoundInput(model)

    names = [("pgd", {}), ("grid-search", {}), ("square", {"max_iter": 200}), ("nes", {}), ("apgd-t", {})]
    plan = Plan(
        track="qnn", dataset=Moons01(), model=Net(), defense=Rounding(),
        attacks=[REGISTRY.create("attack", n, o) for n, o in names], epsilons=[EPS], seeds=[0],
        schedule=TrainingSchedule(epochs=100, lr=0.05, batch_size=64),
    )
    with Store.open(tmp_path / "s.sqlite") as store:
        summary = summarize(Runner(store).run(plan))
    acc = {r["name"]: r["robust"]["mean"] for r in summary["attacks"] if r["robust"]}
    skipped = [r for r in summary["attacks"] if r["name"] == "apgd-t"]
    assert "apgd-t" not in acc and skipped[0]["status"] == "skipped" and "3 classes" in skipped[0]["reason"]
    assert acc["pgd"] >= summary["clean"]["mean"] - 0.1
    for name in ("grid-search", "square", "nes"):
        assert acc[name] <= acc["pgd"] - 0.2, acc
    assert summary["worst_case"][0]["robust"]["mean"] <= acc["grid-search"]
    assert summary["flags"]["unreliable"] and "black-box-beats-white-box" in " ".join(summary["flags"]["reasons"])


def test_eot_scores_are_separate_forwards():
    """A model that draws its noise once per forward (weight read-back noise) must get n_eot draws per score,
    not one draw shared by n_eot tiled copies."""
    from qbench_plugins.attacks.square import margins

    class PerForwardNoise(torch.nn.Module):
        stochastic = True

        def __init__(self):
            super().__init__()
            self.inner, self.batches = TinyLinear(2), []

        def forward(self, x):
            self.batches.append(len(x))
            z = self.inner(x)
            return z + torch.tensor([1.0, -1.0]) * torch.randn(())  # one draw for the whole batch

    model = PerForwardNoise()
    x, y = torch.rand(7, 2), torch.zeros(7, dtype=torch.long)
    torch.manual_seed(0)
    got = margins(model, x, y, n_eot=5)
    assert model.batches == [7] * 5
    torch.manual_seed(0)
    draws = torch.randn(5)
    with torch.no_grad():
        z = model.inner(x)
    torch.testing.assert_close(got, (z[:, 0] - z[:, 1]) + 2 * draws.mean())
