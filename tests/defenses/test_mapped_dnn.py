"""The mapped-DNN defenses through the real runner: a LeNet on generated 28x28 data, a cheap characterisation."""

import torch

from qbench import Dataset, DataSplit, Domain, TrainingSchedule
from qbench.registry import load_registry
from qbench.running.runner import Plan, Runner
from qbench.running.store import Store
from qbench.publishing.summary import summarize

REGISTRY = load_registry()
CHEAP = {"grid": 5, "repeats": 2, "shots": 256}


class Blobs28(Dataset):
    name = "blobs28"
    description = "generated 28x28 images: bright top half = class 1"
    tracks = ("mapped-dnn",)

    def load(self, ctx):
        g = torch.Generator().manual_seed(0)
        x = torch.rand(400, 1, 28, 28, generator=g) * 0.5
        y = torch.arange(400) % 2
        x[y == 1, :, :14] += 0.5
        return DataSplit(x[:300], y[:300], x[300:], y[300:], n_classes=2, domain=Domain("box", 0.0, 1.0))


def run(tmp_path, defense, options):
    plan = Plan(
        track="mapped-dnn", dataset=Blobs28(), model=REGISTRY.create("model", "lenet"),
        defense=REGISTRY.create("defense", defense, options).at_threat(0.2),
        attacks=[REGISTRY.create("attack", "noiseless-fgsm"), REGISTRY.create("attack", "fgsm")],
        epsilons=[0.2], seeds=[0], schedule=TrainingSchedule(2, 0.002, 32), n_eot=2, n_repeat=2,
    )
    with Store.open(tmp_path / "s.sqlite") as store:
        return summarize(Runner(store, cache_dir=tmp_path / "cache").run(plan)), store.trainings()


def test_intrinsic_noise_and_qnad_share_the_standard_training(tmp_path):
    none, _ = run(tmp_path, "none", {})
    noisy, _ = run(tmp_path, "intrinsic_noise", CHEAP)
    qnad, trainings = run(tmp_path, "qnad", {**CHEAP, "levels": "0,0.05", "validation_size": 50, "importance_size": 64})
    assert len(trainings) == 1  # one LeNet trained, three defenses evaluated on it
    assert none["clean"]["mean"] > 0.9
    # the hardware noise perturbs but does not destroy a well-separated task
    assert noisy["clean"]["mean"] > 0.8
    info = qnad["training"]["defense_info"][0]
    assert info["selected_on"] == "validation" and info["level"] in (0.0, 0.05)
    assert [p["level"] for p in info["validation_curve"]] == [0.0, 0.05]
    rows = {r["attack"]: r for r in qnad["attacks"]}
    assert rows["noiseless-fgsm"]["threat"] == "transfer" and rows["noiseless-fgsm"]["status"] == "ok"
    assert qnad["worst_case"][0]["robust"]["mean"] <= min(r["robust"]["mean"] for r in rows.values())


def test_qnad_level_given_skips_selection(tmp_path):
    summary, _ = run(tmp_path, "qnad", {**CHEAP, "level": 0.05})
    info = summary["training"]["defense_info"][0]
    assert info["selected_on"] == "given" and info["level"] == 0.05
    assert info["crosstalk"]["n_selected"] > 0


def test_adversarial_training_is_madry_pgd_at_the_plans_epsilon_on_the_mapped_track():
    qnn = REGISTRY.create("defense", "adversarial_training", {}, "qnn").at_threat(0.3)
    assert (qnn.config.epsilon, qnn.config.steps, qnn.config.step_size, qnn.config.random_start) == (0.15, 3, 0.05, False)
    cifar = REGISTRY.create("defense", "adversarial_training", {}, "mapped-dnn").at_threat(8 / 255)
    assert cifar.config.epsilon == 8 / 255 and cifar.config.steps == 10 and cifar.config.random_start
    assert abs(cifar.config.step_size - 2.5 * (8 / 255) / 10) < 1e-12
    assert cifar.config.refresh == "batch" and qnn.config.refresh == "epoch"  # Madry per batch; Lu et al. per epoch
    # a user's option still wins over the track's default
    mine = REGISTRY.create("defense", "adversarial_training", {"epsilon": "0.2", "steps": "4"}, "mapped-dnn")
    assert mine.at_threat(0.1).config.epsilon == 0.2 and mine.at_threat(0.1).config.step_size == 0.125


def test_madry_refresh_attacks_every_batch_against_the_current_weights(monkeypatch):
    import qbench_plugins.defenses.adversarial_training as module
    from qbench.contract.context import Context
    from qbench.contract.testing import tiny_split

    data = tiny_split(n_train=100)
    calls = []
    real = module.bim_examples

    def recording(model, x, y, *args):
        calls.append((len(x), [p.detach().clone() for p in model.parameters()]))
        return real(model, x, y, *args)

    monkeypatch.setattr(module, "bim_examples", recording)
    defense = REGISTRY.create("defense", "adversarial_training", {}, "mapped-dnn").at_threat(0.1)
    model = torch.nn.Sequential(torch.nn.Linear(4, 2))
    ctx = Context(seed=0, data=data)
    defense.fit(model, data, TrainingSchedule(epochs=2, lr=0.05, batch_size=32), ctx)
    assert [n for n, _ in calls] == [32, 32, 32, 4] * 2  # every mini-batch of both epochs, nothing else
    # each batch is attacked against the weights the previous step left, not a stale copy
    assert not torch.equal(calls[0][1][0], calls[1][1][0])


def test_qnad_selects_its_crosstalk_level_at_the_boards_epsilon():
    cifar = REGISTRY.create("defense", "qnad", {}, "mapped-dnn").at_threat(8 / 255)
    mnist = REGISTRY.create("defense", "qnad", {}, "mapped-dnn").at_threat(0.1)
    assert cifar.config.select_epsilon == 8 / 255 and mnist.config.select_epsilon == 0.1
    # a user's selection epsilon wins; on MNIST the filled-in config is the one the old default gave
    assert REGISTRY.create("defense", "qnad", {"select_epsilon": "0.05"}, "mapped-dnn").at_threat(0.1).config.select_epsilon == 0.05
    assert mnist.config_dict()["select_epsilon"] == 0.1
