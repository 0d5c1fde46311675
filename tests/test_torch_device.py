"""``--torch-device``: nothing hard-codes a device, the CPU keeps every key, another device gets its own.

No CUDA device is at hand where this suite runs, so what can be checked here is checked here: the source
(every tensor read into numpy goes through ``.cpu()``, every generator names its device, every tensor made
from numpy outside a dataset moves to its neighbour's device, every cached tensor is cached per device, no
device literal), the keys, the CLI's refusals, and that the CPU path enters no device mode at all.
``benchmarks/device_check.py`` is the prepared script that runs a cell of each track on a GPU and compares
it with the CPU, for the minutes a GPU machine is lent.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pennylane as qml
import pytest
import torch

from qbench.engine import gates
from qbench.errors import UsageError
from qbench.hashing import config_hash
from qbench.publishing.verify import verify
from qbench.registry import load_registry
from qbench.running.grid import board_plan, boards
from qbench.running.plan import seed_cells
from qbench.running.torch_device import computing_on, torch_device_name

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "qbench").rglob("*.py")) + sorted((ROOT / "plugins").rglob("*.py"))

# where a CPU tensor made from numpy is right by design: datasets load on the CPU (the core moves the split to
# the device), the plugin-test helpers run on the CPU, and ART's per-iteration projection is a numpy round trip
FROM_NUMPY_STAYS_ON_CPU = ("plugins/datasets/", "qbench/contract/testing.py", "qbench/contract/art_bridge.py")
# the plugin-test helpers build their tiny CPU data with CPU generators
CPU_GENERATORS = ("qbench/contract/testing.py",)


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def _method(call: ast.Call) -> str | None:
    return call.func.attr if isinstance(call.func, ast.Attribute) else None


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def _where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(ROOT)}:{node.lineno}"


def _audit() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {k: [] for k in ("numpy", "generator", "from_numpy", "literal", "cache")}
    for path in SOURCES:
        rel = str(path.relative_to(ROOT))
        tree = ast.parse(path.read_text())
        parents = _parents(tree)
        for call in _calls(tree):
            name = _method(call)
            receiver = call.func.value if isinstance(call.func, ast.Attribute) else None
            if name == "numpy" and not call.args and not (isinstance(receiver, ast.Call) and _method(receiver) == "cpu"):
                found["numpy"].append(_where(path, call))
            if name == "Generator" and isinstance(receiver, ast.Name) and receiver.id == "torch" \
                    and not any(k.arg == "device" for k in call.keywords) and not rel.startswith(CPU_GENERATORS):
                found["generator"].append(_where(path, call))
            if name == "from_numpy" and not rel.startswith(FROM_NUMPY_STAYS_ON_CPU):
                parent = parents.get(call)
                moved = isinstance(parent, ast.Attribute) and parent.attr == "to"
                if not moved:
                    found["from_numpy"].append(_where(path, call))
            if name == "cuda" and not call.args:
                found["literal"].append(_where(path, call))
            for keyword in call.keywords:
                if keyword.arg in ("device", "device_type") and isinstance(keyword.value, ast.Constant):
                    found["literal"].append(_where(path, call))
            if name == "device" and isinstance(receiver, ast.Name) and receiver.id == "torch" and call.args \
                    and isinstance(call.args[0], ast.Constant) and rel != "qbench/contract/context.py":
                found["literal"].append(_where(path, call))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.returns is not None and "Tensor" in ast.unparse(node.returns):
                cached = any("cache" in ast.unparse(d) for d in node.decorator_list)
                if cached and "device" not in {a.arg for a in node.args.args}:
                    found["cache"].append(_where(path, node))
    return found


AUDIT = _audit()


def test_every_tensor_read_into_numpy_goes_through_cpu():
    """``t.numpy()`` fails on a CUDA tensor; ``t.cpu().numpy()`` is the same (a no-op) on the CPU."""
    assert AUDIT["numpy"] == []


def test_every_generator_names_its_device():
    """torch draws with a generator of the tensor's device only."""
    assert AUDIT["generator"] == []


def test_tensors_made_from_numpy_move_to_the_computation():
    """``torch.from_numpy`` gives a CPU tensor: outside the data loaders it must be moved (``.to(x)``)."""
    assert AUDIT["from_numpy"] == []


def test_no_device_is_written_in_the_source():
    """No ``device="cpu"``, ``device_type="cpu"``, ``torch.device("cuda")`` or ``.cuda()``: the device is the run's."""
    assert AUDIT["literal"] == []


