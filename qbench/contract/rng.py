"""Seeds: one stream per cell and stage, derived from the run's seed; global RNG state isolated per block."""

from __future__ import annotations

import contextlib
import hashlib
import random
from typing import Iterator

import numpy as np
import torch


def derive_seed(seed: int, *labels: str) -> int:
    """A 63-bit seed derived from ``seed`` and labels, so every cell and stage has its own stream."""
    digest = hashlib.sha256(("/".join([str(seed), *labels])).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


@contextlib.contextmanager
def isolated_rng(seed: int) -> Iterator[None]:
    """Seed torch's, numpy's and python's global RNGs for the block, then restore them.

    Libraries the plugins rely on (ART's random starts, dropout, a noise layer's ``torch.randn``) draw from
    global state; isolating it per cell keeps "same seed, same numbers" independent of the order cells run.
    """
    np_state = np.random.get_state()
    py_state = random.getstate()
    # the CUDA generator of the current device is restored too once CUDA is in use (--torch-device cuda)
    devices = [torch.cuda.current_device()] if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        np.random.seed(seed % (2**32))
        random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)
