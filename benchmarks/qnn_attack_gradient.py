"""The input gradient an attack takes of a noiseless QNN: engine gates vs the cached unitary, side by side.

Every gradient attack on a deterministic QNN defense (``none``, the adversarial trainings, Gaussian
augmentation) and every transfer attack computes d loss / d input with the circuit's parameters frozen.
Since issue 17 the runner turns on :attr:`qbench.CircuitClassifier.reuse_unitary` while an attack runs:
the layers' unitary is built once (``qml.matrix``) and each forward is one matrix product. This script
times one such gradient (forward + backward of a cross-entropy, batch ``-b``) in one process for the
boards' circuits, on three paths:

* ``default.qubit`` -- PennyLane's reference device (torch backprop, parameter broadcasting);
* ``engine`` -- qbench's engine, gate by gate (the path before issue 17, and training's path);
* ``cached unitary`` -- the attack path now.

It reports medians of ``--repeats`` after a warm-up (the unitary is built in the warm-up, and its cost is
shown separately), the ratios, and the largest difference of the probabilities and gradients from the
engine's (float64, so the equality is meaningful).

    .venv/bin/python benchmarks/qnn_attack_gradient.py [--json] [-b 250] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qbench.contract.circuit_model import reusing_unitaries  # noqa: E402
from qbench_plugins.models.qcnn import QCNNConfig, QuantumCNN  # noqa: E402
from qbench_plugins.models.qnn import LayeredQNN, QNNConfig  # noqa: E402

CASES = {
    # the MNIST 1-vs-9 boards (16x16 images, amplitude-encoded on 8 qubits), and the moons/Ising boards
    "mnist-1v9 qnn (8q, 10 layers)": lambda: LayeredQNN(256, 2, QNNConfig(n_layers=10, dtype="float64"), _g()),
    "mnist-1v9 qcnn (8q)": lambda: QuantumCNN(256, 2, QCNNConfig(), _g()).double(),
    "ising qnn (4q, 10 layers)": lambda: LayeredQNN(16, 2, QNNConfig(n_layers=10, dtype="float64"), _g()),
    "moons angle qnn (2q, 10 layers)": lambda: LayeredQNN(2, 2, QNNConfig(encoding="angle", n_layers=10,
                                                                          dtype="float64"), _g()),
}


def _g() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def input_gradient(model, x, y):
    x = x.clone().requires_grad_()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    (grad,) = torch.autograd.grad(loss, x)
    return model.class_probabilities(x).detach(), grad


def _median(fn, repeats: int) -> tuple[float, tuple]:
    start = time.perf_counter()
    out = fn()
    warm = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return warm, statistics.median(times), out


def main(argv: list[str] | None = None) -> list[dict]:
    """Run every case; prints a table (or JSON) and returns the rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-b", "--batch", type=int, default=250, help="examples per gradient (eval batch: 250)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for name, build in CASES.items():
        model = build()
        for p in model.parameters():
            p.requires_grad_(False)
        features = model.n_features if hasattr(model, "n_features") else 256
        gen = torch.Generator().manual_seed(1)
        x = torch.rand(args.batch, features, generator=gen, dtype=torch.float64)
        y = torch.randint(0, 2, (args.batch,), generator=gen)
        timings = {}
        model.device_name = "default.qubit"
        timings["default.qubit"] = _median(lambda: input_gradient(model, x, y), max(1, args.repeats // 2))
        model.device_name = None
        timings["engine"] = _median(lambda: input_gradient(model, x, y), args.repeats)
        with reusing_unitaries(model):
            timings["cached unitary"] = _median(lambda: input_gradient(model, x, y), args.repeats)
        engine_out = timings["engine"][2]
        cached_out = timings["cached unitary"][2]
        rows.append({
            "case": name, "batch": args.batch,
            "ms": {k: round(v[1] * 1e3, 2) for k, v in timings.items()},
            "unitary_build_ms": round((timings["cached unitary"][0] - timings["cached unitary"][1]) * 1e3, 1),
            "engine_vs_default_qubit": round(timings["default.qubit"][1] / timings["engine"][1], 1),
            "cached_vs_engine": round(timings["engine"][1] / timings["cached unitary"][1], 1),
            "cached_vs_default_qubit": round(timings["default.qubit"][1] / timings["cached unitary"][1], 1),
            "max_abs_diff_probs": float((engine_out[0] - cached_out[0]).abs().max()),
            "max_abs_diff_grad": float((engine_out[1] - cached_out[1]).abs().max()),
        })
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print(f"input gradient (forward + backward), batch {args.batch}, float64, 1 thread, median of {args.repeats}")
        for r in rows:
            ms = r["ms"]
            print(f"{r['case']:34s} default.qubit {ms['default.qubit']:8.1f} ms  engine {ms['engine']:7.1f} ms  "
                  f"cached {ms['cached unitary']:6.2f} ms (build {r['unitary_build_ms']:.0f} ms)  "
                  f"cached/engine {r['cached_vs_engine']}x  diff {r['max_abs_diff_grad']:.1e}")
    return rows


if __name__ == "__main__":
    main()
