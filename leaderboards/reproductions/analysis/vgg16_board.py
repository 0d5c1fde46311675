"""The board's VGG16 on the CIFAR-100 subset as qbench now trains and deploys it: its clean accuracy, measured.

Trains the board's VGG16 (width 0.25, seed 0) through ``qbench.contract.training.train`` with the
dataset's schedule (since 2026-12-07: 60 epochs of SGD, cosine-annealed lr 0.05, crops and flips;
``vgg16_recipe.py`` chose it) and deploys it through the registered ``intrinsic_noise`` defense, the path a
leaderboard cell takes, once with the batch-norm statistics re-measured on the device (the defense's
default, ``qbench.hardware.batch_norm``) and once without (``batch_norm_examples=0``, the mapping before
2026-12-07). Prints the noiseless and the two mapped clean accuracies (means over ``--draws`` noise
draws) on the first ``--n-test`` test images.

    OMP_NUM_THREADS=1 .venv/bin/python leaderboards/reproductions/analysis/vgg16_board.py --data-dir ../shared/data \\
        [--n-test 500] [--draws 3] [--cache-dir DIR] [--weights W]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from qbench.contract.context import Context  # noqa: E402
from qbench.registry import load_registry  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vgg16_mapping import accuracy, board_model  # noqa: E402


def main() -> None:
    args, data, model, x, y = board_model(__doc__)
    registry = load_registry()
    for label, options in (("intrinsic_noise as deployed (batch norm re-measured on the device)", {}),
                           ("intrinsic_noise without re-measuring the batch norm", {"batch_norm_examples": 0})):
        defense = registry.create("defense", "intrinsic_noise", options, "mapped-dnn")
        deploy_ctx = Context(seed=0, data=data, cache_dir=args.cache_dir)
        start = time.perf_counter()
        mapped = defense.deploy(model, data, deploy_ctx)
        seconds = time.perf_counter() - start
        mapped.generator = torch.Generator().manual_seed(1)
        print(f"{label}: {accuracy(mapped, x, y, args.draws):.1%} (deployed in {seconds:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
