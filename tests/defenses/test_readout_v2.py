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


# ----------------------------------------------------------------------------- depolarizing: the exact channel


@pytest.mark.parametrize("placement,n_features,encoding", [
    ("layers", 4, "amplitude"), ("measurement", 4, "amplitude"), ("layers", 3, "angle"),
])
def test_depolarizing_deploys_the_exact_channel(placement, n_features, encoding):
    data = tiny_split(n_features=n_features, n_test=5)
    ctx = context(data)
    defense = REGISTRY.create("defense", "depolarizing", {"p": 0.1, "placement": placement})
    model = defense.prepare(qnn(data, dtype="float64", encoding=encoding), ctx)
    assert is_stochastic(model)  # trains on sampled Pauli trajectories
    model = defense.deploy(model, data, ctx).eval()
    assert not is_stochastic(model) and model.method == "density"
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


def test_depolarizing_deployed_prediction_is_the_board_readout():
    data = tiny_split(n_features=4, n_test=16)
    defense = REGISTRY.create("defense", "depolarizing", {"p": 0.1})
    ctx = context(data, shots=5)
    model = defense.deploy(defense.prepare(qnn(data), ctx), data, ctx).eval()
    torch.manual_seed(3)
    a = defense.predict(model, data.x_test, ctx)
    torch.manual_seed(3)
    b = defense.predict(model, data.x_test, ctx)
    assert torch.equal(a, b)
    exact = defense.predict(model, data.x_test, context(data))  # shots=None: argmax of the channel
    assert torch.equal(exact, model(data.x_test).argmax(1))


def test_depolarizing_exact_trains_on_the_channel():
    data = tiny_split(n_features=4)
    defense = REGISTRY.create("defense", "depolarizing", {"exact": True})
    model = defense.prepare(qnn(data), context(data))
    assert not is_stochastic(model) and model.method == "density"
    assert REGISTRY.get("defense", "depolarizing").version == "2"


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