def test_cached_tensors_are_cached_per_device():
    """A cached tensor made on one device would be handed to a computation on another."""
    assert AUDIT["cache"] == []
    cpu = gates.constant_matrix(qml.CNOT, torch.complex64, "cpu")
    meta = gates.constant_matrix(qml.CNOT, torch.complex64, "meta")
    assert cpu.device.type == "cpu" and meta.device.type == "meta" and meta.shape == cpu.shape == (4, 4)
    with torch.device("meta"):
        assert gates.constant_matrix(qml.CNOT, torch.complex64) is meta  # the default device picks the cache entry


def test_the_audit_sees_what_it_forbids(tmp_path):
    """The checks above are not vacuous: each pattern they forbid is found in a made-up module."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import functools, torch\n"
        "def f(x):\n"
        "    g = torch.Generator()\n"
        "    y = torch.from_numpy(x) + 1\n"
        "    z = torch.zeros(3, device='cpu')\n"
        "    return y.numpy(), g, z, y.cuda()\n"
        "@functools.lru_cache\n"
        "def table(n) -> torch.Tensor:\n"
        "    return torch.arange(n)\n"
    )
    global SOURCES, ROOT
    saved = SOURCES, ROOT
    try:
        SOURCES, ROOT = [bad], tmp_path
        found = _audit()
    finally:
        SOURCES, ROOT = saved
    assert found == {"numpy": ["bad.py:6"], "generator": ["bad.py:3"], "from_numpy": ["bad.py:4"],
                     "literal": ["bad.py:5", "bad.py:6"], "cache": ["bad.py:8"]}


def test_the_cpu_path_enters_no_device_mode():
    """On the CPU the tasks run exactly the code they ran before the option (a device mode costs a dispatch
    per torch call); another device is torch's default device inside the block."""
    from torch.overrides import _get_current_function_mode_stack

    with computing_on("cpu") as device:
        assert device == torch.device("cpu") and _get_current_function_mode_stack() == []
    with computing_on("meta"):  # any non-CPU device takes the other branch; meta needs no hardware
        pass


def _ising_plan(device: str):
    registry = load_registry()
    board = boards("qnn", ["ising-qnn"])[0]
    return board_plan(registry, board, "none", [0], torch_device=device)


def test_the_cpu_keeps_every_key_and_another_device_gets_its_own():
    cpu, default, cuda = _ising_plan("cpu"), _ising_plan("cpu"), _ising_plan("cuda")
    assert default.torch_device == "cpu" and cpu.device_key() == {}
    assert "torch_device" not in cpu.training_spec(0)
    keys = lambda plan: [c.key for c in seed_cells(plan, 0).cells]  # noqa: E731
    assert keys(cpu) == keys(default)
    assert config_hash(cuda.training_spec(0)) != config_hash(cpu.training_spec(0))
    assert cuda.training_spec(0)["torch_device"] == "cuda"
    assert not set(keys(cuda)) & set(keys(cpu)) and len(keys(cuda)) == len(keys(cpu))


def test_a_device_torch_cannot_use_is_one_clear_line(monkeypatch):
    monkeypatch.delenv("QBENCH_TORCH_DEVICE", raising=False)
    assert torch_device_name(None) == "cpu" and torch_device_name("cpu") == "cpu"
    with pytest.raises(UsageError, match="not a torch device"):
        torch_device_name("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="sees no CUDA device"):
            torch_device_name("cuda")
    with pytest.raises(UsageError, match="cpu or cuda"):
        torch_device_name("meta")
    monkeypatch.setenv("QBENCH_TORCH_DEVICE", "gpu")
    with pytest.raises(UsageError, match=r"\$QBENCH_TORCH_DEVICE 'gpu'"):
        torch_device_name(None)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_the_cli_refuses_cuda_without_it_in_one_line(tmp_path):
    store = tmp_path / "s.sqlite"
    for argv, env in (
        (["evaluate", "--defense", "none", "--torch-device", "cuda", "--store", str(store)], {}),
        (["leaderboard", "run", "--track", "qnn", "--board", "ising-qnn", "--dry-run", "--store", str(store)],
         {"QBENCH_TORCH_DEVICE": "cuda:1"}),
    ):
        run = subprocess.run([sys.executable, "-m", "qbench.cli", *argv], capture_output=True, text=True,
                             env={**_env(), **env}, timeout=120)
        assert run.returncode == 2, run.stderr
        assert run.stderr.strip().count("\n") == 0 and "sees no CUDA device" in run.stderr
        assert "Traceback" not in run.stderr
    assert not store.exists()  # refused before the store was opened


def test_an_entry_computed_on_another_device_is_not_rerun_here():
    entry = {"protocol": {"torch_device": "cuda"}}
    if torch.cuda.is_available():
        pytest.skip("this machine has the device")
    with pytest.raises(UsageError, match="computed on cuda.*--recompute-only"):
        verify(load_registry(), entry, "board/defense.json", 1, None)


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "QBENCH_TORCH_DEVICE"}
