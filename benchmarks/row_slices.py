"""The engine's row slices and Pauli mask tables side by side with the code path before them, in one process.

Four modes of the engine, alternating: *before* (today's code with all switched off: the whole batch at
once, each Pauli gather's index and phase computed entry by entry, which is the engine's path until
2026-12-07, bit for bit), *slices* (``qbench/engine/row_slices.py``: slices of about 4 MiB of state),
*tables* (slices, and each row's Pauli index and phase copied from a table by its masks, all gathers at
once by advanced indexing: the engine until the third session of 2026-12-07) and *today* (the same rows,
made one gather at a time when the program reaches it, ``trajectories._TableRows``).

Measured on the published models whose cells the grid still computes (the MNIST QNN and QCNN under sampled
depolarizing noise, version 3) and on the noise layer's prediction, at the batch the runner attacks and
evaluates in (``--examples``, default 250: ``Plan.eval_batch_size``; EOT samples of 10 trajectories, 50-shot
readout):

* ``attack gradient``: one EOT sample of d loss / d input, what every PGD/APGD/MIM step repeats 20 times;
* ``attack-view forward``: one EOT sample of the class probabilities without a gradient, what the Square
  Attack's and NES's scores repeat (Square: 2 x 20 per iteration, 1000 iterations);
* ``50-shot prediction``: the deployed prediction (a trajectory per shot for depolarizing, the noise redrawn
  per shot for the noise layer), what every cell's evaluation repeats 2 x 10 times.

The modes alternate (``--rounds`` of each, median reported; each round times a block of ``--block`` calls in
a row, per call) and must give the same numbers bit for bit (checked on every round's first output). One
torch thread.

    python benchmarks/row_slices.py [--rounds 7] [--block 4] [--examples 250]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path

import torch

import qbench.engine.row_slices as row_slices
import qbench.engine.trajectories as trajectories
from stored_training import load_stored_training, published_copy  # this folder is on the path (run as a script)

ROOT = Path(__file__).resolve().parents[1]


def _cases(store: Path, data_dir: Path, examples: int):
    """(name, a function computing one output) per measured case."""
    for model_name, defense in [("qnn", "depolarizing"), ("qcnn", "depolarizing"), ("qnn", "noise_layer")]:
        stored = load_stored_training(store, data_dir, "qnn", "mnist-1v9", model_name, defense, 0, shots=50)
        if stored is None:
            continue
        for p in stored.module.parameters():
            p.requires_grad_(False)
        model = stored.defense.deploy(copy.deepcopy(stored.module), stored.data, stored.ctx).eval()
        x, y = stored.data.x_test[:examples], stored.data.y_test[:examples]
        label = f"mnist-1v9 {model_name}, {defense}"
        if defense == "depolarizing":
            def gradient(model=model, x=x, y=y):
                xi = x.clone().requires_grad_(True)
                (g,) = torch.autograd.grad(torch.nn.functional.cross_entropy(model(xi), y, reduction="sum"), xi)
                return g
            yield f"{label}: attack gradient (EOT sample)", gradient

            def forward(model=model, x=x):
                with torch.no_grad():
                    return model(x)
            yield f"{label}: attack-view forward (EOT sample)", forward

        def predict(model=model, x=x, stored=stored):
            with torch.no_grad():
                return stored.defense.predict(model, x, stored.ctx)
        yield f"{label}: 50-shot prediction", predict


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--published", type=Path, default=ROOT / "leaderboards" / "store")
    p.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--examples", type=int, default=250, help="the batch (default: the runner's eval_batch_size)")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--block", type=int, default=4,
                   help="calls timed in a row per mode and round, as a cell makes them (default 4): one call between "
                        "other modes' calls runs on a heap they warmed, which hides the page faults of the tables mode")
    args = p.parse_args()
    torch.set_num_threads(1)
    sliced_spans = row_slices.spans

    tables = trajectories._by_mask_tables
    modes = {  # (row slices, mask tables, table rows made per gather)
        "before": (lambda *a, **k: None, lambda plan: None, False),
        "slices": (sliced_spans, lambda plan: None, False),
        "tables": (sliced_spans, tables, False),
        "today": (sliced_spans, tables, True),
    }
    print(f"torch {torch.__version__}, 1 thread, {args.examples} examples, {args.rounds} rounds of each mode, blocks of {args.block} calls "
          f"(median); slices of about {row_slices.TARGET_BYTES // 2**20} MiB of state\n")
    print("| case | before (s) | slices (s) | tables (s) | today (s) | today vs tables | today vs before | same numbers |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    with published_copy(args.published) as path:
        for name, compute in _cases(path, args.data_dir, args.examples):
            times: dict[str, list[float]] = {mode: [] for mode in modes}
            same = True
            for r in range(args.rounds):
                outputs = {}
                for mode, (spans, by_mask, row_copies) in modes.items():
                    row_slices.spans, trajectories._by_mask_tables = spans, by_mask
                    trajectories.ROW_COPIES = row_copies
                    torch.manual_seed(r)
                    outputs[mode] = compute()  # the output compared; then a block timed, as a cell repeats it
                    start = time.perf_counter()
                    for _ in range(args.block):
                        compute()
                    times[mode].append((time.perf_counter() - start) / args.block)
                same &= all(torch.equal(outputs["before"], out) for out in outputs.values())
            row_slices.spans, trajectories._by_mask_tables, trajectories.ROW_COPIES = sliced_spans, tables, True
            t = {mode: statistics.median(v) for mode, v in times.items()}
            print(f"| {name} | {t['before']:.3f} | {t['slices']:.3f} | {t['tables']:.3f} | {t['today']:.3f} | "
                  f"{t['tables'] / t['today']:.2f}x | {t['before'] / t['today']:.2f}x | {'yes' if same else 'NO'} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
