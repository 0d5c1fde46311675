"""pyproject lists every package by hand (plugins/ installs as qbench_plugins): check none is missing."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = set()
    for top, name in (("qbench", "qbench"), ("plugins", "qbench_plugins")):
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top)
            found.add(".".join([name, *rel.parts]))
    assert found == listed


def test_every_plugin_module_has_an_entry_point():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    targets = set(project["entry-points"]["qbench"].values())
    modules = set()
    for path in (ROOT / "plugins").rglob("*.py"):
        text = path.read_text()
        if "@qbench.hookimpl" in text:
            rel = path.relative_to(ROOT / "plugins").with_suffix("")
            modules.add(".".join(["qbench_plugins", *rel.parts]))
    assert modules == targets, f"plugin modules without entry point: {modules - targets}; stale: {targets - modules}"
