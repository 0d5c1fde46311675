"""Benchmark of the mapped-DNN hardware noise: characterisation time, and LeNet-5 on 10000 inputs.

Measures, on this machine:

1. the characterisation of the backend on qiskit-aer (default ibm_nairobi, 21 values, 1024 shots,
   16 batches, k in {1, 2, 4, 8}), computed into an empty cache folder unless ``--cache-dir`` already
   holds it;
2. the noisy evaluation once the characterisation is cached: loading it, mapping a LeNet-5, and its
   forward over 10000 MNIST-sized inputs (intrinsic noise, and with QNAD crosstalk); the clean forward
   of the same inputs, and the noisy/clean time ratio.

Inputs are random 28x28 images unless ``--data-dir`` holds MNIST's IDX files (then the test set is used,
and ``--train-epochs N`` trains the LeNet first so that clean and noisy accuracies mean something).

    .venv/bin/python benchmarks/mapped_dnn.py [--json] [--cache-dir DIR] [--data-dir DIR] [--train-epochs N]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qbench import hardware  # noqa: E402
from qbench_plugins.models.lenet import LeNet5  # noqa: E402  (the track's LeNet-5)


def _inputs(args: argparse.Namespace, generator: torch.Generator):
    """(test x, test y, train x, train y or None): real MNIST if found, else random images."""
    if args.data_dir is not None:
        from qbench_plugins.datasets.idx import load_mnist_split

        test = load_mnist_split(args.data_dir, "test")
        x = torch.tensor(test.images, dtype=torch.float32).reshape(-1, 1, 28, 28) / 255.0
        y = torch.tensor(test.labels, dtype=torch.long)
        train = load_mnist_split(args.data_dir, "train") if args.train_epochs else None
        if train is not None:
            tx = torch.tensor(train.images, dtype=torch.float32).reshape(-1, 1, 28, 28) / 255.0
            return x[: args.n], y[: args.n], tx, torch.tensor(train.labels, dtype=torch.long)
        return x[: args.n], y[: args.n], None, None
    x = torch.rand(args.n, 1, 28, 28, generator=generator)
    y = torch.randint(0, 10, (args.n,), generator=generator)
    return x, y, None, None


def _train(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, generator: torch.Generator) -> None:
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), 128):
            batch = order[start:start + 128]
            optimiser.zero_grad()
            torch.nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            optimiser.step()
    model.eval()


@torch.no_grad()
def _evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int) -> tuple[float, float]:
    """(seconds, accuracy) of a forward over all of ``x`` in batches."""
    start = time.perf_counter()
    correct = 0
    for i in range(0, len(x), batch):
        correct += int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
    return time.perf_counter() - start, correct / len(x)


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; prints a table (or JSON with ``--json``) and returns the numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--backend", default=hardware.DEFAULT_BACKEND)
    parser.add_argument("--cache-dir", type=Path, default=None, help="characterisation cache (default: a fresh temporary folder)")
    parser.add_argument("--data-dir", type=Path, default=None, help="a folder with MNIST's IDX files (default: random inputs)")
    parser.add_argument("--train-epochs", type=int, default=0, help="train the LeNet on MNIST first (needs --data-dir)")
    parser.add_argument("-n", type=int, default=10000, help="number of inputs")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--level", type=float, default=0.05, help="QNAD crosstalk level")
    parser.add_argument("-k", type=int, default=4, help="CNOT pairs per crosstalk")
    parser.add_argument("--threads", type=int, default=None, help="Aer experiments in parallel (default: cores)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)

    with tempfile.TemporaryDirectory() as scratch:
        cache_dir = args.cache_dir or Path(scratch)
        characterisation = hardware.characterise(args.backend, cache_dir=cache_dir, threads=args.threads)
        was_cached = characterisation.loaded_from is not None

        start = time.perf_counter()
        characterisation = hardware.characterise(args.backend, cache_dir=cache_dir)
        load_s = time.perf_counter() - start

    model = LeNet5(1, 10)
    x, y, train_x, train_y = _inputs(args, generator)
    if train_x is not None:
        _train(model, train_x, train_y, args.train_epochs, generator)
    model.eval()

    start = time.perf_counter()
    plan = hardware.qnad_crosstalk(model, x[:512], y[:512], characterisation, level=args.level, k=args.k)
    placement_s = time.perf_counter() - start
    start = time.perf_counter()
    noisy = hardware.map_to_hardware(model, characterisation, generator=torch.Generator().manual_seed(1))
    with_crosstalk = hardware.map_to_hardware(model, characterisation, crosstalk=plan,
                                              generator=torch.Generator().manual_seed(1))
    map_s = (time.perf_counter() - start) / 2

    clean_s, clean_acc = _evaluate(model, x, y, args.batch)
    noisy_s, noisy_acc = _evaluate(noisy, x, y, args.batch)
    crosstalk_s, crosstalk_acc = _evaluate(with_crosstalk, x, y, args.batch)

    result = {
        "backend": characterisation.backend,
        "n_inputs": len(x),
        "inputs": "mnist-test" if args.data_dir else "random",
        "trained_epochs": args.train_epochs if train_x is not None else 0,
        "characterisation_s": round(characterisation.seconds, 2),
        "characterisation_was_cached": was_cached,
        "cache_load_s": round(load_s, 3),
        "clean_forward_s": round(clean_s, 3),
        "noisy_forward_s": round(noisy_s, 3),
        "noisy_evaluation_s": round(load_s + map_s + noisy_s, 3),
        "noisy_over_clean": round(noisy_s / clean_s, 1),
        "crosstalk_placement_s": round(placement_s, 3),
        "crosstalk_forward_s": round(crosstalk_s, 3),
        "accuracy": {"clean": clean_acc, "noisy": noisy_acc, "noisy_crosstalk": crosstalk_acc},
        "crosstalk_plan": plan.summary(),
        "characterisation": characterisation.summary(),
        "torch_threads": torch.get_num_threads(),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"backend {result['backend']}, {len(x)} {result['inputs']} inputs, LeNet-5")
        print(f"characterisation on Aer:        {result['characterisation_s']:8.2f} s"
              + ("  (from the cache given)" if was_cached else ""))
        print(f"load from cache:                {load_s:8.3f} s")
        print(f"clean forward:                  {clean_s:8.3f} s   accuracy {clean_acc:.4f}")
        print(f"noisy forward (intrinsic):      {noisy_s:8.3f} s   accuracy {noisy_acc:.4f}")
        print(f"noisy evaluation incl. load:    {result['noisy_evaluation_s']:8.3f} s")
        print(f"noisy / clean forward time:     {result['noisy_over_clean']:8.1f} x")
        print(f"QNAD placement (512 inputs):    {placement_s:8.3f} s   level {args.level}, k={args.k}: "
              f"{plan.n_placed}/{plan.n_selected} placed ({plan.affected_fraction:.2%} of weights)")
        print(f"noisy forward with crosstalk:   {crosstalk_s:8.3f} s   accuracy {crosstalk_acc:.4f}")
    return result


if __name__ == "__main__":
    main()
