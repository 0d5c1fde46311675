"""Side-by-side benchmark of qbench's simulation engine against PennyLane.

Usage::

    python benchmarks/engine.py [--json] [--quick]

Pure cases (forward + backward w.r.t. weights AND inputs, batch 64, float32):
a hardware-efficient ansatz with ``depth`` layers of ``qml.Rot`` on every
qubit (shared trainable weights) followed by a CNOT ring, after an
``AmplitudeEmbedding`` of 2**n features; the loss is a fixed random linear
function of the probabilities of wires [0, 1].

* ``engine``               -- qbench.engine.execute on a prebuilt operator list
* ``engine+op-build``      -- the same, building the PennyLane operators inside the timed region
* ``default.qubit``        -- torch QNode, backprop, parameter broadcasting, same prebuilt operators
* ``lightning.qubit``      -- adjoint differentiation (expvals of Z0, Z1, Z0Z1 turned into the same
  probabilities); adjoint cannot differentiate the state preparation, so only the weight gradient is
  computed, and lightning's broadcasting runs examples one by one: timed on one example and
  extrapolated to 64 (an estimate)
* ``parameter-shift``      -- one example's weight gradient by the parameter-shift rule on
  lightning.qubit, multiplied by 64 (an estimate)

Noisy case: the 8-qubit depth-10 circuit with a depolarizing channel after
every layer on every qubit.  Exact: engine density matrix vs default.mixed at
batch 16; Monte Carlo: engine trajectories (1 per example).  Each noisy
measurement runs in its own subprocess and reports its peak resident-memory
increase.  A last case compares trajectories with the noiseless state vector at
batch 64 (the trajectory overhead).

Times are medians of several repeats after a warm-up.  ``ratio`` is the time
divided by the case's reference row; ``max_abs_diff`` compares probabilities with
the reference (for trajectories it is Monte Carlo error, not an equality check).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from typing import Callable

import numpy as np
import pennylane as qml
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from qbench.engine import execute  # noqa: E402

MEASURE = [0, 1]
DTYPE = torch.float32


def make_tensors(n: int, depth: int, batch: int, seed: int = 0):
    """Deterministic weights (depth, n, 3), inputs (batch, 2**n) and loss coefficients (batch, 4)."""
    g = torch.Generator().manual_seed(seed)
    weights = torch.randn(depth, n, 3, generator=g, dtype=DTYPE).requires_grad_()
    inputs = torch.randn(batch, 2**n, generator=g, dtype=DTYPE).requires_grad_()
    coeff = torch.randn(batch, 2 ** len(MEASURE), generator=g, dtype=DTYPE)
    return weights, inputs, coeff


def build_ops(weights: torch.Tensor, inputs: torch.Tensor, noise: float = 0.0) -> list:
    """The benchmark circuit as a list of PennyLane operators."""
    depth, n, _ = weights.shape
    ops = [qml.AmplitudeEmbedding(inputs, wires=range(n), normalize=True)]
    for layer in range(depth):
        for q in range(n):
            ops.append(qml.Rot(weights[layer, q, 0], weights[layer, q, 1], weights[layer, q, 2], wires=q))
        for q in range(n):
            ops.append(qml.CNOT(wires=[q, (q + 1) % n]))
        if noise:
            for q in range(n):
                ops.append(qml.DepolarizingChannel(noise, wires=q))
    return ops


def timed(fn: Callable[[], torch.Tensor], repeats: int, warmup: int = 1) -> tuple[float, torch.Tensor]:
    """Median wall time (ms) of ``fn`` over ``repeats`` runs after ``warmup`` runs; returns its last output."""
    out = None
    for _ in range(warmup):
        out = fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times)), out


def qnode_probs(ops: list, n: int, device: str, diff_method: str):
    """A torch QNode applying ``ops`` and returning probabilities of MEASURE."""
    dev = qml.device(device, wires=n)

    def circuit():
        for op in ops:
            qml.apply(op)
        return qml.probs(wires=MEASURE)

    return qml.QNode(circuit, dev, interface="torch", diff_method=diff_method)


# ---------------------------------------------------------------------------- pure cases


def pure_case(n: int, depth: int, batch: int, quick: bool, full_baselines: bool, dq_repeats: int) -> list[dict]:
    """Rows of one noiseless case."""
    w, x, coeff = make_tensors(n, depth, batch)
    case = f"{n}q depth {depth}, B={batch}"
    rows = []
    ops = build_ops(w, x)

    def engine_step():
        p = execute(ops, n, MEASURE).probs
        (p * coeff).sum().backward(retain_graph=True)
        return p.detach()

    def engine_build_step():
        p = execute(build_ops(w, x), n, MEASURE).probs
        (p * coeff).sum().backward()
        return p.detach()

    reps = 5 if quick else 15
    ms, ref = timed(engine_step, reps, warmup=3)
    rows.append(dict(case=case, method="engine", ms=ms, probs=ref))
    ms, p = timed(engine_build_step, reps, warmup=2)
    rows.append(dict(case=case, method="engine+op-build", ms=ms, probs=p))

    dq = qnode_probs(ops, n, "default.qubit", "backprop")

    def dq_step():
        p = dq()
        (p * coeff).sum().backward(retain_graph=True)
        return p.detach()

    ms, p = timed(dq_step, dq_repeats, warmup=1)
    rows.append(dict(case=case, method="default.qubit (backprop)", ms=ms, probs=p))

    if not full_baselines:
        rows.append(dict(case=case, method="lightning.qubit / parameter-shift: skipped (--quick)", ms=float("nan")))
        return rows
    rows.extend(lightning_rows(case, n, depth, batch, quick))
    return rows


def lightning_rows(case: str, n: int, depth: int, batch: int, quick: bool) -> list[dict]:
    """lightning.qubit adjoint (extrapolated) and parameter-shift (extrapolated) rows."""
    try:
        import pennylane_lightning  # noqa: F401

        qml.device("lightning.qubit", wires=1)
    except Exception as exc:  # pragma: no cover - depends on the installation
        return [dict(case=case, method=f"lightning.qubit: not installed ({type(exc).__name__})", ms=float("nan"))]
    rows = []
    small = 1
    w, x, coeff = make_tensors(n, depth, batch)
    xs = x.detach()[:small]
    ops = build_ops(w, xs)
    dev = qml.device("lightning.qubit", wires=n)

    def circuit():
        for op in ops:
            qml.apply(op)
        return (qml.expval(qml.PauliZ(0)), qml.expval(qml.PauliZ(1)), qml.expval(qml.PauliZ(0) @ qml.PauliZ(1)))

    node = qml.QNode(circuit, dev, interface="torch", diff_method="adjoint")
    signs = torch.tensor([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=DTYPE)

    def adjoint_step():
        z = torch.stack([t.to(DTYPE) for t in node()], dim=-1)  # (small, 3)
        p = (1 + z @ signs.T) / 4
        (p * coeff[:small]).sum().backward(retain_graph=True)
        return p.detach()

    ms, p = timed(adjoint_step, 1, warmup=0)
    rows.append(dict(case=case, method=f"lightning.qubit (adjoint, weights only; est. from B={small})",
                     ms=ms * batch / small, probs=p, rows=small))

    one = build_ops(w, x.detach()[:1])
    node1 = qnode_probs(one, n, "lightning.qubit", "parameter-shift")

    def shift_step():
        p = node1()
        (p.reshape(1, -1) * coeff[:1]).sum().backward(retain_graph=True)
        return p.detach().reshape(1, -1)

    ms, p = timed(shift_step, 1, warmup=0)
    rows.append(dict(case=case, method="parameter-shift (lightning, weights only; est. 64 x 1 example)",
                     ms=ms * batch, probs=p, rows=1))
    return rows


# ---------------------------------------------------------------------------- noisy cases (subprocesses)


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (Linux >= 4.0); False if unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def worker(spec: dict) -> dict:
    """Run one noisy measurement in this (fresh) process; returns timing, probabilities and peak memory.

    Peak memory is the increase of the peak resident set size over the resident
    size just before the measurement (imports and inputs excluded).
    """
    torch.set_num_threads(spec.get("threads", 1))
    n, depth, batch, noise = spec["n"], spec["depth"], spec["batch"], spec["noise"]
    w, x, coeff = make_tensors(n, depth, batch)
    method = spec["method"]
    ops = build_ops(w, x, noise)
    gen = torch.Generator().manual_seed(0)
    can_reset = _reset_peak()
    base_kb = _status_kb("VmRSS") if can_reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if method == "default.mixed":
        node = qnode_probs(ops, n, "default.mixed", "backprop")

        def step():
            p = node()
            (p * coeff).sum().backward(retain_graph=True)
            return p.detach()
    else:
        kw = dict(method=method) if method != "statevector" else dict(method="statevector")
        the_ops = ops if method != "statevector" else build_ops(w, x, 0.0)

        def step():
            p = execute(the_ops, n, MEASURE, generator=gen, **kw).probs
            (p * coeff).sum().backward(retain_graph=True)
            return p.detach()

    ms, p = timed(step, spec["repeats"], warmup=spec.get("warmup", 1))
    peak_kb = _status_kb("VmHWM") if can_reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return dict(ms=ms, probs=p.tolist(), peak_mb=max(peak_kb - base_kb, 0) / 1024.0)


def run_worker(spec: dict) -> dict:
    """Run :func:`worker` in a subprocess."""
    env = dict(os.environ)
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)],
        capture_output=True, text=True, env=env, check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"worker {spec} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def noisy_cases(quick: bool, threads: int) -> list[dict]:
    """Rows of the noisy comparisons (each measurement in its own subprocess)."""
    rows = []
    base = dict(n=8, depth=10, noise=0.01, threads=threads)
    exact_batch = 4 if quick else 16
    case = f"8q depth 10 +depolarizing, B={exact_batch}"
    specs = [
        ("engine density", dict(base, batch=exact_batch, method="density", repeats=2 if quick else 4)),
        ("engine trajectories (1/example)", dict(base, batch=exact_batch, method="trajectories", repeats=5 if quick else 15, warmup=2)),
        ("default.mixed (backprop)", dict(base, batch=exact_batch, method="default.mixed", repeats=1, warmup=0 if quick else 1)),
    ]
    for name, spec in specs:
        res = run_worker(spec)
        rows.append(dict(case=case, method=name, ms=res["ms"], probs=torch.tensor(res["probs"]), peak_mb=res["peak_mb"]))
    case = "8q depth 10 +depolarizing, B=64"
    specs = [
        ("engine statevector (noiseless)", dict(base, batch=64, method="statevector", repeats=5 if quick else 15, warmup=2)),
        ("engine trajectories (1/example)", dict(base, batch=64, method="trajectories", repeats=5 if quick else 15, warmup=2)),
    ]
    for name, spec in specs:
        res = run_worker(spec)
        rows.append(dict(case=case, method=name, ms=res["ms"], probs=torch.tensor(res["probs"]), peak_mb=res["peak_mb"]))
    return rows


# ---------------------------------------------------------------------------- report


def finish(rows: list[dict]) -> list[dict]:
    """Add ratio and max_abs_diff relative to the first row of each case."""
    out = []
    refs: dict[str, dict] = {}
    for r in rows:
        ref = refs.setdefault(r["case"], r)
        rec = dict(case=r["case"], method=r["method"], ms=float(f"{r['ms']:.4g}") if r["ms"] == r["ms"] else None)
        ratio = r["ms"] / ref["ms"]
        rec["ratio"] = float(f"{ratio:.3g}") if ratio == ratio else None
        if "probs" in r and "probs" in ref:
            k = r.get("rows", r["probs"].shape[0])
            diff = (r["probs"][:k].double() - ref["probs"][:k].double()).abs().max().item()
            rec["max_abs_diff"] = float(f"{diff:.3g}")
        else:
            rec["max_abs_diff"] = None
        if "peak_mb" in r:
            rec["peak_mb"] = round(r["peak_mb"], 1)
        out.append(rec)
    return out


def print_table(records: list[dict]) -> None:
    """Print the records as an aligned text table."""
    head = ["case", "method", "ms", "ratio", "max_abs_diff", "peak_mb"]
    cells = [[str(r.get(h, "")) if r.get(h) is not None else "" for h in head] for r in records]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(head)]
    print("  ".join(h.ljust(w) for h, w in zip(head, widths)))
    print("  ".join("-" * w for w in widths))
    last = None
    for c in cells:
        if last is not None and c[0] != last:
            print()
        last = c[0]
        print("  ".join(v.ljust(w) for v, w in zip(c, widths)))


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="one JSON record per measurement")
    parser.add_argument("--quick", action="store_true", help="fewer repeats and baselines (~1 minute)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads for every method (default 1: small GEMMs gain little "
                             "from threads and OpenMP spinning hurts badly on a shared machine)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    rows = []
    full = not args.quick
    rows += pure_case(8, 10, 64, args.quick, full_baselines=full, dq_repeats=3 if args.quick else 5)
    rows += pure_case(8, 40, 64, args.quick, full_baselines=full, dq_repeats=1 if args.quick else 3)
    rows += pure_case(10, 10, 64, args.quick, full_baselines=full, dq_repeats=1 if args.quick else 3)
    rows += noisy_cases(args.quick, args.threads)
    records = finish(rows)
    if args.json:
        for r in records:
            print(json.dumps(r))
        return
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"qbench.engine benchmark  (torch {torch.__version__}, pennylane {qml.__version__}, "
          f"{torch.get_num_threads()} thread(s), {os.cpu_count()} CPUs, load avg {load:.1f}, "
          f"float32/complex64, forward+backward)")
    print("engine = execute + backward on a prebuilt op list; ratio = ms / first row of the case; "
          "'est.' rows are extrapolated estimates\n")
    print_table(records)
    print(f"\ntotal benchmark time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
