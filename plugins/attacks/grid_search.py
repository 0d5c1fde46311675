"""``grid-search``: exhaustive search of the epsilon ball on low-dimensional inputs; no gradient, no luck.

On inputs of at most 4 coordinates (moons' 2 features, 1-2 qubit states) the L-inf ball around an
example is small enough to enumerate: ``points`` values per coordinate (``linspace(-eps, eps)``: the
corners, the centre when ``points`` is odd, and evenly spaced values between), 11^d points by default,
fewer per coordinate where ``points^d`` would exceed ``max_points`` (4 coordinates: 7^4 = 2401). Every
grid point is scored by the margin ``z_y - max_{j != y} z_j`` of the model's output (averaged over
``n_eot`` forwards on a stochastic model), and each example gets its lowest-margin point. Nothing about
the model is assumed but its forward, so a non-differentiable or randomised transform cannot hide an
adversarial example that lies on the grid; the clean point is on it, so the attack never does worse
than no attack (up to the noise of a stochastic model).

The domain: grid points are clipped to a box, and on a quantum-state domain (the unit sphere) they are
renormalised like every other attack's iterates (handled, not skipped: the renormalised grid still covers
the neighbourhood of the state). Inputs of more than 4 coordinates raise ``AttackSkipped``: the grid
grows as ``points^d``, and random search (``square``) and ``nes`` cover them.

Written by hand: ART has no exhaustive search of the perturbation ball.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

import qbench
from qbench import Attack, AttackSkipped
from qbench.contract.art_bridge import EOTOption
from qbench_plugins.attacks.square import MAX_ROWS, eot_samples, margins

#: the largest input (coordinates per example) the grid is enumerated for
MAX_DIMS = 4


@dataclass(frozen=True)
class GridSearchConfig(EOTOption):
    """``points`` values per coordinate (at most ``max_points`` grid points per example); ``n_eot``
    forwards per score on a stochastic model (None: the run's ``--n-eot``)."""

    points: int = 11
    max_points: int = 2401

    def validate(self) -> None:
        super().validate()
        if self.points < 2 or self.max_points < 2 ** MAX_DIMS:
            raise ValueError(f"points must be >= 2 and max_points >= {2 ** MAX_DIMS}")


def per_axis(points: int, max_points: int, d: int) -> int:
    """Values per coordinate: ``points``, or the largest count (odd when ``points`` is, so the centre
    stays on the grid) whose ``d``-th power fits in ``max_points``."""
    k = points
    while k > 2 and k ** d > max_points:
        k -= 2 if (points % 2 == 1 and k > 3) else 1
    return k


class GridSearch(Attack):
    """Scores every point of a grid over the epsilon ball and keeps the worst one (inputs of 1-4 features)."""

    name = "grid-search"
    description = "exhaustive grid over the L-inf ball (11^d points) on inputs of <= 4 features; gradient-free"
    version = "1"
    tracks = ("qnn", "mapped-dnn")
    threat = "gradient-free"
    iterative = None
    Config = GridSearchConfig

    def generate(self, model, x, y, epsilon, ctx):
        d = math.prod(x.shape[1:])
        if d > MAX_DIMS:
            raise AttackSkipped(
                f"grid-search enumerates the epsilon ball only on inputs of at most {MAX_DIMS} features; "
                f"inputs here have shape {tuple(x.shape[1:])} ({d} features)"
            )
        if epsilon == 0 or len(x) == 0:
            return x.clone()
        domain = ctx.data.domain
        n_eot = eot_samples(model, ctx, self.config.n_eot)
        k = per_axis(self.config.points, self.config.max_points, d)
        axis = torch.linspace(-epsilon, epsilon, k, dtype=x.dtype, device=x.device)
        offsets = torch.cartesian_prod(*([axis] * d)).reshape(-1, d)  # (G, d)
        g = len(offsets)
        flat = x.reshape(len(x), -1)
        per_call = max(1, MAX_ROWS // g)
        adv = torch.empty_like(flat)
        for start in range(0, len(x), per_call):
            xb, yb = flat[start:start + per_call], y[start:start + per_call]
            cand = (xb[:, None, :] + offsets[None]).reshape(-1, d)  # (B * G, d), example-major
            if domain.kind == "box":
                cand = cand.clamp(domain.low, domain.high)
            cand = domain.project(cand.reshape(-1, *x.shape[1:])).reshape(-1, d)
            scores = margins(model, cand.reshape(-1, *x.shape[1:]), yb.repeat_interleave(g), n_eot)
            worst = scores.reshape(len(xb), g).argmin(dim=1)
            adv[start:start + per_call] = cand.reshape(len(xb), g, d)[torch.arange(len(xb), device=x.device), worst]
        return domain.project(adv.reshape(x.shape))


@qbench.hookimpl
def register_attacks(register) -> None:
    register(GridSearch)
