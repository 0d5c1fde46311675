"""The noise-layer training step, side by side with an earlier revision of qbench, in one run.

Usage::

    python benchmarks/noise_layer_step.py [--baseline REV] [--rounds 3] [--steps 10] [--json]

One step is what ``noise_layer``'s ``fit`` does per batch under the seed paper's protocol (MNIST 1-vs-9 QNN:
8 qubits, amplitude encoding, depth 10, a readout bias, float32, batch 64): 3 BIM steps (epsilon 0.15, step
0.05) through the noise layers, the combined loss 0.5 L(x_adv) + 0.5 L(x), its backward and an Adam step.
The inputs are generated (the step's cost does not depend on the pixel values).

``--baseline`` (default ``21d8375``, the last commit before issue 17's speed work) is checked out into a
temporary git worktree; the current tree and the baseline then run in alternating subprocesses (``rounds``
of each), one torch thread, so both see the same machine load. Reported: each side's median step time (the
median over its rounds of each round's median), its fastest step (the least disturbed on a shared
machine), and both ratios baseline / current.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "21d8375"


def worker(steps: int) -> dict:
    """Time ``steps`` noise-layer training steps with whichever qbench is first on ``sys.path``."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    from qbench import Domain

    try:
        from qbench.contract.training import bim_examples
    except ImportError:  # revisions before the core was grouped by layer
        from qbench.training import bim_examples
    from qbench_plugins.defenses.noise_layer import NoiseLayers
    from qbench_plugins.models.qnn import LayeredQNN, QNNConfig

    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = LayeredQNN(256, 2, QNNConfig(), g)
    model.inserts.append(NoiseLayers(10, 2 * 3.141592653589793 / 32, 0.25, "both"))
    model.train()
    x = torch.rand(64, 1, 16, 16, generator=g)
    y = (torch.rand(64, generator=g) > 0.5).long()
    domain = Domain("box", 0.0, 1.0)
    opt = torch.optim.Adam(model.parameters(), lr=0.005)

    def step() -> float:
        x_adv = bim_examples(model, x, y, 0.15, 3, 0.05, domain)
        loss = 0.5 * F.cross_entropy(model(x_adv), y) + 0.5 * F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return float(loss)

    for _ in range(3):
        step()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    import qbench

    return {"ms": statistics.median(times) * 1e3, "min_ms": min(times) * 1e3, "qbench": os.path.dirname(qbench.__file__)}


def _pythonpath(tree: Path, into: Path) -> str:
    """A folder whose ``qbench`` and ``qbench_plugins`` are ``tree``'s (plugins install under another name)."""
    into.mkdir(parents=True, exist_ok=True)
    for name, target in (("qbench", tree / "qbench"), ("qbench_plugins", tree / "plugins")):
        link = into / name
        if not link.exists():
            link.symlink_to(target)
    return str(into)


def _run(path: str, steps: int) -> dict:
    env = dict(os.environ, PYTHONPATH=path, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    out = subprocess.run([sys.executable, __file__, "--worker", str(steps)], env=env, capture_output=True,
                         text=True, check=True, cwd=tempfile.gettempdir())
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", default=BASELINE, help=f"git revision to compare with (default {BASELINE})")
    parser.add_argument("--rounds", type=int, default=3, help="alternating subprocesses per side")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per subprocess (after 3 warm-up)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker)))
        return

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        base_tree = tmp_path / "baseline"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(base_tree), args.baseline], cwd=ROOT,
                       check=True)
        try:
            paths = {"current": _pythonpath(ROOT, tmp_path / "py-current"),
                     "baseline": _pythonpath(base_tree, tmp_path / "py-baseline")}
            ms: dict[str, list[float]] = {"current": [], "baseline": []}
            fastest: dict[str, list[float]] = {"current": [], "baseline": []}
            for _ in range(args.rounds):
                for side in ("baseline", "current"):
                    got = _run(paths[side], args.steps)
                    ms[side].append(got["ms"])
                    fastest[side].append(got["min_ms"])
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base_tree)], cwd=ROOT, check=False)
    cur, base = statistics.median(ms["current"]), statistics.median(ms["baseline"])
    # the fastest step of each side: on a shared machine the least disturbed measurement of the same work
    cur_min, base_min = min(fastest["current"]), min(fastest["baseline"])
    load = os.getloadavg()[0]
    record = {"current_ms": round(cur, 1), "baseline_ms": round(base, 1), "baseline": args.baseline,
              "ratio": round(base / cur, 2), "current_min_ms": round(cur_min, 1), "baseline_min_ms": round(base_min, 1),
              "ratio_of_minima": round(base_min / cur_min, 2), "rounds": ms, "load_avg": round(load, 1)}
    if args.json:
        print(json.dumps(record))
        return
    print(f"noise-layer training step, MNIST 1-vs-9 QNN, batch 64, 1 thread (load avg {load:.1f})")
    print(f"  baseline {args.baseline}: {base:.1f} ms   current: {cur:.1f} ms   ratio {base / cur:.2f}x")
    print(f"  fastest step: baseline {base_min:.1f} ms   current: {cur_min:.1f} ms   ratio {base_min / cur_min:.2f}x")
    print(f"  per round (ms): baseline {[round(v, 1) for v in ms['baseline']]}, current {[round(v, 1) for v in ms['current']]}")


if __name__ == "__main__":
    main()
