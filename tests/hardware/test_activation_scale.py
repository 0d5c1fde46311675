"""What an activation is scaled by before its read-back: the example's largest value, or its channel's."""

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
