"""The input domain of a dataset: where valid inputs live, and the projection back into it.

Attacks keep every iterate inside the domain: images are clipped to their bounds, quantum states are
renormalised onto the unit sphere (Lu et al.'s projection), unbounded features are left alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch


@dataclass(frozen=True)
class Domain:
    """Where a dataset's inputs live.

    ``kind`` is ``"box"`` (clip to ``[low, high]``), ``"sphere"`` (each example is a unit vector, e.g. a
    quantum state's amplitudes) or ``"unbounded"`` (real features with no constraint).
    """

    kind: Literal["box", "sphere", "unbounded"]
    low: float | None = None
    high: float | None = None

    def __post_init__(self) -> None:
        if self.kind == "box" and (self.low is None or self.high is None or self.low >= self.high):
            raise ValueError("a box domain needs low < high")

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``x`` (a batch) back into the domain."""
        if self.kind == "box":
            return x.clamp(self.low, self.high)
        if self.kind == "sphere":
            flat = x.reshape(x.shape[0], -1)
            norm = flat.norm(dim=1, keepdim=True).clamp_min(torch.finfo(flat.dtype).tiny)
            return (flat / norm).reshape(x.shape)
        return x

    def contains(self, x: torch.Tensor, atol: float = 1e-6) -> bool:
        """Whether every example of ``x`` lies in the domain (to ``atol``)."""
        if x.numel() == 0:
            return True
        if not torch.isfinite(x).all():
            return False
        if self.kind == "box":
            low, high = torch.aminmax(x)
            return bool(low >= self.low - atol and high <= self.high + atol)
        if self.kind == "sphere":
            norms = x.reshape(x.shape[0], -1).norm(dim=1)
            return bool(((norms - 1).abs() <= atol).all())
        return True

    def within_ball(self, adv: torch.Tensor, x: torch.Tensor, epsilon: float, atol: float = 1e-6) -> bool:
        """Whether every ``adv`` lies in the threat set of radius ``epsilon`` (L-inf) around ``x``.

        On a box or unbounded domain that is the ball itself. On the sphere it is the renormalised ball,
        {v / |v| : |v - x|_inf <= epsilon}: the seed paper's attacks (its eq. 3, after Lu et al.) step in
        the ambient space and project back onto the normalised wave functions, so a point may lie up to a
        few epsilon from ``x`` after the renormalisation and still be a legal attack; what is checked is
        that some positive rescaling of it is within epsilon of ``x``.
        """
        if len(x) == 0:
            return True
        radius = epsilon + atol
        if self.kind != "sphere":
            return bool((adv - x).abs().max() <= radius)
        a = adv.reshape(len(adv), -1).double()
        c = x.reshape(len(x), -1).double()
        # |t a_i - c_i| <= r for every i: an interval of t per coordinate (all t, or none, where a_i == 0)
        zero = a.abs() <= torch.finfo(torch.float64).tiny
        safe = torch.where(zero, torch.ones_like(a), a)
        ends = torch.stack(((c - radius) / safe, (c + radius) / safe))
        low = torch.where(zero, torch.full_like(a, -torch.inf), ends.min(0).values).max(1).values
        high = torch.where(zero, torch.full_like(a, torch.inf), ends.max(0).values).min(1).values
        zero_ok = torch.where(zero, c.abs() <= radius, torch.ones_like(zero)).all(1)
        return bool((zero_ok & (high > 0) & (low <= high)).all())

    @property
    def clip_values(self) -> tuple[float, float] | None:
        """Bounds in the form ART's estimators take, or None when the domain is not a box."""
        return (self.low, self.high) if self.kind == "box" else None

    def to_dict(self) -> dict:
        """JSON-ready form for results and provenance."""
        return {"kind": self.kind, "low": self.low, "high": self.high}
