"""One EOT PGD step through a noisy mapped CNN: the code paths of issue 17 side by side, as ratios.

The step is what every adaptive attack on the mapped-DNN track repeats: the gradient of the EOT loss
(cross-entropy averaged over ``--eot`` noisy forwards) w.r.t. a batch of ``-n`` inputs, through the
intrinsic read-back noise of the backend (``qbench.hardware.map_to_hardware``). Three code paths, timed
in the same process on the same model, inputs and characterisation:

* ``tiled`` -- before issue 17: one forward of the batch tiled ``--eot`` times (which also shared one
  weight-noise draw between the copies), the read-back composed of torch operations, and the weights'
  gradients computed although the attack never uses them;
* ``separate`` -- ``--eot`` separate forwards of the batch (a fresh weight draw each), parameters frozen,
  the composed read-back (``QBENCH_COMPILE=0``);
* ``compiled`` -- today's path: ART's ``loss_gradient`` of qbench's EOT classifier (``art_bridge``) with the
  frozen parameters and the compiled read-back kernel (``qbench.hardware.noisy_mac.compiled_kernel``).

Times are medians of ``--repeats`` steps after one warm-up step (which pays the kernel's compilation,
reported separately). One torch thread, as the runner uses. ``--model alexnet`` is the cifar10-alexnet
board's AlexNet (width 0.5, 3x32x32 inputs), ``lenet`` the mnist-lenet board's LeNet-5; the weights are
random (timing does not depend on them).

    .venv/bin/python benchmarks/mapped_attack_step.py [--model alexnet|lenet] [-n 200] [--eot 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qbench import hardware  # noqa: E402
from qbench.contract.art_bridge import EOTPyTorchClassifier  # noqa: E402
from qbench.hardware import noisy_mac  # noqa: E402
from qbench_plugins.models.alexnet import AlexNet32  # noqa: E402
from qbench_plugins.models.lenet import LeNet5  # noqa: E402


def _model(name: str) -> tuple[torch.nn.Module, tuple[int, ...]]:
    torch.manual_seed(0)
    if name == "alexnet":
        return AlexNet32(3, 10, 0.5, 1024, (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)).eval(), (3, 32, 32)
    return LeNet5(1, 10).eval(), (1, 28, 28)


def _set_trainable(model: torch.nn.Module, trainable: bool) -> None:
    for parameter in model.parameters():
        parameter.requires_grad_(trainable)


def tiled_step(mapped: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, n_eot: int) -> np.ndarray:
    """The pre-issue-17 step: one forward of the tiled batch, weight gradients included."""
    _set_trainable(mapped, True)
    os.environ["QBENCH_COMPILE"] = "0"
    mapped.zero_grad(set_to_none=True)
    tiled = x.repeat(n_eot, *([1] * (x.dim() - 1))).requires_grad_()
    F.cross_entropy(mapped(tiled), y.repeat(n_eot)).backward()
    return tiled.grad.reshape(n_eot, *x.shape).mean(0).numpy()


def separate_step(mapped: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, n_eot: int) -> np.ndarray:
    """Separate forwards, parameters frozen, the composed read-back."""
    _set_trainable(mapped, False)
    os.environ["QBENCH_COMPILE"] = "0"
    total = torch.zeros_like(x)
    for _ in range(n_eot):
        xi = x.clone().requires_grad_()
        (grad,) = torch.autograd.grad(F.cross_entropy(mapped(xi), y), xi)
        total += grad
    return (total / n_eot).numpy()


def compiled_step(classifier: EOTPyTorchClassifier, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Today's path: qbench's ART classifier, frozen parameters, the compiled kernel."""
    os.environ.pop("QBENCH_COMPILE", None)
    return classifier.loss_gradient(x, y)


def _time(step, repeats: int) -> tuple[float, float]:
    """(seconds of the warm-up step, median seconds of ``repeats`` further steps)."""
    start = time.perf_counter()
    step()
    warm = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return warm, statistics.median(times)


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; prints a table (or JSON) and returns the numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("alexnet", "lenet"), default="alexnet")
    parser.add_argument("-n", type=int, default=200, help="inputs per step (the boards use 200)")
    parser.add_argument("--eot", type=int, default=5, help="EOT samples per gradient (the boards use 5)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="characterisation cache (default: a temporary folder; computing it takes ~1 min)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as scratch:
        characterisation = hardware.characterise(hardware.DEFAULT_BACKEND, cache_dir=args.cache_dir or scratch)
    model, shape = _model(args.model)
    generator = torch.Generator().manual_seed(1)
    x = torch.rand(args.n, *shape, generator=generator)
    y = torch.randint(0, 10, (args.n,), generator=generator)
    mapped = hardware.map_to_hardware(model, characterisation, generator=torch.Generator().manual_seed(2))

    rows = {}
    rows["tiled"] = _time(lambda: tiled_step(mapped, x, y, args.eot), args.repeats)
    rows["separate"] = _time(lambda: separate_step(mapped, x, y, args.eot), args.repeats)
    _set_trainable(mapped, False)
    classifier = EOTPyTorchClassifier(
        model=mapped, loss=torch.nn.CrossEntropyLoss(), input_shape=shape, nb_classes=10, clip_values=(0.0, 1.0),
        device_type="cpu", n_eot=args.eot,
    )
    xn, yn = x.numpy(), np.eye(10, dtype=np.float32)[y.numpy()]
    noisy_mac._COMPILED.clear()  # the warm-up pays the compilation, as a fresh process would
    rows["compiled"] = _time(lambda: compiled_step(classifier, xn, yn), args.repeats)

    # from the same generator state, the separate and the compiled path draw the same noise: their
    # gradients must agree to float32 rounding (the forward is bit-identical, the backward's order differs)
    mapped.generator = torch.Generator().manual_seed(7)
    a = separate_step(mapped, x, y, args.eot).ravel()
    mapped.generator = torch.Generator().manual_seed(7)
    b = compiled_step(classifier, xn, yn).ravel()
    relative = float(np.abs(a - b).max() / np.abs(a).max())

    base = rows["tiled"][1]
    result = {
        "model": args.model, "n": args.n, "eot": args.eot, "threads": torch.get_num_threads(),
        "paths": {name: {"step_s": round(t, 3), "warmup_s": round(w, 2), "speedup_vs_tiled": round(base / t, 2)}
                  for name, (w, t) in rows.items()},
        "compiled_vs_separate": round(rows["separate"][1] / rows["compiled"][1], 2),
        "gradient_max_relative_difference": relative,
    }
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(f"{args.model}, {args.n} inputs, EOT-{args.eot}, 1 thread (median of {args.repeats} steps)")
        print(f"{'path':10s} {'step s':>8s} {'warm-up s':>10s} {'vs tiled':>9s}")
        for name, row in result["paths"].items():
            print(f"{name:10s} {row['step_s']:8.3f} {row['warmup_s']:10.2f} {row['speedup_vs_tiled']:8.2f}x")
        print(f"compiled vs separate: {result['compiled_vs_separate']}x; same draws, largest gradient difference "
              f"{relative:.1e} of the largest component")
    return result


if __name__ == "__main__":
    main()
