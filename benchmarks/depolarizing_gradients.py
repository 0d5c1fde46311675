"""How good is the attacks' view of a sampled depolarizing channel? (informs ``depolarizing``'s ``trajectories``)

Version 3 of the ``depolarizing`` defense deploys the channel under a shot readout as one Pauli trajectory
per shot, and lets the attacks differentiate an estimate of the channel's class probabilities from
``trajectories`` trajectories per forward, averaged over the board's EOT samples. This script compares that
input gradient with the exact channel's (the density matrix's, which is what version 2 gave the attacks),
side by side in one process on a trained model read from a result store:

* mean cosine similarity and sign agreement with the exact gradient, per (trajectories, EOT samples);
* the seconds per gradient of each, and their ratio to the exact gradient's;
* how much signal the channel leaves: the exact channel's accuracy (argmax), its expected accuracy under
  ``--shots`` single shots (the board's readout: the binomial probability that the true class wins), and
  the mean |p(true) - 1/2|.

    python benchmarks/depolarizing_gradients.py --store S --dataset mnist-1v9 --model qnn
    python benchmarks/depolarizing_gradients.py --store S --dataset moons --model-option encoding=angle

The model must have been trained into the store before (``qbench evaluate`` / ``leaderboard run`` with the
same dataset, model and defense options); this script never trains.
"""

from __future__ import annotations

import argparse
import copy
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from stored_training import input_gradient, load_stored_training  # this folder is on the path (run as a script)


def shot_accuracy(p_true: torch.Tensor, shots: int) -> float:
    """Expected accuracy of a majority of ``shots`` binary single shots (ties split evenly)."""
    out = torch.zeros_like(p_true)
    for k in range(shots + 1):
        weight = 1.0 if 2 * k > shots else (0.5 if 2 * k == shots else 0.0)
        if weight:
            out += weight * math.comb(shots, k) * p_true ** k * (1 - p_true) ** (shots - k)
    return out.mean().item()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", type=Path, required=True)
    p.add_argument("--data-dir", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    p.add_argument("--dataset", default="mnist-1v9")
    p.add_argument("--model", default="qnn")
    p.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE",
                   help="model option, as the run that trained it had it (e.g. encoding=angle)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--examples", type=int, default=32)
    p.add_argument("--shots", type=int, default=50)
    p.add_argument("--trajectories", default="1,10,50")
    p.add_argument("--samples", default="1,5,20", help="EOT samples per gradient")
    p.add_argument("--trials", type=int, default=3, help="independent estimates per setting")
    args = p.parse_args()
    torch.set_num_threads(1)

    stored = load_stored_training(args.store, args.data_dir, "qnn", args.dataset, args.model, "depolarizing",
                                  args.seed, dict(o.split("=", 1) for o in args.model_option), shots=args.shots)
    if stored is None:
        return 2
    trained, defense, data, ctx, registry = stored.module, stored.defense, stored.data, stored.ctx, stored.registry
    for parameter in trained.parameters():
        parameter.requires_grad_(False)
    exact = registry.create("defense", "depolarizing", {"attack_view": "exact"}, "qnn")
    channel = exact.deploy(copy.deepcopy(trained), data, ctx).eval()
    x, y = data.x_test[: args.examples], data.y_test[: args.examples]

    start = time.perf_counter()
    ref = input_gradient(channel, x, y, 1).flatten(1)
    exact_seconds = time.perf_counter() - start
    with torch.no_grad():
        probs = channel.class_probabilities(x)
    p_true = probs.gather(1, y[:, None]).squeeze(1)
    print(f"depolarizing (p={defense.config.p}, {defense.config.placement}) on {args.dataset}/{args.model}, "
          f"seed {args.seed}, {args.examples} test examples; torch {torch.__version__}, 1 thread")
    print(f"the exact channel: accuracy (argmax) {(probs.argmax(1) == y).double().mean().item():.1%}, "
          f"expected accuracy under {args.shots} shots {shot_accuracy(p_true.double(), args.shots):.1%}, "
          f"mean |p(true) - 1/2| {(p_true - 0.5).abs().mean().item():.4f}")
    print(f"exact gradient (density matrix): {exact_seconds:.2f} s for the {args.examples} examples")
    print()
    print("| trajectories | EOT samples | cosine to exact | sign agreement | s per gradient | x exact's time |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    torch.manual_seed(1)
    for t in [int(v) for v in args.trajectories.split(",")]:
        sampled = registry.create("defense", "depolarizing", {"attack_view": "sampled", "trajectories": t}, "qnn")
        model = sampled.deploy(copy.deepcopy(trained), data, ctx).eval()
        for n in [int(v) for v in args.samples.split(",")]:
            cos, sign, seconds = [], [], []
            for _ in range(args.trials):
                start = time.perf_counter()
                g = input_gradient(model, x, y, n).flatten(1)
                seconds.append(time.perf_counter() - start)
                cos.append(F.cosine_similarity(g, ref, dim=1).mean().item())
                nonzero = ref != 0
                sign.append(((g.sign() == ref.sign()) & nonzero).sum().item() / max(nonzero.sum().item(), 1))
            s = min(seconds)
            print(f"| {t} | {n} | {sum(cos) / len(cos):.3f} | {100 * sum(sign) / len(sign):.1f}% | {s:.2f} | "
                  f"{s / exact_seconds:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
