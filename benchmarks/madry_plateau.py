"""Where Madry PGD training of the mnist-lenet board's LeNet plateaus, per seed (issue 17).

Trains the board's LeNet-5 with ``adversarial_training`` as the mapped-DNN track configures it (PGD-10 per
mini-batch at epsilon 0.1, random start, step 2.5 epsilon / 10; the dataset's Adam schedule) for
``--epochs`` epochs, one at a time with one optimiser (exactly what ``fit`` does over the same epochs), and
after every epoch measures, on the first ``--n-test`` MNIST test images and on the noiseless model, the
clean accuracy and the accuracy under PGD-20 with a random start (ART's attack, as the board runs it, is not
needed for a plateau). Prints one row per (seed, epoch) and the spread over seeds at each epoch: the
schedule converges where the curves flatten and the seeds agree.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/madry_plateau.py --data-dir ../shared/data [--epochs 8] [--seeds 3] [--json]
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

from qbench.contract.context import Context  # noqa: E402
from qbench.registry import load_registry  # noqa: E402
from qbench.contract.training import bim_examples, make_optimizer, train  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    """Run the measurement; prints a table (or JSON) and returns it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="a folder with MNIST's IDX files")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    registry = load_registry()
    dataset = registry.create("dataset", "mnist", {}, "mapped-dnn")
    data = dataset.load(Context(seed=0, data_dir=args.data_dir))
    schedule = type(dataset).training
    defense = registry.create("defense", "adversarial_training", {}, "mapped-dnn").at_threat(0.1)
    eps = defense.config.epsilon
    x_test, y_test = data.x_test[: args.n_test], data.y_test[: args.n_test]
    rows = []
    for seed in range(args.seeds):
        ctx = Context(seed=seed, data=data)
        torch.manual_seed(seed)
        model = registry.create("model", "lenet", {}, "mapped-dnn").build(data, ctx)
        optimizer = make_optimizer(model, schedule)
        one_epoch = type(schedule)(1, schedule.lr, schedule.batch_size, schedule.optimizer)
        loss = defense.madry_loss(data.domain)
        for epoch in range(1, args.epochs + 1):
            start = time.perf_counter()
            train(model, data, one_epoch, ctx, loss, optimizer=optimizer)
            seconds = time.perf_counter() - start
            model.eval()
            with torch.no_grad():
                clean = float((model(x_test).argmax(1) == y_test).float().mean())
            adv = torch.cat([bim_examples(model, x_test[i:i + 250], y_test[i:i + 250], eps, 20, 2.5 * eps / 20,
                                          data.domain, True) for i in range(0, len(x_test), 250)])
            with torch.no_grad():
                robust = float((model(adv).argmax(1) == y_test).float().mean())
            rows.append({"seed": seed, "epoch": epoch, "clean": clean, "pgd20": robust, "epoch_s": round(seconds, 1)})
            if not args.json:
                print(f"seed {seed} epoch {epoch}: clean {clean:.1%}  PGD-20 {robust:.1%}  ({seconds:.0f} s)", flush=True)
    spread = []
    for epoch in range(1, args.epochs + 1):
        values = [r["pgd20"] for r in rows if r["epoch"] == epoch]
        spread.append({"epoch": epoch, "pgd20_mean": statistics.mean(values), "pgd20_min": min(values),
                       "pgd20_max": max(values)})
    result = {"epsilon": eps, "steps": defense.config.steps, "schedule": schedule.__dict__ if hasattr(schedule, "__dict__") else str(schedule),
              "rows": rows, "spread": spread}
    if args.json:
        print(json.dumps(result, indent=1, default=str))
    else:
        for s in spread:
            print(f"epoch {s['epoch']}: PGD-20 mean {s['pgd20_mean']:.1%}, seeds {s['pgd20_min']:.1%}-{s['pgd20_max']:.1%}")
    return result


if __name__ == "__main__":
    main()
