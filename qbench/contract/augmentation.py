"""Data augmentation of training batches, as a dataset's :class:`TrainingSchedule` names it.

Written by hand rather than taken from torchvision (not a dependency): the crops and flips must be drawn
from the training context's generator, so that a seed gives the same weights and a checkpointed training
resumes exactly, and they must act on a whole batch tensor at once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def crop_flip(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Each image of ``x`` (``(N, C, H, W)``) randomly cropped from its ``pad``-pixel zero-padded copy and
    flipped horizontally with probability 1/2 (He et al. 2016's CIFAR recipe); one draw per image."""
    n, channels, h, w = x.shape
    device = x.device
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=generator.device).to(device)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=generator.device).to(device)
    rows = dy[:, None] + torch.arange(h, device=device)[None]  # (n, h)
    cols = dx[:, None] + torch.arange(w, device=device)[None]  # (n, w)
    out = padded[torch.arange(n, device=device)[:, None, None, None], torch.arange(channels, device=device)[None, :, None, None],
                 rows[:, None, :, None], cols[:, None, None, :]]
    flip = (torch.rand(n, generator=generator, device=generator.device) < 0.5).to(device)
    return torch.where(flip[:, None, None, None], out.flip(3), out)
