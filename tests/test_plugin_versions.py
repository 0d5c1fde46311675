"""A plugin edited without a new `version` reuses the results of its old code (cell keys hash name, version
and config): qbench warns about it in one line, from a hash of the plugin module's source that the store
records per (kind, name, version) in its `meta` table. The plugin is a real third-party package: a module
and its dist-info with a `qbench` entry point, on PYTHONPATH of the console script."""

import hashlib
import json
import os
import sqlite3
import textwrap

import pytest

from qbench.running.preflight import source_hash

PLUGIN = '''
import qbench


class Rounding(qbench.Defense):
    name = "edited_rounding"
    description = "rounds inputs at prediction time (a test plugin)"
    version = "{version}"
    tracks = ("qnn",)
    standard_training = True

    def predict(self, model, x, ctx):
        return super().predict(model, (x * {steps}).round() / {steps}, ctx)


@qbench.hookimpl
def register_defenses(register):
    register(Rounding)
'''
RUN = ["evaluate", "--defense", "edited_rounding", "--no-baseline", "--attack", "fgsm", "--seeds", "1", "--epochs", "2",
       "--n-test", "20"]


@pytest.fixture
def plugin(tmp_path):
    """Write the plugin (version, rounding steps); returns (writer, env, module path)."""
    site = tmp_path / "site"
    (site / "qbench_edited").mkdir(parents=True)
    info = site / "qbench_edited-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: qbench-edited\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[qbench]\nedited = qbench_edited\n")
    module = site / "qbench_edited" / "__init__.py"

    def write(version: str, steps: int) -> None:
        module.write_text(textwrap.dedent(PLUGIN.format(version=version, steps=steps)))

    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]), "PYTHONDONTWRITEBYTECODE": "1"}
    return write, env, module


def warnings_in(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("qbench: warning:")]


def test_editing_a_plugin_without_bumping_its_version_warns(cli, store_path, plugin):
    write, env, module = plugin
    write("1", 4)
    first = cli(*RUN, "--store", str(store_path), env=env)
    assert first.returncode == 0, first.stderr
    assert warnings_in(first.stderr) == []
    row = sqlite3.connect(store_path).execute(
        "SELECT value FROM meta WHERE key='plugin-code:defense:edited_rounding:1'").fetchone()
    assert json.loads(row[0]) == {"sha256": source_hash(module), "file": str(module)}
    assert source_hash(module) != hashlib.sha256(module.read_bytes()).hexdigest()  # the code, not the bytes

    # a comment, a docstring and where a name is imported from are not code changes: no warning
    module.write_text('"""A test plugin."""\n# rounding, reformatted\nimport os\n' + module.read_text())
    cosmetic = cli(*RUN, "--dry-run", "--store", str(store_path), env=env)
    assert cosmetic.returncode == 0 and warnings_in(cosmetic.stderr) == [], cosmetic.stderr

    write("1", 8)  # new behaviour, same version: every cell of it would be read back from the store
    second = cli(*RUN, "--store", str(store_path), env=env)
    assert second.returncode == 0, second.stderr
    assert warnings_in(second.stderr) == [
        f"qbench: warning: defense 'edited_rounding': its source ({module}) changed since this store first ran "
        "version '1', but its version did not; results cached under version '1' came from the old code: bump "
        "`version` to recompute them"
    ]
    assert "qbench: nothing to compute: all 3 cells are in the store" in second.stderr

    write("2", 8)  # bumped: no warning, and its cells (not the shared standard training) are computed again
    third = cli(*RUN, "--dry-run", "--store", str(store_path), env=env)
    assert third.returncode == 0, third.stderr
    assert warnings_in(third.stderr) == []
    assert "qbench: to compute: 0 trainings and 3 cells (0 of 3 already in the store)" in third.stderr
