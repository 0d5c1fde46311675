"""Scoring v2, equal readout: QNN defenses predict from the board's ``ctx.shots``; exact deployed channels; dtypes."""

import pytest
import torch

from qbench import UsageError, is_stochastic
from qbench.engine import execute
from qbench.registry import load_registry
from qbench.contract.testing import context, tiny_split

REGISTRY = load_registry()


def qnn(data, **options):
    return REGISTRY.create("model", "qnn", {"n_layers": 2, **options}).build(data, context(data))


# ----------------------------------------------------------------------------- noise_layer: J = ctx.shots


def noisy_model(data, noise="both", beta=1.0):
    defense = REGISTRY.create("defense", "noise_layer", {"noise": noise})
    model = defense.prepare(qnn(data), context(data)).eval()
    with torch.no_grad():
        model.inserts[0].beta.fill_(beta)
    return defense, model


def spy_rows(model):
    """Record the batch size of every circuit execution of ``model``."""
    rows = []
    inner = model.class_probabilities

    def spied(x):
        rows.append(len(x))
        return inner(x)

    model.class_probabilities = spied
    return rows


def test_noise_layer_has_no_shots_option_of_its_own():
    assert REGISTRY.get("defense", "noise_layer").version == "2"
    with pytest.raises(UsageError):
        REGISTRY.create("defense", "noise_layer", {"shots": 7})


@pytest.mark.parametrize("shots", [1, 7, 50])
def test_noise_layer_measures_one_noisy_copy_per_board_shot(shots):
    data = tiny_split(n_features=4, n_test=6)
    defense, model = noisy_model(data)
    rows = spy_rows(model)
    labels = defense.predict(model, data.x_test, context(data, shots=shots))
    assert rows == [6 * shots]  # J = ctx.shots copies, each with its own noise draw and single shot
    assert labels.shape == (6,) and labels.dtype == torch.int64


def test_noise_layer_exact_readout_and_noise_off_at_test_time():
    data = tiny_split(n_features=4, n_test=6)
    defense, model = noisy_model(data)
    rows = spy_rows(model)
    defense.predict(model, data.x_test, context(data, shots=None))
    assert rows == [6]  # one noisy forward, exact probabilities
    defense, model = noisy_model(data, noise="train")  # no noise in evaluation: the plain 50-shot readout
    rows = spy_rows(model)
    defense.predict(model, data.x_test, context(data, shots=50))
    assert rows == [6]


@pytest.fixture(scope="module")
def voting():
    """A noisy model and one input whose noise-averaged majority-class probability is about 0.7."""
    torch.manual_seed(0)
    data = tiny_split(n_features=4, n_test=32)
    defense, model = noisy_model(data)
    with torch.no_grad():
        mean = torch.stack([model.class_probabilities(data.x_test) for _ in range(300)]).mean(0)
    majority = mean.argmax(1)
    top = mean.max(1).values
    index = int((top - 0.72).abs().argmin())
    p_bar = float(top[index])
    assert 0.62 < p_bar < 0.85, p_bar
    return defense, model, data, data.x_test[index : index + 1].repeat(400, 1), int(majority[index]), p_bar


def test_noise_layer_shot_count_sets_the_vote_distribution(voting):
    defense, model, data, x, majority, p_bar = voting
    torch.manual_seed(1)
    one = (defense.predict(model, x, context(data, shots=1)) == majority).double().mean().item()
    fifty = (defense.predict(model, x, context(data, shots=50)) == majority).double().mean().item()
    # one shot: the label is the majority class with probability p_bar (binomial sd ~0.023 on 400)
    assert abs(one - p_bar) < 0.1, (one, p_bar)
    # 50 shots, noise redrawn per shot: the majority of 50 draws, P(Bin(50, p_bar) > 25) > 0.97
    assert fifty > 0.95, fifty


def test_noise_layer_same_seed_same_labels(voting):
    defense, model, data, x, _, _ = voting
    ctx = context(data, shots=1)
    torch.manual_seed(7)
    a = defense.predict(model, x, ctx)
    torch.manual_seed(7)
    b = defense.predict(model, x, ctx)
    torch.manual_seed(8)
    c = defense.predict(model, x, ctx)
    assert torch.equal(a, b) and not torch.equal(a, c)


# ----------------------------------------------------------------------------- depolarizing: the channel as measured


