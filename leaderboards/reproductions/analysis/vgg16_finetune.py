"""Does the seed's third mapping stage ("fine-tune the quantum circuit") bring the mapped VGG16 back? Measured.

QNAD (seed 001, section III-B) maps a pre-trained DNN in three stages: encode the inputs, translate each
operation into the circuit, and "obtain the classification accuracy and fine-tune the quantum circuit based
on the evaluated results". qbench's mapping does the first two only. ``vgg16_recipe.py`` found that a
VGG16 trained to 25% on the CIFAR-100 subset maps to about 2% (chance 1%); this script loads such a model
(``--weights``) and measures, on the first ``--n-test`` test images (means over ``--draws`` noise draws of
ibm_nairobi's characterised read-back, weights and activations, qbench's per-example scale):

* the mapped model as deployed today, and with each weight scaled by its output channel's largest |weight|
  instead of its layer's (and activations by their channel's);
* after recalibrating the batch-norm statistics under the noise (``--recalibrate`` batches of the training
  set through the noisy forward, no gradient step);
* after ``--epochs`` epochs of fine-tuning through the noisy forward (SGD, momentum 0.9, lr ``--lr``
  annealed by a cosine, weight decay 5e-4, the recipe's augmentation; a fresh noise draw every batch);

and the noiseless accuracy of the fine-tuned weights (what fine-tuning costs without the hardware).

    OMP_NUM_THREADS=1 .venv/bin/python leaderboards/reproductions/analysis/vgg16_finetune.py \\
        --data-dir ../shared/data --weights vgg16.safetensors [--epochs 10] [--lr 0.01] [--n-test 500] [--draws 3]
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from safetensors.torch import load_model

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from qbench import hardware  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vgg16_mapping import accuracy, board_parser, board_vgg16, nairobi  # noqa: E402
from vgg16_recipe import train_sgd_cosine  # noqa: E402


def mapped(model, char, seed: int, **scales):
    """qbench's mapping of ``model`` (weights and activations; per-layer weight and per-example activation
    scales unless ``scales`` says otherwise), noise from ``seed``."""
    return hardware.map_to_hardware(model, char, generator=torch.Generator().manual_seed(seed), weights=True,
                                    activations=True, **scales)


def main() -> None:
    parser = board_parser(__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--recalibrate", type=int, default=20, help="training batches for the batch-norm statistics")
    args = parser.parse_args()
    _, data, _, model = board_vgg16(args.data_dir)
    load_model(model, str(args.weights))
    model.eval()
    x, y = data.x_test[: args.n_test], data.y_test[: args.n_test]
    char = nairobi(args.cache_dir)
    print(f"{len(x)} test images, {data.n_classes} classes (chance {1 / data.n_classes:.1%}); weights {args.weights.name}")
    print(f"noiseless: {accuracy(model, x, y, 1):.1%}")
    noisy = mapped(model, char, 1)
    print(f"mapped as deployed today: {accuracy(noisy, x, y, args.draws):.1%}", flush=True)
    for label, scales in (("weights scaled per output channel", dict(weight_scale="channel")),
                          ("weights per output channel, activations per (example, channel)",
                           dict(weight_scale="channel", activation_scale="channel"))):
        print(f"mapped, {label}: {accuracy(mapped(model, char, 1, **scales), x, y, args.draws):.1%}", flush=True)

    # batch-norm statistics re-estimated under the noise: cumulative averages over the batches
    recalibrated = mapped(model, char, 2)
    for module in recalibrated.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None
    recalibrated.train()
    order = torch.randperm(len(data.x_train), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        for b in range(args.recalibrate):
            recalibrated(data.x_train[order[b * 128:(b + 1) * 128]])
    recalibrated.eval()
    print(f"mapped, batch norm recalibrated under the noise ({args.recalibrate} batches of 128): "
          f"{accuracy(recalibrated, x, y, args.draws):.1%}", flush=True)

    tuned = mapped(model, char, 4)

    def report(epoch: int, seconds: float) -> None:
        print(f"fine-tuned through the noise, epoch {epoch}: mapped {accuracy(tuned, x, y, args.draws):.1%} "
              f"({seconds:.0f} s)", flush=True)

    train_sgd_cosine(tuned, data.x_train, data.y_train, args.epochs, args.lr, seeds=(5, 6), after_epoch=report)
    # the fine-tuned weights without the hardware: the wrapped layers hold the trained originals
    plain = tuned.model
    for name, module in list(plain.named_modules()):
        if isinstance(module, hardware.MappedLayer):
            parent, _, child = name.rpartition(".")
            setattr(plain.get_submodule(parent) if parent else plain, child, module.layer)
    print(f"fine-tuned weights, noiseless: {accuracy(plain, x, y, 1):.1%}", flush=True)


if __name__ == "__main__":
    main()
