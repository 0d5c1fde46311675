"""The threat set on the unit sphere (quantum states, the Ising board) is the renormalised epsilon ball.

The seed paper's attacks step in the ambient space and project onto the normalised wave functions (its
eq. 3): a legal point can lie a few epsilon from x in L-inf after the renormalisation, so the runner checks
that some positive rescaling of it is within epsilon of x (``Domain.within_ball``), not the raw distance.
"""

from __future__ import annotations

import torch

from qbench.contract.domain import Domain
from qbench.contract.testing import tiny_split

SPHERE = Domain("sphere")


def _states(n: int = 64, d: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    return x / x.norm(dim=1, keepdim=True)


def test_every_renormalised_point_of_the_ball_is_in_the_set_though_further_than_epsilon():
    x, eps = _states(), 0.15
    g = torch.Generator().manual_seed(1)
    corners = x + eps * torch.sign(torch.rand(x.shape, generator=g) - 0.5)  # the ball's far corners
    inside = x + eps * (2 * torch.rand(x.shape, generator=g) - 1)
    for v in (corners, inside):
        adv = SPHERE.project(v)
        assert SPHERE.within_ball(adv, x, eps)
    # the renormalisation moved the corners well beyond epsilon in L-inf, and they are still legal
    assert float((SPHERE.project(corners) - x).abs().max()) > 1.3 * eps


def test_a_point_no_rescaling_brings_within_epsilon_is_refused():
    x, eps = _states(), 0.15
    beyond = x.clone()
    beyond[:, 0] += 3 * eps  # one coordinate 3 epsilon away: no t > 0 puts t * adv within eps of x
    beyond[:, 1] -= 3 * eps
    adv = SPHERE.project(beyond)
    refused = [not SPHERE.within_ball(adv[i:i + 1], x[i:i + 1], eps) for i in range(len(x))]
    assert all(refused)
    # the sign flipped state (the same physical state up to a global phase, but not a small perturbation)
    assert not SPHERE.within_ball(-x, x, eps)
    # one bad example in a batch is enough
    mixed = SPHERE.project(x + 0.5 * eps)
    mixed[3] = adv[3]
    assert not SPHERE.within_ball(mixed, x, eps)


def test_a_zero_amplitude_needs_its_reference_within_epsilon():
    x = torch.tensor([[0.6, 0.8, 0.0, 0.0]])
    assert SPHERE.within_ball(torch.tensor([[0.8, 0.6, 0.0, 0.0]]), x, 0.25)
    assert not SPHERE.within_ball(torch.tensor([[0.0, 1.0, 0.0, 0.0]]), x, 0.25)  # a_0 = 0 but x_0 = 0.6


def test_on_a_box_the_set_is_the_ball_itself():
    box = tiny_split().domain
    x = torch.full((4, 4), 0.5)
    assert box.within_ball(x + 0.1, x, 0.1, atol=1e-6)
    assert not box.within_ball(x + 0.11, x, 0.1, atol=1e-6)
