"""Registry behaviour with real plugin objects registered next to the installed entry points."""

from dataclasses import dataclass

import pytest

import qbench
from qbench import Attack, Defense
from qbench.errors import PluginError, UsageError
from qbench.registry import load_registry


class GoodDefense(Defense):
    name = "test_good_defense"
    description = "a defense registered by a test plugin"
    version = "1"
    tracks = ("qnn",)


class ClashingDefense(Defense):
    name = "none"
    description = "clashes with the built-in none"
    version = "1"
    tracks = ("qnn",)


class GoodPlugin:
    @qbench.hookimpl
    def register_defenses(self, register):
        register(GoodDefense)


class ClashPlugin:
    @qbench.hookimpl
    def register_defenses(self, register):
        register(ClashingDefense)


class RaisingPlugin:
    """Registers an attack, then raises in another hook: the whole plugin is skipped."""

    @qbench.hookimpl
    def register_attacks(self, register):
        class Partial(Attack):
            name = "partial_attack"
            description = "should not survive"
            version = "1"
            tracks = ("qnn",)

        register(Partial)

    @qbench.hookimpl
    def register_defenses(self, register):
        raise RuntimeError("boom")


class NotAComponentPlugin:
    @qbench.hookimpl
    def register_models(self, register):
        register(object)


def test_builtins_load_through_entry_points():
    registry = load_registry()
    assert "none" in registry.names("defense")
    assert "fgsm" in registry.names("attack")
    entry = registry.entry("defense", "none")
    assert entry.distribution == "qbench" and entry.plugin == "none"


def test_extra_plugin_registers():
    registry = load_registry([("good", GoodPlugin())])
    assert registry.entry("defense", "test_good_defense").plugin == "good"


def test_name_clash_names_both_plugins():
    with pytest.raises(PluginError) as info:
        load_registry([("clashy", ClashPlugin())])
    message = str(info.value)
    assert "'none'" in message and "'clashy'" in message and "plugin 'none'" in message


def test_raising_plugin_is_reported_and_skipped_whole():
    registry = load_registry([("raiser", RaisingPlugin()), ("good", GoodPlugin())])
    assert "partial_attack" not in registry.names("attack")
    assert "test_good_defense" in registry.names("defense")
    messages = [p.message for p in registry.problems]
    assert any("'raiser'" in m and "boom" in m and "register_defenses" in m for m in messages)


def test_registering_a_non_component_is_reported():
    registry = load_registry([("bad", NotAComponentPlugin())])
    assert any("'bad'" in p.message and "not a qbench.Model" in p.message for p in registry.problems)


def test_did_you_mean():
    registry = load_registry()
    with pytest.raises(UsageError, match=r"unknown defense 'nonee'; did you mean 'none'\? \(qbench plugins lists all\)"):
        registry.get("defense", "nonee")
    with pytest.raises(UsageError, match=r"^unknown attack 'zzzz' \(qbench plugins lists all\)$"):
        registry.get("attack", "zzzz")


def test_track_support_is_checked():
    registry = load_registry([("good", GoodPlugin())])
    with pytest.raises(UsageError, match="does not support track 'mapped-dnn'"):
        registry.create("defense", "test_good_defense", {}, track="mapped-dnn")


def test_env_var_restricts_plugins(monkeypatch):
    monkeypatch.setenv("QBENCH_PLUGINS", "none,fgsm")
    registry = load_registry()
    assert registry.names("defense") == ["none"] and registry.names("attack") == ["fgsm"]
    assert registry.names("dataset") == [] and registry.names("model") == []
    monkeypatch.setenv("QBENCH_PLUGINS", "")
    assert list(load_registry().all()) == []


def test_import_failure_is_one_problem_not_a_crash(monkeypatch):
    from importlib.metadata import EntryPoint

    import qbench.plugins as plugins_mod

    broken = EntryPoint(name="broken", value="qbench_no_such_module_xyz", group="qbench")
    real = plugins_mod.entry_points
    monkeypatch.setattr(plugins_mod, "entry_points", lambda group: [*real(group=group), broken])
    registry = load_registry()
    assert "none" in registry.names("defense")
    assert any("'broken' failed to import" in p.message for p in registry.problems)
