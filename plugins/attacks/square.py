"""``square``: the Square Attack (Andriushchenko et al. 2020), a score-based L-inf random search, no gradient.

It is one of the suite's obfuscation checks: a defense that only hides its gradient falls to it.

Image-shaped inputs large enough for ART's square windows (at least 4x4, and larger than the first
window) go to ART's ``SquareAttack``; single-channel images and square-length vectors are viewed as
``(1, H, W)`` images. ART's version needs images (its window must fit strictly inside the image, so a
``1 x d`` view fails), so every other input shape (moons' 2 features, short or non-square vectors, tiny
images) runs the same random search written here over coordinates instead of windows (version 2; version
1 skipped them, and a gradient-masking defense on moons went unseen). It follows the paper's L-inf
schedule and query budget: a random vertex of the ball (``x +- eps`` per coordinate) to start, then
``max_iter`` proposals, each re-drawing the sign of a random block of ``round(p * d)`` coordinates (at
least one, and at least one sign flipped), with ``p`` halved on ART's iteration schedule from ``p_init``;
a proposal is kept when it lowers the margin ``z_y - max_{j != y} z_j``. Coordinates of a vector have no
spatial neighbourhood, so a block is a random subset and each coordinate draws its own sign (a square
window gets one sign per channel).

On a stochastic model (version 2) one forward's margin is noise, so both paths score the current point
and each proposal by the margin averaged over ``n_eot`` forwards, the current point re-scored with every
proposal (as ART re-scores it), and every example is attacked for the whole budget (no example is dropped
as "fooled" on one noisy forward). Deterministic models on images keep ART's behaviour unchanged.

Under a shot readout (the QNN track's version 3) a deterministic quantum classifier whose exact argmax has
just flipped is still right in about half of its 50-shot readouts, so stopping there leaves the expected
accuracy the board measures far above zero. Wherever the deployed prediction is random
(:func:`qbench.prediction_is_random`) every example is attacked for the whole budget, as on a stochastic
model (the margin is scored once per point there: the forward is deterministic).

A box is needed for ART, so quantum states get the [-1, 1] box there; every candidate of the vector
search is projected into the domain (clipped to a box, renormalised onto the sphere) before it is scored.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np
import torch
from art.attacks.evasion import SquareAttack

import qbench
from qbench import Attack, is_stochastic, prediction_is_random
from qbench.contract.art_bridge import EOTOption, EOTPyTorchClassifier, art_device_type, to_numpy_inputs

#: forward rows per call when scoring (bounds memory for large candidate sets), and input values per call
#: (fewer rows of larger inputs)
MAX_ROWS = 1 << 16
MAX_VALUES = 1 << 24


def rows_per_call(example_shape: tuple[int, ...]) -> int:
    """How many input rows of ``example_shape`` one scoring forward takes."""
    return max(1, min(MAX_ROWS, MAX_VALUES // max(1, math.prod(example_shape))))


def margins(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, n_eot: int = 1) -> torch.Tensor:
    """Per example, ``z_y - max_{j != y} z_j`` of ``model(x)`` averaged over ``n_eot`` forwards (N,).

    Negative means misclassified. The samples are ``n_eot`` separate forwards (as in
    :class:`qbench.contract.art_bridge.EOTPyTorchClassifier`), so a model that draws its noise once per forward
    (weight read-back noise) gets a fresh draw for each, as does one that draws it per example.
    """
    out = []
    per_call = rows_per_call(tuple(x.shape[1:]))
    with torch.no_grad():
        for start in range(0, len(x), per_call):
            xb, yb = x[start:start + per_call], y[start:start + per_call]
            idx = yb.view(-1, 1)
            total = torch.zeros(len(xb), device=xb.device)
            for _ in range(n_eot):
                z = model(xb)
                total += (z.gather(1, idx).squeeze(1) - z.scatter(1, idx, float("-inf")).amax(1)).float()
            out.append(total / n_eot)
    return torch.cat(out) if out else torch.zeros(0, device=x.device)


def eot_samples(model: torch.nn.Module, ctx, n_eot: int | None) -> int:
    """Forwards per score: the option, else the run's ``n_eot`` on a stochastic model and 1 otherwise."""
    if n_eot is not None:
        return n_eot
    return ctx.n_eot if is_stochastic(model) else 1


