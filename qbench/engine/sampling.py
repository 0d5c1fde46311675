"""Sampling measurement shots from exact probabilities."""

from __future__ import annotations

import torch

# Above this many (rows * shots) draws, sample counts with conditional binomials
# instead of materialising every shot.
_MAX_MATERIALISED = 1 << 22


def default_generator(device: torch.device | str = "cpu") -> torch.Generator:
    """A private generator seeded with one draw from torch's global RNG.

    Used when the caller passes no generator: results stay reproducible under
    ``torch.manual_seed`` while every other random number comes from the
    private generator.
    """
    seed = int(torch.randint(0, 2**62, (1,)).item())
    return torch.Generator(device=device).manual_seed(seed)


def sample_shots(probs: torch.Tensor, shots: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw ``shots`` measurement outcomes per row and return the outcome counts.

    Args:
        probs: (B, K) or (K,) probabilities (detached internally; tiny negative
            rounding errors are clipped and rows are renormalised).
        shots: number of shots per row.
        generator: source of randomness (None: see :func:`default_generator`).

    Returns:
        int64 counts of the same shape as ``probs``, each row summing to ``shots``
        and distributed as Multinomial(shots, probs).
    """
    if shots < 0:
        raise ValueError("shots must be non-negative")
    if generator is None:
        generator = default_generator(probs.device)
    squeeze = probs.ndim == 1
    p = probs.detach().to(torch.float64).reshape(-1, probs.shape[-1]).clamp_min(0.0)
    p = p / p.sum(dim=1, keepdim=True)
    rows, k = p.shape
    if shots == 0:
        counts = torch.zeros(rows, k, dtype=torch.int64, device=p.device)
    elif rows * shots <= _MAX_MATERIALISED:
        draws = torch.multinomial(p, shots, replacement=True, generator=generator)
        counts = torch.zeros(rows, k, dtype=torch.int64, device=p.device).scatter_add_(1, draws, torch.ones_like(draws))
    else:
        # Multinomial as a chain of binomials: count_i ~ Bin(remaining, p_i / mass_left).
        counts = torch.zeros(rows, k, dtype=torch.int64, device=p.device)
        remaining = torch.full((rows,), float(shots), dtype=torch.float64, device=p.device)
        left = torch.ones(rows, dtype=torch.float64, device=p.device)
        for i in range(k - 1):
            ratio = (p[:, i] / left.clamp_min(1e-300)).clamp(0.0, 1.0)
            c = torch.binomial(remaining, ratio, generator=generator)
            counts[:, i] = c.long()
            remaining = remaining - c
            left = left - p[:, i]
        counts[:, k - 1] = remaining.long()
    return counts[0] if squeeze else counts
