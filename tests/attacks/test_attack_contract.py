"""Attack plugins on small real models: closed-form FGSM, the epsilon ball, the domain, skips."""

import numpy as np
import pytest
import torch

from qbench import AttackSkipped, Domain
from qbench.registry import load_registry
from qbench.contract.testing import TinyLinear, context, tiny_split

REGISTRY = load_registry()
GRADIENT_ATTACKS = ["fgsm", "bim", "pgd", "mim", "apgd-ce"]


def make(name, **options):
    return REGISTRY.create("attack", name, options)


def test_fgsm_equals_closed_form_on_a_linear_model():
    data = tiny_split(n_features=5)
    model = TinyLinear(5)
    x, y = data.x_test, data.y_test
    eps = 0.07
    adv = make("fgsm").generate(model, x.clone(), y.clone(), eps, context(data))
    with torch.no_grad():
        p = torch.softmax(model(x), dim=1)
    grad = (p - torch.nn.functional.one_hot(y, 2).float()) @ model.linear.weight
    expected = (x + eps * torch.sign(grad)).clamp(0, 1)
    assert torch.allclose(adv, expected, atol=1e-6)


@pytest.mark.parametrize("name", GRADIENT_ATTACKS + ["nes", "transfer-fnn"])
@pytest.mark.parametrize("domain", [Domain("box", 0.0, 1.0), Domain("sphere")])
def test_attacks_stay_in_ball_and_domain(name, domain, tmp_path):
    data = tiny_split(n_features=4, n_train=96, domain=domain)
    model = TinyLinear(4)
    ctx = context(data, cache_dir=tmp_path)
    eps = 0.1
    options = {"surrogate_epochs": 3} if name.startswith("transfer") else ({"max_iter": 50} if name == "square" else {})
    adv = make(name, **options).generate(model, data.x_test.clone(), data.y_test.clone(), eps, ctx)
    assert adv.shape == data.x_test.shape and torch.isfinite(adv).all()
    assert domain.contains(adv, atol=1e-6)
    if domain.kind == "box":
        assert float((adv - data.x_test).abs().max()) <= eps + 1e-6
    else:
        # the renormalised ball: some rescaling of every point is within eps of x (the runner's check)
        assert domain.within_ball(adv, data.x_test, eps, atol=1e-5)


@pytest.mark.parametrize("name", GRADIENT_ATTACKS)
def test_gradient_attacks_lower_accuracy_on_a_linear_model(name):
    data = tiny_split(n_features=4, n_test=200)
    model = TinyLinear(4)
    adv = make(name).generate(model, data.x_test.clone(), data.y_test.clone(), 0.2, context(data))
    with torch.no_grad():
        clean = (model(data.x_test).argmax(1) == data.y_test).float().mean()
        robust = (model(adv).argmax(1) == data.y_test).float().mean()
    assert robust < clean - 0.2


def test_iterative_attacks_beat_fgsm_or_tie_on_a_linear_model():
    data = tiny_split(n_features=4, n_test=200)
    model = TinyLinear(4)
    acc = {}
    for name in ["fgsm", "pgd"]:
        adv = make(name).generate(model, data.x_test.clone(), data.y_test.clone(), 0.1, context(data))
        with torch.no_grad():
            acc[name] = float((model(adv).argmax(1) == data.y_test).float().mean())
    assert acc["pgd"] <= acc["fgsm"] + 1e-9


def test_apgd_dlr_is_skipped_on_binary_tasks():
    data = tiny_split()
    with pytest.raises(AttackSkipped, match="at least 3 classes"):
        make("apgd-dlr").generate(TinyLinear(4), data.x_test, data.y_test, 0.1, context(data))


def test_apgd_dlr_runs_on_three_classes():
    g = torch.Generator().manual_seed(0)
    data = tiny_split()
    x = torch.rand(90, 4, generator=g)
    y = torch.arange(90) % 3
    data.x_test, data.y_test, data.n_classes = x, y, 3
    model = TinyLinear(4, n_classes=3)
    adv = make("apgd-dlr", steps=20).generate(model, x.clone(), y.clone(), 0.1, context(data))
    assert float((adv - x).abs().max()) <= 0.1 + 1e-6


def test_transfer_cnn_skips_vector_inputs(tmp_path):
    data = tiny_split(n_features=2)
    with pytest.raises(AttackSkipped, match="image-like"):
        make("transfer-cnn", surrogate_epochs=1).generate(TinyLinear(2), data.x_test, data.y_test, 0.1, context(data, cache_dir=tmp_path))


