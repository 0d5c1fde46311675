"""What a value is scaled by before its read-back: an activation by its example's largest value or its channel's,
a weight by its layer's largest |weight| or its output channel's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qbench.errors import UsageError
from qbench.hardware import map_to_hardware

from test_hardware_mapping import synthetic


class TwoChannels(torch.nn.Module):
    """A 1x1 convolution whose channel 0 is 100 times channel 1 (identity weights, no bias)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 2, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.eye(2).reshape(2, 2, 1, 1))

    def forward(self, x):
        return self.conv(x)


@pytest.mark.parametrize("scale,bound", [("example", None), ("channel", 0.2)])
def test_a_small_channel_keeps_its_precision_only_under_per_channel_scaling(scale, bound):
    char = synthetic(grid=np.linspace(-1, 1, 5), sd=lambda q, v: 0.02 + 0 * v)  # no bias, spread 0.02
    x = torch.ones(16, 2, 4, 4)
    x[:, 0] *= 100.0
    mapped = map_to_hardware(TwoChannels(), char, weights=False, generator=torch.Generator().manual_seed(0),
                             activation_scale=scale)
    with torch.no_grad():
        out = mapped(x)
    relative = ((out[:, 1] - x[:, 1]).abs() / x[:, 1]).mean().item()
    if bound is None:
        assert relative > 1.0  # read against 100: the spread (2 units) swamps the value 1
    else:
        assert relative < bound  # read against itself: a ~2% error
    assert ((out[:, 0] - x[:, 0]).abs() / x[:, 0]).mean().item() < 0.05  # the large channel is fine either way


def test_an_unknown_scale_is_a_usage_error():
    with pytest.raises(UsageError, match="activation_scale must be"):
        map_to_hardware(TwoChannels(), synthetic(), activation_scale="layer")


class TwoUnits(torch.nn.Module):
    """A dense layer whose output unit 0 has weight 100 and unit 1 weight 1 (diagonal, no bias)."""

    def __init__(self) -> None:
        super().__init__()
        self.dense = torch.nn.Linear(2, 2, bias=False)
        with torch.no_grad():
            self.dense.weight.copy_(torch.tensor([[100.0, 0.0], [0.0, 1.0]]))

    def forward(self, x):
        return self.dense(x)


@pytest.mark.parametrize("scale,bound", [("layer", None), ("channel", 0.1)])
def test_a_small_filter_keeps_its_precision_only_under_per_channel_weight_scaling(scale, bound):
    char = synthetic(grid=np.linspace(-1, 1, 5), sd=lambda q, v: 0.02 + 0 * v)
    mapped = map_to_hardware(TwoUnits(), char, activations=False, generator=torch.Generator().manual_seed(0),
                             weight_scale=scale)
    x = torch.eye(2)  # row i reads unit i's weight on input i
    with torch.no_grad():
        errors = torch.stack([(mapped(x).diagonal() - torch.tensor([100.0, 1.0])).abs() for _ in range(50)])
    small = errors[:, 1].mean().item()  # |error| of the weight 1
    if bound is None:
        assert small > 0.5  # read against 100: a spread of 2 units on a weight of 1
    else:
        assert small < bound  # read against itself: a ~2% error
    assert errors[:, 0].mean().item() / 100 < 0.05  # the large unit is fine either way


def test_an_unknown_weight_scale_is_a_usage_error():
    with pytest.raises(UsageError, match="weight_scale must be"):
        map_to_hardware(TwoUnits(), synthetic(), weight_scale="example")