@pytest.mark.parametrize("placement,n_features,encoding,shots,options", [
    ("layers", 4, "amplitude", None, {}), ("measurement", 4, "amplitude", None, {}), ("layers", 3, "angle", None, {}),
    ("layers", 4, "amplitude", 5, {}), ("layers", 4, "amplitude", 5, {"attack_view": "exact", "trajectories": 1000}),
])
def test_depolarizing_deploys_the_exact_channel(placement, n_features, encoding, shots, options):
    """Under the exact readout, or where the density matrix is the cheaper view, the deployed forward is the
    density matrix: on 2 qubits always, unless the sampled view is asked for."""
    data = tiny_split(n_features=n_features, n_test=5)
    ctx = context(data, shots=shots)
    defense = REGISTRY.create("defense", "depolarizing", {"p": 0.1, "placement": placement, **options})
    model = defense.prepare(qnn(data, dtype="float64", encoding=encoding), ctx)
    assert is_stochastic(model)  # trains on sampled Pauli trajectories
    model = defense.deploy(model, data, ctx).eval()
    assert not is_stochastic(model) and model.method == "density"
    assert defense.describe(model)["deployed"] == "density"
    if shots is None:  # the exact readout: the argmax of the channel's probabilities
        assert torch.equal(defense.predict(model, data.x_test.double(), ctx), model(data.x_test.double()).argmax(1))
    x = data.x_test.double().requires_grad_(True)
    ours = model.class_probabilities(x)
    assert torch.equal(ours, model.class_probabilities(x))  # deterministic
    ref_x = data.x_test.double().requires_grad_(True)
    model.device_name = "default.mixed"  # PennyLane's density-matrix simulator, the same channels
    ref = model.class_probabilities(ref_x)
    assert ours.dtype == torch.float64
    assert (ours - ref).abs().max().item() < 1e-6
    (g,) = torch.autograd.grad(ours[:, 1].sum(), x)
    (g_ref,) = torch.autograd.grad(ref[:, 1].sum(), ref_x)
    assert (g - g_ref).abs().max().item() < 1e-6  # attacks see the exact channel's gradient


def test_depolarizing_under_shots_attacks_see_an_estimate_from_trajectories():
    data = tiny_split(n_features=4, n_test=6)
    ctx = context(data, shots=5)
    defense = REGISTRY.create("defense", "depolarizing", {"p": 0.1, "attack_view": "sampled", "trajectories": 7})
    model = defense.deploy(defense.prepare(qnn(data, dtype="float64"), ctx), data, ctx).eval()
    assert is_stochastic(model) and model.method == "trajectories" and model.n_trajectories == 7
    assert defense.describe(model) == {
        "p": 0.1, "placement": "layers", "exact": False, "attack_view": "sampled", "trained_on": "trajectories",
        "deployed": "trajectory per shot", "attack_trajectories": 7,
    }
    exact = REGISTRY.create("defense", "depolarizing", {"p": 0.1, "attack_view": "exact"})
    channel = exact.deploy(exact.prepare(qnn(data, dtype="float64"), ctx), data, ctx)
    channel.load_state_dict(model.state_dict())
    x = data.x_test.double()
    with torch.no_grad():
        p_exact = channel.class_probabilities(x)
        torch.manual_seed(0)
        draws = torch.stack([model.class_probabilities(x) for _ in range(300)])
    # each forward averages 7 trajectories: unbiased for the channel, with the spread of 7 trajectories
    assert (draws.mean(0) - p_exact).abs().max().item() < 0.02
    assert draws.std(0).max().item() > 1e-3
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model.class_probabilities(xg)[:, 1].sum(), xg)
    assert torch.isfinite(g).all() and g.abs().sum() > 0


