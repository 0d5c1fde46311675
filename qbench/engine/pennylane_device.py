"""Running the same operator list on a named PennyLane device (for cross-checks)."""

from __future__ import annotations

import functools
from typing import Sequence

import pennylane as qml
import torch

# Devices on which the torch interface supports backpropagation.
BACKPROP_DEVICES = frozenset({"default.qubit", "default.mixed"})


@functools.lru_cache(maxsize=16)
def _device(name: str, n_wires: int):
    return qml.device(name, wires=n_wires)


def execute_on_device(
    ops: Sequence[qml.operation.Operator],
    n_wires: int,
    measure_wires: Sequence[int],
    device_name: str,
    batch_size: int | None = None,
    diff_method: str | None = None,
) -> torch.Tensor:
    """Probabilities of ``measure_wires`` from a torch QNode applying ``ops`` on ``device_name``.

    Uses ``diff_method="backprop"`` on devices that support it and PennyLane's
    ``"best"`` choice elsewhere (override with ``diff_method``).  Parameter
    broadcasting is left to PennyLane.  Returns a (B, 2**k) tensor.
    """
    dev = _device(device_name, n_wires)
    if diff_method is None:
        diff_method = "backprop" if device_name in BACKPROP_DEVICES else "best"
    wires = list(measure_wires)

    def circuit():
        for op in ops:
            qml.apply(op)
        return qml.probs(wires=wires)

    probs = qml.QNode(circuit, dev, interface="torch", diff_method=diff_method)()
    if probs.ndim == 1:
        probs = probs.unsqueeze(0)
        if batch_size is not None and batch_size > 1:
            probs = probs.expand(batch_size, -1)
    return probs
