"""Run a ``torch.nn.Module`` "on the backend" at torch speed, from a cached characterisation.

Never one Aer circuit per MAC: the characterisation (:mod:`qbench.hardware.characterisation`) gives, per
qubit (and per crosstalk pair and CNOT-pair count), the bias and spread of the read-back of an encoded
value on a grid of values. A value ``v`` in ``[-1, 1]`` on qubit ``q`` reads back as

    read-back = v + bias_q(v) + sd_q(v) * z,    z ~ N(0, 1),

with ``bias_q`` and ``sd_q`` linearly interpolated in ``v`` between grid points (the end segments extend
linearly, and a negative interpolated spread counts as 0). ``z`` comes from a ``torch.Generator`` if one
is given, else from torch's global generator. The Gaussian is the normal approximation of the binomial
shot noise (1024 shots by default), so a read-back can leave ``[-1, 1]`` by a few hundredths; it is not
clipped, which keeps its gradient.

:func:`map_to_hardware` applies this to every mapped layer of a model (see :mod:`qbench.hardware.mapping`
for which value goes to which qubit):

- weights: each layer's weight tensor is scaled into ``[-1, 1]`` by its max-abs ``s``, read back, and
  scaled back (``w' = s * readback(w / s)``); one draw per forward, shared by the examples of the batch;
- activations: each example's layer output is scaled by its own max-abs and read back likewise, with a
  fresh draw per element.

The noise is additive and the interpolation piecewise linear, so the mapped model is differentiable
w.r.t. inputs and weights (attacks use the exact gradient of the sampled forward; EOT averages them).
"""

from __future__ import annotations

import copy
import logging
import math
import os
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from qbench.errors import UsageError
from qbench.hardware.characterisation import Characterisation
from qbench.hardware.mapping import mapped_layers, weight_offsets

if TYPE_CHECKING:
    from qbench.hardware.crosstalk import CrosstalkPlan

_TINY = 1e-12
log = logging.getLogger("qbench.hardware")


