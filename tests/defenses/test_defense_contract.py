"""Every built-in defense through qbench.contract.testing's contract checks, on the models it supports."""

import pytest
import torch

from qbench.registry import load_registry
from qbench.contract.testing import check_defense, context, tiny_split

REGISTRY = load_registry()


def circuit_model(data):
    return REGISTRY.create("model", "qnn", {"n_layers": 2}).build(data, context(data))


@pytest.mark.parametrize("name", ["none", "noise_layer", "adversarial_training", "gaussian_augmentation", "depolarizing"])
def test_qnn_defenses_follow_the_contract(name):
    torch.manual_seed(0)
    data = tiny_split(n_train=32, n_test=16, n_features=4)
    model = check_defense(REGISTRY.get("defense", name), data=data, model=circuit_model(data))
    assert model is not None


def test_noise_layer_makes_the_model_stochastic_and_votes_with_shots():
    from qbench import is_stochastic

    data = tiny_split(n_features=4)
    ctx = context(data, shots=7)
    defense = REGISTRY.create("defense", "noise_layer")
    model = defense.prepare(circuit_model(data), ctx).eval()
    assert is_stochastic(model)
    torch.manual_seed(1)
    a = model(data.x_test)
    b = model(data.x_test)
    assert not torch.equal(a, b)  # fresh noise every forward
    labels = defense.predict(model, data.x_test, ctx)
    assert labels.shape == data.y_test.shape and labels.dtype == torch.int64


def test_noise_phase_test_only_is_off_in_training():
    data = tiny_split(n_features=4)
    ctx = context(data)
    defense = REGISTRY.create("defense", "noise_layer", {"noise": "test"})
    model = defense.prepare(circuit_model(data), ctx)
    model.train()
    assert torch.equal(model(data.x_test), model(data.x_test))
    model.eval()
    assert not torch.equal(model(data.x_test), model(data.x_test))


def test_depolarizing_exact_is_deterministic_and_matches_trajectories_on_average():
    from qbench import is_stochastic

    data = tiny_split(n_features=4)
    ctx = context(data)
    exact = REGISTRY.create("defense", "depolarizing", {"p": 0.1, "exact": True}).prepare(circuit_model(data), ctx)
    sampled = REGISTRY.create("defense", "depolarizing", {"p": 0.1}).prepare(circuit_model(data), ctx)
    assert not is_stochastic(exact) and is_stochastic(sampled)
    x = data.x_test[:4]
    with torch.no_grad():
        p_exact = exact.class_probabilities(x)
        torch.manual_seed(0)
        p_mc = torch.stack([sampled.class_probabilities(x) for _ in range(400)]).mean(0)
    assert torch.allclose(p_exact, p_mc, atol=0.03)


def test_gaussian_augmentation_doubles_the_training_set():
    from qbench import TrainingSchedule

    data = tiny_split(n_train=40, n_features=4)
    seen = []

    class Spy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 2)

        def forward(self, x):
            seen.append(len(x))
            return self.lin(x)

    REGISTRY.create("defense", "gaussian_augmentation", {"ratio": 1.0}).fit(Spy(), data, TrainingSchedule(1, 0.01, 1000), context(data))
    assert seen == [80]


@pytest.mark.parametrize("model_name", ["qnn", "qcnn"])
@pytest.mark.parametrize("encoding", ["amplitude", "angle"])
def test_circuit_models_follow_the_contract(model_name, encoding):
    from qbench.contract.testing import check_model

    data = tiny_split(n_features=8 if encoding == "angle" else 16)
    options = {"encoding": encoding}
    cls = REGISTRY.get("model", model_name)
    model = cls.from_options(options).build(data, context(data))
    x = data.x_test[:6].clone().requires_grad_(True)
    logits = model(x)
    assert logits.shape == (6, 2) and torch.isfinite(logits).all()
    torch.nn.functional.cross_entropy(logits, data.y_test[:6]).backward()
    assert x.grad.abs().sum() > 0 and all(p.grad is not None for p in model.parameters())
    check_model(cls)


def test_qcnn_pools_down_to_the_readout_and_takes_noise_layers():
    data = tiny_split(n_features=256)
    model = REGISTRY.create("model", "qcnn").build(data, context(data))
    assert model.n_wires == 8 and model.n_layers == 3  # 8 -> 4 -> 2 -> 1 qubits
    defense = REGISTRY.create("defense", "noise_layer")
    model = defense.prepare(model, context(data))
    assert len(defense.describe(model)["beta"]) == 3  # one beta per quantum convolution