class _AsImage(torch.nn.Module):
    """Presents a model that takes ``shape`` inputs as one that takes ``(1, H, W)`` images."""

    def __init__(self, inner: torch.nn.Module, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.inner = inner
        self.shape = shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.reshape(x.shape[0], *self.shape))


class _NoPredict(EOTPyTorchClassifier):
    """An ART classifier whose ``predict`` is never consulted (stochastic path: the criterion and the
    loss are qbench's), answering zeros instead of spending a forward."""

    def predict(self, x, batch_size: int = 128, training_mode: bool = False, **kwargs) -> np.ndarray:
        return np.zeros((len(x), self.nb_classes), dtype=np.float32)


def image_shape(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """The ``(C, H, W)`` view of an input shape used for the square windows."""
    if len(shape) == 3:
        return shape
    if len(shape) == 2:
        return (1, *shape)
    n = math.prod(shape)
    side = math.isqrt(n)
    return (1, side, side) if side * side == n else (1, 1, n)


def art_accepts(shape: tuple[int, ...], p_init: float) -> bool:
    """Whether ART's SquareAttack can run on ``shape``: its first window, of side
    ``round(sqrt(p_init * H * W))``, must fit strictly inside an image of at least 4x4."""
    view = image_shape(shape)
    first_side = round(math.sqrt(p_init * view[1] * view[2]))
    return p_init < 1 and min(view[1:]) >= 4 and first_side < min(view[1:])


def fraction_schedule(p_init: float, i_iter: int, max_iter: int) -> float:
    """The fraction of coordinates changed at iteration ``i_iter``: ART's (and the paper's) schedule."""
    intervals = [0.001, 0.005, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8]
    return p_init / 2 ** bisect.bisect_left(intervals, i_iter / max_iter)


@dataclass(frozen=True)
class SquareConfig(EOTOption):
    """Query budget and the initial fraction of pixels changed (ART's defaults otherwise); ``n_eot``
    forwards per score on a stochastic model (None: the run's ``--n-eot``)."""

    max_iter: int = 1000
    p_init: float = 0.8
    restarts: int = 1

    def validate(self) -> None:
        super().validate()
        if self.max_iter < 1 or self.restarts < 1 or not 0 < self.p_init <= 1:
            raise ValueError("max_iter and restarts must be >= 1, p_init in (0, 1]")


class Square(Attack):
    """Random square-shaped (or coordinate-block) updates kept when they lower the margin; gradient-free."""

    name = "square"
    description = "Square Attack, score-based and gradient-free, 1000 queries (ART; coordinate blocks on vectors)"
    version = "2"
    #: version 3 on the QNN track: the whole budget on every example under a shot readout (module docstring)
    track_versions = {"qnn": "3"}
    tracks = ("qnn", "mapped-dnn")
    threat = "gradient-free"
    Config = SquareConfig

    def generate(self, model, x, y, epsilon, ctx):
        if epsilon == 0:
            return x.clone()
        shape = tuple(x.shape[1:])
        n_eot = eot_samples(model, ctx, self.config.n_eot)
        stochastic = is_stochastic(model) or n_eot > 1
        # no example counts as fooled where the deployed prediction is random (a shot readout too)
        whole_budget = stochastic or prediction_is_random(model, ctx.shots)
        if art_accepts(shape, self.config.p_init):
            adv = self._art(model, x, y, epsilon, ctx, n_eot, whole_budget)
        else:
            adv = random_search(
                model, x, y, epsilon, ctx.data.domain, rng=ctx.rng, n_eot=n_eot, stochastic=stochastic,
                whole_budget=whole_budget, max_iter=self.config.max_iter, p_init=self.config.p_init,
                restarts=self.config.restarts,
            )
        return ctx.data.domain.project(adv)

    def _art(self, model, x, y, epsilon, ctx, n_eot, whole_budget):
        data = ctx.data
        shape = tuple(x.shape[1:])
        view = image_shape(shape)
        if data.domain.kind == "box":
            bounds = (data.domain.low, data.domain.high)
        elif data.domain.kind == "sphere":
            bounds = (-1.0, 1.0)
        else:
            bounds = (-np.inf, np.inf)
        image_model = _AsImage(model, shape)
        kwargs = {}
        cls = EOTPyTorchClassifier
        if whole_budget:
            # the margin of n_eot forwards, and no example counted as fooled (ART would drop it for good)
            cls = _NoPredict
            kwargs["loss"] = lambda xs, ys: margins(
                image_model, torch.from_numpy(np.ascontiguousarray(xs)).to(x.device),
                torch.from_numpy(np.argmax(ys, axis=1)).to(x.device), n_eot,
            ).cpu().numpy()
            kwargs["adv_criterion"] = lambda y_pred, ys: np.zeros(len(ys), dtype=bool)
        classifier = cls(
            model=image_model, loss=torch.nn.CrossEntropyLoss(), input_shape=view,
            nb_classes=data.n_classes, clip_values=bounds, device_type=art_device_type(x.device),
        )
        attack = SquareAttack(
            classifier, norm=np.inf, eps=epsilon, max_iter=self.config.max_iter, p_init=self.config.p_init,
            nb_restarts=self.config.restarts, batch_size=len(x), verbose=False, **kwargs,
        )
        x_np, y_np = to_numpy_inputs(x, y, data.n_classes)
        adv = attack.generate(x_np.reshape(len(x), *view), y=y_np).reshape(x.shape)
        return torch.from_numpy(adv).to(x)


def random_search(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float, domain, *, rng: np.random.Generator,
    n_eot: int = 1, stochastic: bool = False, whole_budget: bool | None = None, max_iter: int = 1000,
    p_init: float = 0.8, restarts: int = 1,
) -> torch.Tensor:
    """The Square Attack's L-inf random search over coordinate blocks, for inputs of any shape.

    Written by hand because ART's SquareAttack only takes images whose side exceeds its window. Returns
    ``x_adv`` (projected into ``domain``) with the lowest margin found per example. ``stochastic``: the
    margin is noisy (re-score the current point with every proposal); ``whole_budget`` (default: as
    ``stochastic``): keep lowering the margin of an example after it turns negative.
    """
    if whole_budget is None:
        whole_budget = stochastic
    n = len(x)
    flat = x.reshape(n, -1)
    d = flat.shape[1]

    def points(delta: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        p = flat[rows] + delta
        if domain.kind == "box":
            p = p.clamp(domain.low, domain.high)
        return domain.project(p.reshape(len(rows), *x.shape[1:])).to(x)

    everyone = torch.arange(n, device=x.device)
    best_x, best_m = None, None
    for _ in range(restarts):
        delta = epsilon * torch.from_numpy(rng.choice([-1.0, 1.0], size=(n, d))).to(flat)
        cur = points(delta, everyone)
        cur_m = margins(model, cur, y, n_eot)
        for i_iter in range(max_iter):
            # a deterministic prediction is fooled once its margin is negative; a random one never "is"
            rows = everyone if whole_budget else everyone[cur_m >= 0]
            if len(rows) == 0:
                break
            k = len(rows)
            size = max(1, min(d, round(fraction_schedule(p_init, i_iter, max_iter) * d)))
            block = torch.from_numpy(np.argsort(rng.random((k, d)), axis=1)[:, :size]).to(flat.device)
            signs = torch.from_numpy(rng.choice([-1.0, 1.0], size=(k, size))).to(flat)
            new = delta[rows].clone()
            old = new.gather(1, block)
            signs[:, 0] = -torch.sign(old[:, 0])  # at least one coordinate changes
            new.scatter_(1, block, epsilon * signs)
            cand = points(new, rows)
            if stochastic:
                both = margins(model, torch.cat([cur[rows], cand]), torch.cat([y[rows], y[rows]]), n_eot)
                cur_m[rows], cand_m = both[:k], both[k:]
            else:
                cand_m = margins(model, cand, y[rows], n_eot)
            better = cand_m < cur_m[rows]
            kept = rows[better]
            delta[kept], cur[kept], cur_m[kept] = new[better], cand[better], cand_m[better]
        if best_x is None:
            best_x, best_m = cur, cur_m
        else:
            if stochastic:  # compare restarts on fresh samples, not on the winners' (optimistic) scores
                both = margins(model, torch.cat([best_x, cur]), torch.cat([y, y]), n_eot)
                best_m, cur_m = both[:n], both[n:]
            better = cur_m < best_m
            best_x[better], best_m[better] = cur[better], cur_m[better]
    return best_x


@qbench.hookimpl
def register_attacks(register) -> None:
    register(Square)
