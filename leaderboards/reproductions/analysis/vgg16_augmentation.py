"""Does the noiseless VGG16 on the CIFAR-100 subset rise with standard augmentation? Measured, with its mapping.

``vgg16_mapping.py`` found the mapped VGG16 at 3.1% because the *noiseless* one is at 13.4%: the data in
``../shared/data`` gives 80 training images per class (the paper trained on 500 per class for 64.3%). The
usual remedy for small CIFAR training sets is augmentation; this script tests it with the board's model
and schedule unchanged (VGG16 width 0.25, 30 epochs of Adam, lr 0.001, batch 128, seed 0) except that every
training batch is augmented: a random 32x32 crop of the image zero-padded by 4 pixels, and a horizontal
flip with probability 1/2 (He et al. 2016's CIFAR recipe), drawn from the training context's generator.
It prints the noiseless clean accuracy and that of qbench's mapping onto ibm_nairobi's read-back today
(weights and activations, per-example scale), a mean over ``--draws`` noise draws, on the first
``--n-test`` test images, beside the unaugmented figures of ``vgg16_mapping.txt``.

    OMP_NUM_THREADS=1 .venv/bin/python leaderboards/reproductions/analysis/vgg16_augmentation.py \\
        --data-dir ../shared/data [--epochs 30] [--n-test 500] [--draws 3] [--cache-dir DIR]
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from qbench.contract.augmentation import crop_flip as augment  # noqa: E402
from qbench.contract.training import train  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vgg16_mapping import accuracy, board_parser, board_vgg16, mapped_accuracy, nairobi  # noqa: E402


def main() -> None:
    parser = board_parser(__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="default: the dataset's (30)")
    args = parser.parse_args()
    dataset, data, ctx, model = board_vgg16(args.data_dir)
    schedule = type(dataset).training
    if args.epochs:
        schedule = replace(schedule, epochs=args.epochs)
    flips = torch.Generator().manual_seed(1)

    def batch_loss(m, x, y, epoch):
        return F.cross_entropy(m(augment(x, flips)), y)

    start = time.perf_counter()
    train(model, data, schedule, ctx, batch_loss)
    print(f"trained VGG16 with augmentation ({schedule.epochs} epochs) in {time.perf_counter() - start:.0f} s")
    model.eval()
    x, y = data.x_test[: args.n_test], data.y_test[: args.n_test]
    print(f"{len(x)} test images, {data.n_classes} classes (chance {1 / data.n_classes:.1%})")
    print(f"noiseless: {accuracy(model, x, y, 1):.1%} (without augmentation: 13.4%, vgg16_mapping.txt)")
    char = nairobi(args.cache_dir)
    print(f"weights + activations, per-example scale (today): {mapped_accuracy(model, char, x, y, args.draws):.1%} "
          "(without augmentation: 3.1%)", flush=True)


if __name__ == "__main__":
    main()
