"""The torch device a run computes on: ``--torch-device`` or ``$QBENCH_TORCH_DEVICE``, CPU by default.

Every torch computation of a task (the engine, the models, the attacks, the training) runs inside
:func:`computing_on`: torch's default device is the named one, so every tensor a plugin creates without
naming a device lands there, and the core moves the data split and the built model onto it. A plugin
that must create a tensor from numpy moves it with ``.to(x)`` or ``.to(x.device)``, and one that reads a
tensor into numpy calls ``.cpu()`` first; ``tests/test_torch_device.py`` checks the source for both.

The CPU default keeps every stored key: only another device enters the training and cell keys, since the
same seed gives other random numbers (and other rounding) there, so a GPU result is a different
measurement of the same protocol and is stored beside the CPU one, never in its place.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Iterator

from qbench.errors import UsageError

if TYPE_CHECKING:
    import torch

#: the environment variable read when ``--torch-device`` is not given
ENV_VAR = "QBENCH_TORCH_DEVICE"
DEFAULT = "cpu"


def torch_device_name(name: str | None = None) -> str:
    """The device named by the option (else the environment, else cpu), checked: a usage error when this
    torch cannot compute on it. Returns its canonical name ("cpu", "cuda", "cuda:1")."""
    import torch  # here, not at the top: the command line's parser reads ENV_VAR without paying for torch

    source = "--torch-device"
    if name is None:
        name, source = os.environ.get(ENV_VAR) or DEFAULT, f"${ENV_VAR}"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise UsageError(f"{source} {name!r} is not a torch device (cpu, cuda or cuda:N)") from None
    if device.type == "cpu":
        return DEFAULT
    if device.type != "cuda":
        raise UsageError(f"{source} {name}: qbench computes on cpu or cuda devices (ART's estimators support no other)")
    if not torch.cuda.is_available():
        raise UsageError(f"{source} {name}: this torch ({torch.__version__}) sees no CUDA device")
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise UsageError(f"{source} {name}: there are {torch.cuda.device_count()} CUDA devices (0..{torch.cuda.device_count() - 1})")
    return str(device)


@contextlib.contextmanager
def computing_on(name: str) -> Iterator[torch.device]:
    """Run the block with ``name`` as torch's default device (and, for ``cuda:N``, the current CUDA device,
    which ART's estimators use).

    On the CPU nothing is entered: it is torch's default already, and the device mode costs a dispatch on
    every torch call, so the CPU path stays exactly the code (and the numbers) it was before the option.
    """
    import torch

    device = torch.device(name)
    if device.type == "cpu":
        yield device
        return
    if device.index is not None:
        torch.cuda.set_device(device)
    with device:
        yield device
