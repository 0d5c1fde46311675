"""The compiled read-back kernel against its definition, the composed torch operations (issue 17)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from qbench.hardware import ReadoutNoise, map_to_hardware
from qbench.hardware import noisy_mac

from test_hardware_mapping import small_cnn, synthetic


def curved() -> ReadoutNoise:
    """Bias and spread that vary per qubit and per segment; the spread is negative (clamped) near -1."""
    return ReadoutNoise(synthetic(
        grid=np.linspace(-1, 1, 9),
        bias=lambda q, v: 0.05 * (q + 1) * v ** 2 - 0.02 * v,
        sd=lambda q, v: 0.03 + 0.04 * v + 0.01 * q,
    ))


def draw(noise: ReadoutNoise, method, values: torch.Tensor, rows: torch.Tensor, seed: int, weights: torch.Tensor):
    """(read-back, gradient of a weighted sum of it w.r.t. the values) with a fresh generator."""
    values = values.clone().requires_grad_()
    out = method(values, rows, torch.Generator().manual_seed(seed))
    (grad,) = torch.autograd.grad((out * weights).sum(), values)
    return out.detach(), grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_kernel_matches_the_composition(monkeypatch, dtype):
    monkeypatch.setenv("QBENCH_COMPILE", "1")
    noise = curved()
    torch.manual_seed(3)
    values = (torch.rand(40, 3, 5, dtype=dtype) * 2.4 - 1.2)  # beyond both ends of the grid too
    rows = torch.randint(0, 3, (3, 5))
    weights = torch.randn(40, 3, 5, dtype=dtype)
    out, grad = draw(noise, noise, values, rows, 11, weights)
    ref_out, ref_grad = draw(noise, noise.reference, values, rows, 11, weights)
    assert noisy_mac.compiled_kernel() is not None
    assert torch.equal(out, ref_out)  # the same draw, the same arithmetic
    assert torch.allclose(grad, ref_grad, rtol=1e-6, atol=1e-6)
    # the spread was clamped somewhere, so the derivative there must lack the c3 * z term
    assert not torch.allclose(grad, torch.ones_like(grad))
    # no gradient needed: the same values, nothing saved
    with torch.no_grad():
        plain = noise(values, rows, torch.Generator().manual_seed(11))
    assert torch.equal(plain, ref_out)


def test_threshold_and_switch(monkeypatch):
    monkeypatch.delenv("QBENCH_COMPILE", raising=False)
    assert noisy_mac.compile_threshold() == 200_000
    monkeypatch.setenv("QBENCH_COMPILE", "0")
    assert noisy_mac.compile_threshold() == float("inf")
    monkeypatch.setenv("QBENCH_COMPILE", "1")
    assert noisy_mac.compile_threshold() == 0


def test_a_missing_compiler_falls_back_to_the_composition(monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("no C++ compiler found\nmore detail")

    monkeypatch.setattr(noisy_mac, "_COMPILED", {})
    monkeypatch.setattr(torch, "compile", broken)
    monkeypatch.setenv("QBENCH_COMPILE", "1")
    noise = curved()
    values = torch.linspace(-1, 1, 30).reshape(3, 10)
    rows = torch.zeros(3, 10, dtype=torch.long)
    with caplog.at_level(logging.WARNING, logger="qbench.hardware"):
        out = noise(values, rows, torch.Generator().manual_seed(0))
    assert "could not be compiled (RuntimeError: no C++ compiler found)" in caplog.text
    assert torch.equal(out, noise.reference(values, rows, torch.Generator().manual_seed(0)))


def test_a_mapped_cnn_is_unchanged_by_the_kernel(monkeypatch):
    """Same generator seed: the compiled and the eager mapped CNN give the same logits and input gradient."""
    char = synthetic(grid=np.linspace(-1, 1, 5), sd=lambda q, v: 0.05 + 0.02 * v, bias=lambda q, v: 0.01 * v)
    x = torch.rand(8, 1, 8, 8)
    results = []
    for setting in ("0", "1"):
        monkeypatch.setenv("QBENCH_COMPILE", setting)
        mapped = map_to_hardware(small_cnn(), char, generator=torch.Generator().manual_seed(5))
        xi = x.clone().requires_grad_()
        logits = mapped(xi)
        (grad,) = torch.autograd.grad(logits.logsumexp(1).sum(), xi)
        results.append((logits.detach(), grad))
    assert torch.equal(results[0][0], results[1][0])
    assert torch.allclose(results[0][1], results[1][1], rtol=1e-5, atol=1e-7)


def test_every_layer_batch_size_and_mode_runs_compiled(monkeypatch):
    """Conv and linear layers, weights and activations, batches of 8, 3 and 1, with and without a gradient:
    the kernel is compiled for each variant it meets (torch stops at 8 variants per function by default and
    runs the rest eagerly, which a mapped AlexNet's cascade used to reach)."""
    from torch._dynamo.utils import counters

    monkeypatch.setenv("QBENCH_COMPILE", "1")
    char = synthetic(grid=np.linspace(-1, 1, 5), sd=lambda q, v: 0.05 + 0.02 * v, bias=lambda q, v: 0.01 * v)
    mapped = map_to_hardware(small_cnn(), char, generator=torch.Generator().manual_seed(5))
    before = dict(counters["frames"])
    for batch in (8, 3, 1):
        x = torch.rand(batch, 1, 8, 8, requires_grad=True)
        mapped(x).sum().backward()
        with torch.no_grad():
            mapped(x)
    total = counters["frames"]["total"] - before.get("total", 0)
    ok = counters["frames"]["ok"] - before.get("ok", 0)
    assert total == ok, f"{total - ok} of {total} calls needing a new variant were not compiled"