def test_transfer_surrogate_is_cached_and_seeded_by_the_run(tmp_path):
    data = tiny_split(n_features=16, n_train=64)
    attack = make("transfer-cnn", surrogate_epochs=2)
    a = attack.generate(TinyLinear(16), data.x_test.clone(), data.y_test.clone(), 0.1, context(data, seed=1, cache_dir=tmp_path))
    files = list((tmp_path / "surrogates").iterdir())
    assert len(files) == 1
    # another cell of the same run seed (a different cell seed) reuses the cached surrogate
    b = attack.generate(TinyLinear(16), data.x_test.clone(), data.y_test.clone(), 0.1, context(data, seed=2, cache_dir=tmp_path))
    assert len(list((tmp_path / "surrogates").iterdir())) == 1
    assert torch.equal(a, b)


def test_square_runs_on_images_and_on_small_inputs():
    g = torch.Generator().manual_seed(0)
    data = tiny_split(n_features=64)
    data.x_test = torch.rand(20, 8, 8, generator=g)
    data.y_test = (data.x_test.mean(dim=(1, 2)) > 0.5).long()

    class Flat(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = TinyLinear(64)

        def forward(self, x):
            return self.inner(x.reshape(len(x), -1))

    adv = make("square", max_iter=30).generate(Flat(), data.x_test.clone(), data.y_test.clone(), 0.1, context(data))
    assert adv.shape == (20, 8, 8) and float((adv - data.x_test).abs().max()) <= 0.1 + 1e-6
    small = tiny_split(n_features=4)  # too small for ART's windows: the vector random search (square v2)
    adv = make("square", max_iter=30).generate(TinyLinear(4), small.x_test.clone(), small.y_test.clone(), 0.1, context(small))
    assert adv.shape == small.x_test.shape and float((adv - small.x_test).abs().max()) <= 0.1 + 1e-6


def test_nes_estimate_points_along_the_true_gradient():
    from qbench_plugins.attacks.nes import NESClassifier

    data = tiny_split(n_features=6)
    model = TinyLinear(6)
    x, y = data.x_test[:10], data.y_test[:10]
    est = NESClassifier(model=model, loss=torch.nn.CrossEntropyLoss(), input_shape=(6,), nb_classes=2,
                        clip_values=(0.0, 1.0), samples=2000, sigma=1e-3, rng=np.random.default_rng(0))
    onehot = np.eye(2, dtype=np.float32)[y.numpy()]
    nes = est.loss_gradient(x.numpy(), onehot)
    xt = x.clone().requires_grad_(True)
    torch.nn.functional.cross_entropy(model(xt), y, reduction="sum").backward()
    true = xt.grad.numpy()
    cos = (nes * true).sum(1) / (np.linalg.norm(nes, axis=1) * np.linalg.norm(true, axis=1))
    assert cos.mean() > 0.9


def test_bim_with_a_reference_epsilon_reaches_the_ball_and_the_default_does_not():
    """The seed's BIM (3 fixed steps of 0.05) stops at 0.15 whatever epsilon is; with ``reference_epsilon``
    its steps scale (epsilon/3 here) and reach the ball's boundary, exactly 0.05 a step at the reference."""
    data = tiny_split(n_features=5)
    model = TinyLinear(5)
    x, y = data.x_test.clone(), data.y_test.clone()
    interior = (x > 0.35) & (x < 0.65)  # coordinates the [0, 1] box does not clip at epsilon 0.3
    fixed = make("bim")
    scaled = make("bim", reference_epsilon=0.15)
    assert fixed.config_dict() == {"n_eot": None, "steps": 3, "step_size": 0.05}  # committed keys unchanged
    assert scaled.config.step_at(0.15) == 0.05 and scaled.config.step_at(0.3) == pytest.approx(0.1)
    far_fixed = (fixed.generate(model, x.clone(), y.clone(), 0.3, context(data)) - x).abs()
    far_scaled = (scaled.generate(model, x.clone(), y.clone(), 0.3, context(data)) - x).abs()
    assert float(far_fixed.max()) <= 0.15 + 1e-6
    assert float(far_scaled[interior].min()) == pytest.approx(0.3, abs=1e-6)  # a linear model: every step agrees
    # at the reference epsilon the two are the same attack, bit for bit
    at_ref = [a.generate(model, x.clone(), y.clone(), 0.15, context(data)) for a in (fixed, scaled)]
    assert torch.equal(at_ref[0], at_ref[1])
