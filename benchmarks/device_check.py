"""``--torch-device cuda`` checked on a GPU: the same cells on the CPU and on the GPU, side by side, in one run.

Usage (on a machine with CUDA; the prepared script for the minutes a GPU machine is lent)::

    python benchmarks/device_check.py [--out DIR] [--data-dir DIR] [--json]

What it runs, each through the real CLI (``qbench evaluate --json``) in a fresh store, first with
``--torch-device cpu`` and then with ``--torch-device cuda``:

1. the QNN track on the embedded moons data (no files needed): the undefended QNN and the noise-layer
   defense, 3 epochs, FGSM and EOT PGD at the track's epsilon, 1 seed (engine, readout, EOT, training);
2. the mapped-DNN track on MNIST when ``--data-dir`` (or ``$QBENCH_DATA``) has it: LeNet with the intrinsic
   hardware noise, 1 epoch, 100 test images, noiseless and EOT PGD (the noisy read-back kernel, ART on the
   device);
3. on the second device only (the CPU would take hours): the exact depolarizing channel on the MNIST
   1-vs-9 QNN (8 qubits, a 65 536-entry density matrix per example), 1 epoch, 250 test images, FGSM and
   PGD, whose time per cell is the figure docs/cost.md needs to plan the two MNIST boards' depolarizing
   rows (on these 2 cores: 50-65 s and 16 GB per forward+backward of 250).

For each: clean and robust accuracy on both devices and their difference (a GPU result is a different
random stream and other rounding, so the numbers agree within sampling noise, not bit for bit: the
check is that the difference is within the 95% interval of the difference of two such estimates), and
the wall time of each side with their ratio. A failure on the GPU (an exception, a tensor on the wrong
device) is printed with its traceback. Exit status 1 when any comparison fails or a run errs.

Not run in CI (no GPU there); tests/test_torch_device.py checks on the CPU what can be checked without one.
The GPU machine lent to this project has torch but not PennyLane, ART or qiskit (nor qiskit-aer and
qiskit-ibm-runtime, whose fake backends the mapped track reads): they travel as Python 3.12 wheels with
their own missing dependencies, and MNIST as a copy of ``../shared/data/mnist`` (12 MB), in folders that
``.git/info/exclude`` ignores, named in the call's ``carry`` (/work/.library/device/README.md).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: (name, evaluate's arguments, needs MNIST, compared: run on both devices; else on the second one only)
CASES = [
    ("qnn / moons / none", ["--track", "qnn", "--dataset", "moons", "--defense", "none", "--epochs", "3",
                            "--attack", "fgsm", "--attack", "pgd"], False, True),
    ("qnn / moons / noise_layer", ["--track", "qnn", "--dataset", "moons", "--defense", "noise_layer",
                                   "--epochs", "3", "--attack", "fgsm", "--attack", "pgd", "--n-eot", "5"], False, True),
    ("mapped-dnn / mnist / intrinsic_noise", ["--track", "mapped-dnn", "--dataset", "mnist", "--defense",
                                              "intrinsic_noise", "--epochs", "1", "--n-test", "100", "--attack",
                                              "noiseless-pgd", "--attack", "pgd", "--n-eot", "5"], True, True),
    ("qnn / mnist-1v9 / depolarizing (timed)", ["--track", "qnn", "--dataset", "mnist-1v9", "--defense",
                                                "depolarizing", "--epochs", "1", "--n-test", "250", "--attack",
                                                "fgsm", "--attack", "pgd"], True, False),
]


def evaluate(args: list[str], device: str, store: Path, data_dir: str | None) -> tuple[dict | None, float, str]:
    """One ``qbench evaluate --json`` on ``device``: its summary (None on failure), wall seconds, stderr."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    if data_dir:
        env["QBENCH_DATA"] = data_dir
    argv = [sys.executable, "-m", "qbench.cli", "--json", "evaluate", *args, "--seeds", "1", "--no-baseline",
            "--store", str(store), "--torch-device", device, "--debug"]
    start = time.perf_counter()
    run = subprocess.run(argv, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if run.returncode != 0:
        return None, seconds, run.stderr[-4000:]
    return json.loads(run.stdout), seconds, run.stderr[-1000:]


def numbers(summary: dict) -> dict[str, tuple[float, int]]:
    """(accuracy, examples) of the clean evaluation and of every attack, by name."""
    result = summary["defense"]
    out = {"clean": (result["clean"]["mean"], result["clean"]["n_examples"])}
    for row in result["attacks"]:
        out[f"{row['name']} eps={row['epsilon']:g}"] = (row["robust"]["mean"], row["robust"]["n_examples"])
    return out


def agree(a: tuple[float, int], b: tuple[float, int]) -> bool:
    """Whether two accuracies on n examples differ by less than the 95% interval of their difference."""
    (p, n), (q, _) = a, b
    pooled = max((p + q) / 2, 1 / n)
    return abs(p - q) <= 1.96 * math.sqrt(2 * pooled * (1 - pooled) / n) + 1e-9


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="where the stores and the report go (default: a temp dir)")
    parser.add_argument("--data-dir", default=os.environ.get("QBENCH_DATA"), help="folder with MNIST (default: $QBENCH_DATA)")
    parser.add_argument("--devices", default="cpu,cuda",
                        help="the two devices compared (default: cpu,cuda; cpu,cpu checks this script itself)")
    parser.add_argument("--only", default="", help="run only the cases whose name contains this")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import torch

    first, second = args.devices.split(",")
    if "cuda" in args.devices and not torch.cuda.is_available():
        print("device_check: this torch sees no CUDA device; nothing to compare", file=sys.stderr)
        return 2
    out = args.out or Path(tempfile.mkdtemp(prefix="qbench-device-"))
    out.mkdir(parents=True, exist_ok=True)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"
    report: dict = {"gpu": gpu, "devices": [first, second], "torch": torch.__version__, "cases": []}
    failed = False
    for name, case, needs_data, compared in [c for c in CASES if args.only in c[0]]:
        if needs_data and not (args.data_dir and (Path(args.data_dir) / "mnist").exists()):
            report["cases"].append({"case": name, "skipped": "no MNIST under --data-dir"})
            continue
        row: dict = {"case": name, "seconds": [], "errors": []}
        results = []
        for side, device in enumerate((first, second) if compared else (second,)):
            store = out / f"{name.replace(' / ', '-')}-{side}-{device}.sqlite"
            summary, seconds, stderr = evaluate(case, device, store, args.data_dir)
            row["seconds"].append(round(seconds, 1))
            if summary is None:
                row["errors"].append(f"{device}: {stderr}")
                failed = True
            else:
                results.append(numbers(summary))
        if len(results) == 2:
            row["values"] = {k: [results[0][k][0], results[1][k][0], agree(results[0][k], results[1][k])]
                             for k in results[0]}
            failed |= not all(v[2] for v in row["values"].values())
            row["speedup"] = round(row["seconds"][0] / row["seconds"][1], 2)
        elif not compared and results:
            row["values"] = {k: [None, v[0], True] for k, v in results[0].items()}
        report["cases"].append(row)
    (out / "device_check.json").write_text(json.dumps(report, indent=2))
    if args.json:
        print(json.dumps(report, indent=2))
        return 1 if failed else 0
    print(f"{report['gpu']}, torch {report['torch']}: {first} against {second}")
    for row in report["cases"]:
        if "skipped" in row:
            print(f"\n{row['case']}: skipped ({row['skipped']})")
            continue
        timed = " and ".join(f"{s} s" for s in row["seconds"])
        print(f"\n{row['case']}: {timed}" + (f", {row['speedup']}x" if "speedup" in row else ""))
        for key, (a, b, same) in row.get("values", {}).items():
            left = "  -  " if a is None else f"{100 * a:5.1f}%"
            print(f"  {key:<28} {left}  {100 * b:5.1f}%  {'agree' if same else 'DIFFER'}")
        for error in row["errors"]:
            print(f"  failed on {error}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