class ReadoutNoise(torch.nn.Module):
    """The characterised read-back error as a table of piecewise-linear curves, one *row* per channel.

    Rows ``0 .. Q-1`` are the intrinsic curves of ``characterisation.qubits`` in order; then one row per
    (crosstalk pair, CNOT-pair count), see :meth:`crosstalk_row`.
    """

    def __init__(self, characterisation: Characterisation) -> None:
        super().__init__()
        c = characterisation
        self.qubits: tuple[int, ...] = c.qubits
        self.pairs = c.pairs
        self.ks = c.ks
        bias = torch.as_tensor(c.intrinsic_bias, dtype=torch.float64)
        sd = torch.as_tensor(c.intrinsic_sd, dtype=torch.float64)
        if c.pairs and c.ks:
            g = len(c.grid)
            bias = torch.cat([bias, torch.as_tensor(c.crosstalk_bias, dtype=torch.float64).reshape(-1, g)])
            sd = torch.cat([sd, torch.as_tensor(c.crosstalk_sd, dtype=torch.float64).reshape(-1, g)])
        grid = torch.as_tensor(c.grid, dtype=torch.float64)
        dx = grid[1:] - grid[:-1]

        def segments(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            slope = (y[:, 1:] - y[:, :-1]) / dx
            return y[:, :-1] - slope * grid[:-1], slope

        bias_a, bias_b = segments(bias)
        sd_a, sd_b = segments(sd)
        # (rows, segments, 4): bias = c0 + c1 v and sd = c2 + c3 v on each grid segment
        self.register_buffer("coefficients", torch.stack([bias_a, bias_b, sd_a, sd_b], dim=-1).float())
        self.register_buffer("inner_grid", grid[1:-1].float().contiguous())
        self.n_segments = len(grid) - 1
        # an evenly spaced grid (the default) finds a value's segment by arithmetic, several times faster
        self._even = bool(torch.allclose(dx, dx[0].expand_as(dx), rtol=1e-9, atol=1e-12))
        self._start = float(grid[0])
        self._inverse_step = float(1.0 / dx[0])

    @property
    def n_rows(self) -> int:
        """How many channels the table holds."""
        return self.coefficients.shape[0]

    def intrinsic_row(self, qubit: int) -> int:
        """The row of ``qubit``'s intrinsic curves."""
        return self.qubits.index(qubit)

    def crosstalk_row(self, qubit: int, neighbour: int, k: int) -> int:
        """The row of ``qubit`` with ``k`` CNOT pairs to ``neighbour`` (``k = 0`` is the intrinsic row)."""
        if k == 0:
            return self.intrinsic_row(qubit)
        for p, (target, other, _) in enumerate(self.pairs):
            if target == qubit and other == neighbour:
                return len(self.qubits) + p * len(self.ks) + self.ks.index(k)
        raise KeyError(f"the pair ({qubit}, {neighbour}) was not characterised")

    def _coefficients(self, values: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """The ``(..., 4)`` segment coefficients of ``values`` on channels ``rows``."""
        if self._even:
            segment = ((values.detach() - self._start) * self._inverse_step).floor_().clamp_(0, self.n_segments - 1)
            segment = segment.long()
        else:
            segment = torch.bucketize(values.detach(), self.inner_grid.to(values.dtype))
        index = ((rows * self.n_segments).expand(values.shape) + segment).reshape(-1)
        return self.coefficients.to(values.dtype).reshape(-1, 4).index_select(0, index).reshape(*values.shape, 4)

    def bias_sd(self, values: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Interpolated ``(bias, sd)`` of ``values`` on channels ``rows`` (broadcast to ``values``' shape)."""
        c = self._coefficients(values, rows)
        bias = c[..., 0] + c[..., 1] * values
        sd = (c[..., 2] + c[..., 3] * values).clamp_min(0.0)
        return bias, sd

    def forward(self, values: torch.Tensor, rows: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The read-back of ``values`` (in ``[-1, 1]``) encoded on channels ``rows``: one random draw.

        Large tensors on an evenly spaced grid go through one compiled loop (:func:`compiled_kernel`) and
        one autograd node that saves only the derivative (:class:`_FusedReadBack`): the same draw and the
        same forward, bit for bit, as :meth:`reference` (tested), at a third of its cost: the gather and
        the dozen elementwise nodes of the composed version are memory traffic, not arithmetic
        (benchmarks/mapped_attack_step.py). Everything else runs :meth:`reference`'s composition.
        """
        z = torch.randn(values.shape, generator=generator, dtype=values.dtype, device=values.device)
        kernel = compiled_kernel() if self._even and values.numel() >= compile_threshold() else None
        if kernel is None:
            return self._compose(values, rows, z)
        needs_slope = torch.is_grad_enabled() and values.requires_grad
        flat_values, flat_rows, flat_z = _as_rows(values.detach(), rows, z)
        with torch.no_grad():
            out, slope = kernel(flat_values, flat_rows, flat_z, self.coefficients.to(values.dtype).reshape(-1, 4),
                                self._start, self._inverse_step, self.n_segments, needs_slope)
        out = out.view(values.shape)
        if not needs_slope:
            return out
        return _FusedReadBack.apply(values, out, slope.view(values.shape))

    def reference(self, values: torch.Tensor, rows: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """:meth:`forward` composed of plain torch operations, each differentiated by autograd: the
        definition the compiled kernel is tested against, and the previous code path of the benchmark."""
        z = torch.randn(values.shape, generator=generator, dtype=values.dtype, device=values.device)
        return self._compose(values, rows, z)

    def _compose(self, values: torch.Tensor, rows: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        bias, sd = self.bias_sd(values, rows)
        return values + bias + sd * z


def _as_rows(values: torch.Tensor, rows: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``values`` and ``z`` as ``(B, N)`` and ``rows`` as ``(N,)`` (views where they can be), for the kernel.

    ``rows`` is broadcast against ``values`` over leading dimensions (an activation's channels for every
    example, or one row per weight). Every call then has the same ranks, so the compiled kernel is built
    for a few variants (gradient or not, a batch of one or more) instead of one per layer type and rank:
    torch.compile stops recompiling after 8 variants and runs the rest eagerly. Per element the arithmetic
    is the same, so the read-back is bit for bit that of the unflattened call.
    """
    lead = values.dim() - rows.dim()
    if lead < 0 or tuple(values.shape[lead:]) != tuple(rows.shape):
        rows = rows.expand(values.shape)
        lead = 0
    n = rows.numel()
    return values.reshape(-1, n), rows.reshape(n), z.reshape(-1, n)


def _segment_read_back(values: torch.Tensor, rows: torch.Tensor, z: torch.Tensor, table: torch.Tensor, start: float,
                       inverse_step: float, n_segments: int, slope: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(read-back, d read-back / d value)`` of ``values`` with draw ``z``: the body of the compiled kernel.

    The read-back in :meth:`ReadoutNoise._compose`'s order of operations (so bit-identical to it); the
    derivative, if ``slope``, is ``1 + c1 + c3 z`` where the interpolated spread is positive, ``1 + c1``
    where it is clamped to 0.
    """
    segment = ((values - start) * inverse_step).floor().clamp(0, n_segments - 1).long()
    index = rows * n_segments + segment
    c0, c1, c2, c3 = table[index, 0], table[index, 1], table[index, 2], table[index, 3]
    raw_sd = c2 + c3 * values
    out = values + (c0 + c1 * values) + raw_sd.clamp_min(0.0) * z
    if not slope:
        return out, None
    return out, torch.where(raw_sd > 0, c3 * z, 0.0) + c1 + 1.0


_COMPILED: dict[str, object] = {}


def compile_threshold() -> float:
    """Read-backs of at least this many values use the compiled kernel.

    ``QBENCH_COMPILE``: ``0`` never compiles, ``1`` compiles every size; unset, tensors of 200,000 values
    and more (a batch of CNN activations; compiling costs ~20 s once per process, which small models and
    the test suite would not earn back).
    """
    setting = os.environ.get("QBENCH_COMPILE", "").strip()
    if setting == "0":
        return math.inf
    if setting == "1":
        return 0
    return 200_000


def compiled_kernel():
    """:func:`_segment_read_back` compiled by ``torch.compile`` (once per process), or None where it cannot
    be (no C++ compiler): then the eager composition runs, with one warning."""
    if "kernel" not in _COMPILED:
        try:
            kernel = torch.compile(_segment_read_back, dynamic=True)
            # Each variant (gradient or not, a batch of one or more, float32 or float64, and guards of
            # torch's own) is compiled once per process in well under a second; past torch's default of 8
            # variants per function it would run the rest eagerly, at about half the speed.
            dynamo_config = torch._dynamo.config
            dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, 32)
            # a probe shaped like a real call (distinct tensors, a batch of 2, a table of 6 rows), under
            # no_grad as every call is: it compiles the common variant instead of one never used again
            with torch.no_grad():
                kernel(torch.zeros(2, 3), torch.zeros(3, dtype=torch.long), torch.ones(2, 3), torch.zeros(6, 4),
                       -1.0, 1.0, 2, True)
            _COMPILED["kernel"] = kernel
        except Exception as exc:  # noqa: BLE001 - a missing toolchain must not stop a run, only slow it
            log.warning("the read-back kernel could not be compiled (%s: %s); running it eagerly",
                        type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
            _COMPILED["kernel"] = None
    return _COMPILED["kernel"]


class _FusedReadBack(torch.autograd.Function):
    """The read-back as one autograd node: its output is computed outside, only its derivative is saved."""

    @staticmethod
    def forward(ctx, values: torch.Tensor, out: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:  # noqa: D102
        ctx.save_for_backward(slope)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # noqa: D102
        (slope,) = ctx.saved_tensors
        return grad * slope, None, None


def perturb(values: torch.Tensor, qubits: torch.Tensor | int, characterisation: Characterisation,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """The read-back of ``values`` (in ``[-1, 1]``) encoded on physical ``qubits`` (broadcast), intrinsic noise.

    A convenience for one-off use; a model should use :func:`map_to_hardware`, which builds the table once.
    """
    noise = ReadoutNoise(characterisation)
    qubits = torch.as_tensor(qubits, dtype=torch.long)
    lookup = torch.full((characterisation.n_qubits,), -1, dtype=torch.long)
    lookup[list(noise.qubits)] = torch.arange(len(noise.qubits))
    inside = (qubits >= 0) & (qubits < characterisation.n_qubits)
    rows = lookup[qubits.clamp(0, characterisation.n_qubits - 1)]
    if not inside.all() or (rows < 0).any():
        raise KeyError(f"only qubits {list(noise.qubits)} were characterised")
    return noise(values, rows.expand(values.shape), generator)


class _RandomSource:
    """The generator shared by all layers of one mapped model (None = torch's global generator)."""

    def __init__(self, generator: torch.Generator | None) -> None:
        self.generator = generator


class MappedLayer(torch.nn.Module):
    """A ``Conv*d``/``Linear`` layer whose weights and outputs go through the noisy read-back."""

    stochastic = True

    def __init__(self, layer: torch.nn.Module, noise: ReadoutNoise, weight_rows: torch.Tensor | None,
                 activations: bool, source: _RandomSource, activation_scale: str = "example",
                 weight_scale: str = "layer") -> None:
        super().__init__()
        self.layer = layer
        self.noise = noise
        self.activations = activations
        self.activation_scale = activation_scale
        self.weight_scale = weight_scale
        self._source = source
        if weight_rows is not None:
            self.register_buffer("weight_rows", weight_rows)
        else:
            self.weight_rows = None
        self._activation_rows: dict[tuple[int, ...], torch.Tensor] = {}

    def _rows_for(self, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        rows = self._activation_rows.get(shape)
        if rows is None or rows.device != device:
            n = len(self.noise.qubits)
            numel = 1
            for size in shape:
                numel *= size
            rows = (torch.arange(numel, device=device) % n).reshape(shape)
            self._activation_rows[shape] = rows
        return rows

    def _weight(self) -> torch.Tensor:
        weight = self.layer.weight
        if self.weight_rows is None:
            return weight
        if self.weight_scale == "channel":
            # per output channel: a filter of small weights is no longer read against the layer's largest
            scale = weight.abs().amax(dim=tuple(range(1, weight.dim())), keepdim=True).clamp_min(_TINY)
        else:
            scale = weight.abs().max().clamp_min(_TINY)
        return scale * self.noise(weight / scale, self.weight_rows, self._source.generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The layer's output computed with read-back weights, itself read back per example."""
        weight = self._weight()
        if isinstance(self.layer, torch.nn.Linear):
            out = F.linear(x, weight, self.layer.bias)
        else:
            out = self.layer._conv_forward(x, weight, self.layer.bias)
        if not self.activations:
            return out
        if self.activation_scale == "channel" and out.dim() > 2:
            # per (example, channel): a channel of small activations is no longer read against the layer's
            # largest value
            scale = out.abs().amax(dim=tuple(range(2, out.dim())), keepdim=True).clamp_min(_TINY)
        else:
            batch_shape = (out.shape[0],) + (1,) * (out.dim() - 1)
            scale = out.reshape(out.shape[0], -1).abs().amax(dim=1).clamp_min(_TINY).reshape(batch_shape)
        rows = self._rows_for(tuple(out.shape[1:]), out.device)
        return scale * self.noise(out / scale, rows, self._source.generator)

    def extra_repr(self) -> str:
        """Which values go through the read-back (shown when the module is printed)."""
        return (f"weights={self.weight_rows is not None}, activations={self.activations}, "
                f"activation_scale={self.activation_scale}, weight_scale={self.weight_scale}")


class MappedModel(torch.nn.Module):
    """A copy of a model whose mapped layers run through the backend's noise; its forward is random.

    ``plan`` is the crosstalk placement used (None without crosstalk); ``generator`` (settable) is the
    ``torch.Generator`` all noise is drawn from (None = torch's global generator).
    """

    stochastic = True

    def __init__(self, model: torch.nn.Module, noise: ReadoutNoise, plan: "CrosstalkPlan | None",
                 source: _RandomSource) -> None:
        super().__init__()
        self.model = model
        self.noise = noise
        self.plan = plan
        self._source = source
        self.stochastic = True

    @property
    def generator(self) -> torch.Generator | None:
        """The generator the noise is drawn from."""
        return self._source.generator

    @generator.setter
    def generator(self, generator: torch.Generator | None) -> None:
        self._source.generator = generator

    def forward(self, *args, **kwargs):
        """The wrapped model's forward, with every mapped layer noisy."""
        return self.model(*args, **kwargs)


def map_to_hardware(
    model: torch.nn.Module,
    characterisation: Characterisation,
    weights: bool = True,
    activations: bool = True,
    crosstalk: "CrosstalkPlan | None" = None,
    generator: torch.Generator | None = None,
    activation_scale: str = "example",
    weight_scale: str = "layer",
) -> MappedModel:
    """A copy of ``model`` executed "on the backend" of ``characterisation`` (see the module docstring).

    ``weights`` / ``activations``: which values go through the read-back. ``crosstalk``: a placement from
    :func:`qbench.hardware.place_crosstalk` for this model; its weights use the crosstalk curves of their
    ``(qubit, neighbour, k)`` instead of the intrinsic ones. ``generator``: where the noise comes from.
    ``activation_scale``: what an activation is scaled by before its read-back, ``example`` (the largest
    |value| of the example's whole layer output, the module docstring's mapping) or ``channel`` (of its
    channel, for convolution outputs; dense layers keep the example's). ``weight_scale``: what a weight is
    scaled by, ``layer`` (the layer's largest |weight|, the module docstring's mapping) or ``channel`` (its
    output channel's, i.e. its filter's or its output unit's). ``model`` itself is left
    unchanged. The result has ``stochastic = True``.
    """
    if activation_scale not in ("example", "channel"):
        raise UsageError(f"activation_scale must be 'example' or 'channel', not {activation_scale!r}")
    if weight_scale not in ("layer", "channel"):
        raise UsageError(f"weight_scale must be 'layer' or 'channel', not {weight_scale!r}")
    copied = copy.deepcopy(model)
    layers = mapped_layers(copied)
    if not layers:
        raise UsageError(f"{type(model).__name__} has no Conv/Linear layer to map onto qubits")
    noise = ReadoutNoise(characterisation)
    source = _RandomSource(generator)
    n = len(noise.qubits)
    offsets = weight_offsets(copied)
    if crosstalk is not None:
        crosstalk.check_matches(offsets, characterisation)
    for name, layer in layers:
        rows = None
        if weights:
            offset, numel = offsets[name]
            rows = torch.arange(offset, offset + numel) % n
            if crosstalk is not None and name in crosstalk.targets and len(crosstalk.targets[name]):
                targets = crosstalk.targets[name]
                qubits = torch.as_tensor(noise.qubits)[(targets + offset) % n]
                rows[targets] = torch.as_tensor([
                    noise.crosstalk_row(int(q), int(m), crosstalk.k)
                    for q, m in zip(qubits.tolist(), crosstalk.neighbours[name].tolist())
                ], dtype=torch.long)
            rows = rows.reshape(layer.weight.shape)
        wrapped = MappedLayer(layer, noise, rows, activations, source, activation_scale, weight_scale)
        if not name:  # the model is itself a single Conv/Linear layer
            copied = wrapped
            continue
        parent_name, _, child = name.rpartition(".")
        setattr(copied.get_submodule(parent_name) if parent_name else copied, child, wrapped)
    return MappedModel(copied, noise, crosstalk, source)
