"""Every hook is documented (docstring + docs/plugins.md, signatures agreeing) and exercised by a plugin."""

import inspect
import re
from pathlib import Path

from qbench import hookspecs
from qbench.registry import HOOKS, load_registry

DOCS = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"


def hook_functions():
    return {
        name: fn for name, fn in vars(hookspecs).items()
        if callable(fn) and name.startswith("register_") and hasattr(fn, "qbench_spec")
    }


def test_every_hook_has_a_docstring():
    hooks = hook_functions()
    assert set(hooks) == set(HOOKS.values())
    for name, fn in hooks.items():
        assert fn.__doc__ and len(fn.__doc__.strip()) > 20, f"{name} has no docstring"


def test_docs_list_exactly_the_hooks_with_their_signatures():
    text = DOCS.read_text()
    block = text.split("<!-- hooks:")[1].split("<!-- /hooks -->")[0]
    documented = dict(re.findall(r"`(register_\w+)\(([^)]*)\)`", block))
    hooks = hook_functions()
    assert set(documented) == set(hooks)
    for name, fn in hooks.items():
        params = ", ".join(inspect.signature(fn).parameters)
        assert documented[name] == params, f"docs say {name}({documented[name]}), spec says {name}({params})"


def test_every_hook_is_implemented_by_an_installed_plugin():
    registry = load_registry()
    for kind, hook in HOOKS.items():
        impls = getattr(registry.plugins.manager.hook, hook).get_hookimpls()
        assert impls, f"no installed plugin implements {hook}"
        assert registry.names(kind), f"{hook} was called but nothing was registered"