def test_depolarizing_shots_are_the_channels_shots():
    """One trajectory per shot: the label's distribution is exactly that of J shots of the density matrix.

    With J = 5 shots of a binary readout (no readout bias: a freshly built model's is zero), the label is
    class 1 when at least 3 shots are, so P(label 1) = P(Binomial(5, p1) >= 3) with p1 the channel's exact
    probability. Shots sharing one trajectory per example would follow E_T[P(Binomial(5, p1_T) >= 3)]
    instead, which differs wherever p1_T spreads.
    """
    from math import comb

    data = tiny_split(n_features=4, n_test=8)
    ctx = context(data, shots=5)
    defense = REGISTRY.create("defense", "depolarizing", {"p": 0.3, "attack_view": "sampled"})
    model = defense.deploy(defense.prepare(qnn(data, dtype="float64"), ctx), data, ctx).eval()
    rows = spy_rows(model)
    exact = REGISTRY.create("defense", "depolarizing", {"p": 0.3, "attack_view": "exact"})
    channel = exact.deploy(exact.prepare(qnn(data, dtype="float64"), ctx), data, ctx)
    channel.load_state_dict(model.state_dict())
    with torch.no_grad():
        p1 = channel.class_probabilities(data.x_test.double())[:, 1]
    expected = sum(comb(5, k) * p1 ** k * (1 - p1) ** (5 - k) for k in range(3, 6))
    torch.manual_seed(1)
    n = 1500
    labels = torch.stack([defense.predict(model, data.x_test, ctx) for _ in range(n)]).double()
    assert rows[0] == 8 * 5  # every shot its own row, so its own trajectory
    assert model.n_trajectories == 10  # the attacks' estimate is restored after predicting
    # binomial standard error <= 0.013 at n = 1500: a 4.5-sigma band
    assert (labels.mean(0) - expected).abs().max().item() < 0.06
    torch.manual_seed(1)
    again = torch.stack([defense.predict(model, data.x_test, ctx) for _ in range(3)]).double()
    assert torch.equal(again, labels[:3])  # reproducible from torch's global generator


def test_depolarizing_exact_trains_on_the_channel():
    data = tiny_split(n_features=4)
    defense = REGISTRY.create("defense", "depolarizing", {"exact": True})
    model = defense.prepare(qnn(data), context(data))
    assert not is_stochastic(model) and model.method == "density"
    assert REGISTRY.get("defense", "depolarizing").version == "3"


def test_depolarizing_refuses_no_trajectories():
    with pytest.raises(UsageError, match="trajectories"):
        REGISTRY.create("defense", "depolarizing", {"trajectories": 0})


def test_depolarizing_samples_where_the_density_matrix_is_dearer():
    """auto: sampled iff 2^n > trajectories x EOT samples (8 qubits at 10 x 20: sampled; 7: exact)."""
    from qbench_plugins.defenses.depolarizing import sampling_is_cheaper

    assert sampling_is_cheaper(8, 10, 20) and not sampling_is_cheaper(7, 10, 20)
    assert not sampling_is_cheaper(8, 10, 26) and sampling_is_cheaper(8, 1, 20)
    data = tiny_split(n_features=256, n_test=3)
    defense = REGISTRY.create("defense", "depolarizing", {})
    for shots, n_eot, method in [(50, 20, "trajectories"), (50, 40, "density"), (None, 20, "density")]:
        ctx = context(data, shots=shots, n_eot=n_eot)
        model = defense.deploy(defense.prepare(qnn(data, n_layers=1), ctx), data, ctx)
        assert model.n_wires == 8 and model.method == method, (shots, n_eot)
        assert is_stochastic(model) == (method == "trajectories")


# ----------------------------------------------------------------------------- circuit dtype


@pytest.mark.parametrize("name", ["qnn", "qcnn"])
def test_float64_circuit_runs_in_float64(name):
    data = tiny_split(n_features=4, n_test=4)
    options = {"dtype": "float64", **({"n_layers": 2} if name == "qnn" else {})}
    model = REGISTRY.create("model", name, options).build(data, context(data))
    assert model.readout_bias is not None  # created before the weights
    # a defense's float32 insert parameters do not decide the circuit's dtype either
    model = REGISTRY.create("defense", "noise_layer", {"noise": "off"}).prepare(model, context(data))
    assert model.parameter_dtype == torch.float64
    x = torch.rand(4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    probs = model.class_probabilities(x)
    assert probs.dtype == torch.float64
    # reference: the same circuit on PennyLane's default.qubit, inputs kept in float64
    ref = execute(model.circuit(x), model.n_wires, model.readout_wires, device="default.qubit").probs
    assert (probs - ref[:, : model.n_classes]).abs().max().item() < 1e-10


def test_float32_circuit_stays_float32():
    data = tiny_split(n_features=4, n_test=4)
    model = qnn(data)
    assert model.parameter_dtype == torch.float32
    assert model.class_probabilities(data.x_test.double()).dtype == torch.float32
