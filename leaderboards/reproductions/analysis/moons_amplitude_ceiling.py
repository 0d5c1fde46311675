"""Why amplitude-encoded moons QNNs stay near 70% clean: the ceiling of the model class, measured.

Huang & Zhang's table 1 gives 74% clean for amplitude encoding on their moons data (1000 points, noise 0.03,
20% test: qbench's moons plugin exactly), against 84.5-89% for angle encoding. Amplitude encoding loads a
2-vector x as the 2-qubit state (x1, x2, 0, 0) / |x|: the norm of x is lost, and x and -x give the same
state up to a global sign. Every readout probability of a circuit on that real state is then a quadratic
form in (cos t, sin t), t = atan2(x2, x1): p(t) = c0 + A cos(2t - phi). So *any* amplitude-encoded circuit
classifier with a threshold (the readout bias) decides by one sinusoid of 2t. Part 1 computes the best
accuracy such a rule reaches on the moons points (an exhaustive search over phi and the threshold); part 2
trains qbench's amplitude QNN (the board's, exact probabilities) for several seeds and schedules, to show
where it lands relative to that ceiling.

    OMP_NUM_THREADS=1 .venv/bin/python leaderboards/reproductions/analysis/moons_amplitude_ceiling.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import make_moons

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from qbench.contract.context import Context  # noqa: E402
from qbench.contract.dataset import TrainingSchedule  # noqa: E402
from qbench.registry import load_registry  # noqa: E402
from qbench.contract.training import train  # noqa: E402


def ceiling(x: np.ndarray, y: np.ndarray) -> float:
    """The best accuracy of ``sign(cos(2t - phi) - threshold)`` (either orientation) on the points."""
    t = np.arctan2(x[:, 1], x[:, 0])
    best = 0.0
    for phi in np.linspace(0, 2 * np.pi, 721):
        s = np.cos(2 * t - phi)
        for threshold in np.linspace(-1, 1, 401):
            agree = ((s > threshold) == y).mean()
            best = max(best, agree, 1 - agree)
    return float(best)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 seeds, the paper's schedule only")
    args = parser.parse_args()
    torch.set_num_threads(1)
    x, y = make_moons(n_samples=1000, noise=0.03, random_state=0)
    print(f"part 1: ceiling of any amplitude-encoded 2-qubit classifier on the 1000 moons points: {ceiling(x, y):.1%}")
    registry = load_registry()
    dataset = registry.create("dataset", "moons", {}, "qnn")
    data = dataset.load(Context(seed=0))
    print(f"        on the 200 test points alone: {ceiling(data.x_test.numpy(), data.y_test.numpy()):.1%}")
    base = type(dataset).training
    schedules = [(base.epochs, base.lr)] if args.quick else [(base.epochs, base.lr), (base.epochs, 4 * base.lr),
                                                            (4 * base.epochs, base.lr)]
    seeds = range(2 if args.quick else 4)
    print("part 2: qbench's amplitude QNN (depth 10, readout bias), test accuracy from exact probabilities")
    for epochs, lr in schedules:
        accuracies = []
        for seed in seeds:
            ctx = Context(seed=seed, data=data)
            torch.manual_seed(seed)
            model = registry.create("model", "qnn", {"encoding": "amplitude"}, "qnn").build(data, ctx)
            train(model, data, TrainingSchedule(epochs, lr, base.batch_size, base.optimizer), ctx)
            with torch.no_grad():
                accuracies.append(float((model(data.x_test).argmax(1) == data.y_test).float().mean()))
        shown = ", ".join(f"{a:.1%}" for a in accuracies)
        print(f"        {epochs} epochs, Adam lr {lr:g}: {shown} (mean {np.mean(accuracies):.1%})", flush=True)


if __name__ == "__main__":
    main()
