"""Pauli gathers made one gather at a time against all at once, each in fresh processes, side by side in one run.

The trajectory engine gives every row of a sampled Pauli layer its own gather index and phase, copied from
the by-mask tables (``qbench/engine/trajectories.py``). Until the third session of 2026-12-07 all G gathers
of a call were made at once by advanced indexing: two (G, rows, 2**n) tensors, about 50 MB each for 250
examples x 10 trajectories on 8 qubits, whose pages the kernel faulted in afresh at every call. Today each
gather's rows are made when the program reaches it (``_TableRows``, a few MB).

How fast either is depends on the state of the process's heap (which sizes glibc has learnt to keep), so
``benchmarks/row_slices.py``, which alternates modes inside one process, understates the difference: here
each measurement is a fresh process that only ever runs one mode, as a grid's worker does, alternating
the modes ``--rounds`` times. Each process times ``--calls`` consecutive no-grad forwards of the deployed
attack view (one EOT sample: what the Square Attack's and NES's scores repeat) on the stored depolarized
MNIST QNN and QCNN of seed 0, and the median of the later calls is its figure; every process also prints a
digest of its outputs, which must agree between the modes (bit for bit). One torch thread.

    python benchmarks/pauli_table_rows.py [--rounds 3] [--calls 30] [--examples 250]
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(store: Path, data_dir: Path, model_name: str, row_copies: bool, calls: int, examples: int) -> dict:
    """(In the child process) per-call seconds of the attack-view forward, and a digest of its outputs."""
    import torch

    import qbench.engine.trajectories as trajectories
    from stored_training import load_stored_training  # this folder is on the path (run as a script)

    torch.set_num_threads(1)
    trajectories.ROW_COPIES = row_copies
    stored = load_stored_training(store, data_dir, "qnn", "mnist-1v9", model_name, "depolarizing", 0, shots=50)
    if stored is None:
        return {}
    for p in stored.module.parameters():
        p.requires_grad_(False)
    model = stored.defense.deploy(copy.deepcopy(stored.module), stored.data, stored.ctx).eval()
    x = stored.data.x_test[:examples]
    digest = hashlib.sha256()
    times = []
    torch.manual_seed(0)
    with torch.no_grad():
        for _ in range(calls):
            start = time.perf_counter()
            out = model(x)
            times.append(time.perf_counter() - start)
            digest.update(out.numpy().tobytes())
    return {"seconds": statistics.median(times[calls // 5:]), "digest": digest.hexdigest()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--published", type=Path, default=ROOT / "leaderboards" / "store")
    p.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--examples", type=int, default=250, help="the batch (default: the runner's eval_batch_size)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--calls", type=int, default=30)
    p.add_argument("--child", nargs=3, metavar=("STORE", "MODEL", "ROW_COPIES"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        store, model_name, row_copies = args.child
        print(json.dumps(measure(Path(store), args.data_dir, model_name, row_copies == "1", args.calls, args.examples)))
        return 0

    from stored_training import published_copy  # this folder is on the path (run as a script)

    print(f"1 torch thread, {args.examples} examples x 10 trajectories, {args.calls} forwards per process, "
          f"{args.rounds} fresh processes per mode (median)\n")
    print("| model | all gathers at once (s) | one gather at a time (s) | ratio | same outputs |")
    print("| --- | ---: | ---: | ---: | --- |")
    with published_copy(args.published) as path:
        for model_name in ("qnn", "qcnn"):
            runs: dict[str, list[dict]] = {"0": [], "1": []}
            for _ in range(args.rounds):
                for mode in ("0", "1"):
                    out = subprocess.run(
                        [sys.executable, __file__, "--child", str(path), model_name, mode, "--calls", str(args.calls),
                         "--examples", str(args.examples), "--data-dir", str(args.data_dir)],
                        capture_output=True, text=True, check=True,
                    )
                    runs[mode].append(json.loads(out.stdout.strip().splitlines()[-1]))
            if not all(runs["0"] + runs["1"]):
                print(f"| {model_name} | (no stored training) | | | |")
                continue
            before = statistics.median(r["seconds"] for r in runs["0"])
            today = statistics.median(r["seconds"] for r in runs["1"])
            same = len({r["digest"] for r in runs["0"] + runs["1"]}) == 1
            print(f"| mnist-1v9 {model_name}, depolarizing | {before:.4f} | {today:.4f} | {before / today:.2f}x | "
                  f"{'yes' if same else 'NO'} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
