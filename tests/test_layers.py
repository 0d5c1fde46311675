"""The core's layers: ``qbench.contract`` <- ``qbench.running`` <- ``qbench.publishing``, and no import cycles.

Every import statement of every module under ``qbench/`` counts (top-level, inside functions, and under
``TYPE_CHECKING``), so a cycle cannot hide behind a lazy import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "qbench"

# Which packages a module of each part may import (besides the shared top-level modules below).
ALLOWED = {
    "engine": {"engine"},
    "hardware": {"engine", "hardware"},
    "contract": {"engine", "hardware", "contract"},
    "running": {"engine", "hardware", "contract", "running"},
    "publishing": {"engine", "hardware", "contract", "running", "publishing"},
    "reproductions": {"engine", "hardware", "contract", "running", "publishing", "reproductions"},
}
SHARED = {"qbench", "qbench.errors", "qbench.hashing", "qbench.hookspecs"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, name: str) -> set[str]:
    """The qbench modules ``path`` imports (``from X import y`` counts ``X.y`` when that is a module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "qbench")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != "qbench":
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in MODULES else base)
    return {m for m in found if m in MODULES and m != name}


MODULES = {_module_name(p): p for p in ROOT.rglob("*.py")}
GRAPH = {name: _imports(path, name) for name, path in MODULES.items()}


def _part(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in ALLOWED) else None


def test_the_layers_are_packages_a_newcomer_sees():
    for layer in ("contract", "running", "publishing"):
        init = ROOT / layer / "__init__.py"
        assert init.is_file() and ast.get_docstring(ast.parse(init.read_text())), layer
    flat = sorted(p.stem for p in ROOT.glob("*.py"))
    assert flat == ["__init__", "cli", "commands", "errors", "hashing", "hookspecs", "plugins", "registry"], flat


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _part(n)))
def test_a_layer_imports_only_the_layers_below_it(name):
    allowed = ALLOWED[_part(name)]
    bad = sorted(m for m in GRAPH[name] if m not in SHARED and _part(m) not in allowed and not (
        _part(m) is None and m in {"qbench.registry", "qbench.plugins"} and _part(name) != "contract"))
    assert not bad, f"{name} imports {bad}, above its layer"


def test_no_module_imports_itself_back():
    """No cycle among qbench's modules; the package ``qbench`` (the public re-exports) is left out."""
    graph = {n: {m for m in deps if m != "qbench"} for n, deps in GRAPH.items() if n != "qbench"}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_checker_sees_lazy_and_type_checking_imports(tmp_path):
    """The check would fail on the cycles this layout removed (a test that can fail)."""
    mod = tmp_path / "m.py"
    mod.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from qbench.contract.context import Context\n"
                   "def f():\n    from qbench.running import executor\n")
    assert {"qbench.contract.context", "qbench.running.executor"} <= _imports(mod, "qbench.contract.m")
