from dataclasses import dataclass
from typing import Literal

import pytest

from qbench.contract.config import build_config, parse_assignments
from qbench.errors import ConfigError


@dataclass(frozen=True)
class Cfg:
    steps: int = 3
    step_size: float = 0.05
    mode: Literal["train", "test", "both"] = "both"
    combined: bool = True
    layers: tuple[int, ...] = (1, 2)
    limit: int | None = None

    def validate(self):
        if self.steps < 1:
            raise ValueError("steps must be >= 1")


def test_defaults_and_string_coercion():
    c = build_config(Cfg, {"steps": "7", "step_size": "0.1", "mode": "test", "combined": "false", "layers": "3,4", "limit": "none"}, "attack x")
    assert (c.steps, c.step_size, c.mode, c.combined, c.layers, c.limit) == (7, 0.1, "test", False, (3, 4), None)
    assert build_config(Cfg, {}, "attack x") == Cfg()
    assert build_config(Cfg, {"limit": "5"}, "x").limit == 5


@pytest.mark.parametrize(
    "values, message",
    [
        ({"steps": "three"}, "steps must be an integer"),
        ({"step_size": "nan"}, "must be a number, not NaN"),
        ({"mode": "sometimes"}, "mode must be one of"),
        ({"combined": "maybe"}, "combined must be true or false"),
        ({"steps": "0"}, "steps must be >= 1"),
        ({"stepz": "1"}, "unknown option 'stepz'"),
    ],
)
def test_bad_values_name_the_option(values, message):
    with pytest.raises(ConfigError, match=message) as info:
        build_config(Cfg, values, "attack bim")
    assert str(info.value).startswith("attack bim:")


def test_parse_assignments():
    assert parse_assignments(["a=1", " b = x=y "], "--opt") == {"a": "1", "b": "x=y"}
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_assignments(["novalue"], "--opt")
