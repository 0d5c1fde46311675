"""Why the mapped VGG16 on CIFAR-100 is at chance: which part of the mapping costs its accuracy, measured.

The suspected cause (issue 20): every convolution's output is scaled by the example's largest |value| over
the whole layer before its read-back, so the read-back's spread (~0.03) and bias (up to 0.12) are relative to
the largest activation and swamp the many small ones, compounding over 13 convolutions. This script trains
the board's VGG16 (width 0.25, the dataset's schedule, which was 30 epochs of Adam when
``vgg16_mapping.txt`` was made; or loads ``--weights``) and measures the
clean accuracy of the noiseless model and of the mapping onto ibm_nairobi's characterised read-back with
one part switched at a time:

* weights and activations read back, activations scaled per example (qbench's mapping today);
* the same with activations scaled per (example, channel);
* weights only; activations only (per example, per channel).

Accuracies are means over ``--draws`` noise draws on the first ``--n-test`` test images.

    OMP_NUM_THREADS=1 .venv/bin/python leaderboards/reproductions/analysis/vgg16_mapping.py --data-dir ../shared/data \\
        [--weights vgg16.safetensors] [--n-test 500] [--draws 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_model, save_model

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from qbench import hardware  # noqa: E402
from qbench.contract.context import Context  # noqa: E402
from qbench.registry import load_registry  # noqa: E402
from qbench.contract.training import train  # noqa: E402


@torch.no_grad()
def accuracy(model, x, y, draws: int) -> float:
    total = 0.0
    for _ in range(draws):
        correct = sum(int((model(x[i:i + 250]).argmax(1) == y[i:i + 250]).sum()) for i in range(0, len(x), 250))
        total += correct / len(x)
    return total / draws


def board_vgg16(data_dir: Path):
    """The board's CIFAR-100 split and its VGG16 as built for seed 0 (untrained): (dataset, data, ctx, model)."""
    torch.set_num_threads(1)
    registry = load_registry()
    dataset = registry.create("dataset", "cifar100", {}, "mapped-dnn")
    data = dataset.load(Context(seed=0, data_dir=data_dir))
    ctx = Context(seed=0, data=data)
    torch.manual_seed(0)
    return dataset, data, ctx, registry.create("model", "vgg16", {}, "mapped-dnn").build(data, ctx)


def trained_board_vgg16(data_dir: Path, weights: Path | None):
    """The board's VGG16 for seed 0, loaded from ``weights`` if that file exists, else trained under the
    dataset's schedule (and saved there when ``weights`` is given); ``(data, model)``, in evaluation mode."""
    dataset, data, ctx, model = board_vgg16(data_dir)
    if weights is not None and weights.exists():
        load_model(model, str(weights))
        print(f"loaded {weights}")
    else:
        schedule = type(dataset).training
        start = time.perf_counter()
        train(model, data, schedule, ctx)
        print(f"trained VGG16 under the dataset's schedule ({schedule}) in {time.perf_counter() - start:.0f} s")
        if weights is not None:
            save_model(model, str(weights))
    return data, model.eval()


def board_model(doc: str):
    """Parse a script's options (``board_parser`` plus ``--weights``), get the trained board VGG16 and print
    its noiseless accuracy: ``(args, data, model, x_test, y_test)``."""
    parser = board_parser(doc.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=None, help="trained weights to load, or where to save them")
    args = parser.parse_args()
    data, model = trained_board_vgg16(args.data_dir, args.weights)
    x, y = data.x_test[: args.n_test], data.y_test[: args.n_test]
    print(f"{len(x)} test images, {data.n_classes} classes (chance {1 / data.n_classes:.1%})")
    print(f"noiseless: {accuracy(model, x, y, 1):.1%}")
    return args, data, model, x, y


def mapped_accuracy(model, char, x, y, draws: int) -> float:
    """Clean accuracy of qbench's mapping before 2026-12-07 (weights and activations, per-example scale,
    noiseless batch-norm statistics), a mean over ``draws`` draws from a generator seeded 1."""
    mapped = hardware.map_to_hardware(model, char, generator=torch.Generator().manual_seed(1), weights=True,
                                      activations=True, activation_scale="example")
    return accuracy(mapped, x, y, draws)


def board_parser(description: str) -> argparse.ArgumentParser:
    """The options both VGG16 scripts take: the data, the test images, the noise draws, the cache."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--n-test", type=int, default=500)
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--cache-dir", type=Path, default=None, help="characterisation cache (default: computed afresh)")
    return parser


def nairobi(cache_dir: Path | None):
    """ibm_nairobi's characterised read-back (from ``cache_dir`` when it holds it, else computed)."""
    with tempfile.TemporaryDirectory() as scratch:
        return hardware.characterise(hardware.DEFAULT_BACKEND, cache_dir=cache_dir or Path(scratch), threads=1)


def main() -> None:
    args, data, model, x, y = board_model(__doc__)
    char = nairobi(args.cache_dir)
    variants = [
        ("weights + activations, per-example scale (today)", dict(weights=True, activations=True, activation_scale="example")),
        ("weights + activations, per-channel scale", dict(weights=True, activations=True, activation_scale="channel")),
        ("weights only", dict(weights=True, activations=False)),
        ("activations only, per-example scale", dict(weights=False, activations=True, activation_scale="example")),
        ("activations only, per-channel scale", dict(weights=False, activations=True, activation_scale="channel")),
    ]
    for name, options in variants:
        mapped = hardware.map_to_hardware(model, char, generator=torch.Generator().manual_seed(1), **options)
        print(f"{name}: {accuracy(mapped, x, y, args.draws):.1%}", flush=True)


if __name__ == "__main__":
    main()
