"""How many EOT samples does a stochastic model's input gradient need? (informs ``--n-eot`` per track)

For a trained stochastic model (read from a result store: the weights the protocol runner cached), the
input gradient of the loss averaged over ``n`` forward samples is compared with a reference averaged over
many samples: mean cosine similarity over a batch of test examples, and how often its sign agrees (what
FGSM/PGD steps use). If one sample already points where the expectation points, EOT-20 buys little and a
track can afford a smaller default; if not, the adaptive attacks need the samples.

    python benchmarks/eot_samples.py --store S --track mapped-dnn --dataset mnist --model lenet --defense qnad
    python benchmarks/eot_samples.py --store S --track qnn --dataset mnist-1v9 --model qnn --defense noise_layer

The model must have been trained into the store before (``qbench evaluate`` / ``leaderboard run`` with the
same dataset, model and defense options); this script never trains.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

from stored_training import input_gradient, load_stored_training  # this folder is on the path (run as a script)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", type=Path, required=True)
    p.add_argument("--data-dir", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    p.add_argument("--track", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--defense", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--examples", type=int, default=64)
    p.add_argument("--reference", type=int, default=100, help="samples in the reference gradient")
    p.add_argument("--samples", default="1,2,5,10,20")
    p.add_argument("--trials", type=int, default=5, help="independent n-sample gradients per n")
    args = p.parse_args()
    torch.set_num_threads(1)

    stored = load_stored_training(args.store, args.data_dir, args.track, args.dataset, args.model, args.defense,
                                  args.seed)
    if stored is None:
        return 2
    data, ctx = stored.data, stored.ctx
    model = stored.defense.deploy(stored.module, data, ctx)
    model.eval()
    x, y = data.x_test[: args.examples], data.y_test[: args.examples]
    torch.manual_seed(1)
    ref = input_gradient(model, x, y, args.reference).flatten(1)
    print(f"{args.defense} on {args.dataset}/{args.model}: {args.examples} test examples, reference = "
          f"{args.reference}-sample mean, {args.trials} trials per n")
    print("| n_eot | cosine to reference | sign agreement |")
    print("| --- | --- | --- |")
    for n in [int(v) for v in args.samples.split(",")]:
        cos, sign = [], []
        for _ in range(args.trials):
            g = input_gradient(model, x, y, n).flatten(1)
            cos.append(F.cosine_similarity(g, ref, dim=1).mean().item())
            nonzero = ref != 0
            sign.append(((g.sign() == ref.sign()) & nonzero).sum().item() / max(nonzero.sum().item(), 1))
        print(f"| {n} | {sum(cos) / len(cos):.3f} | {100 * sum(sign) / len(sign):.1f}% |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
