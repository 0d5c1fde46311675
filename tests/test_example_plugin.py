"""The example third-party plugin, installed for real with pip and used through the CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qbench.contract.testing import check_attack, check_defense

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "qbench-plugin-example"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """pip-install the example package into a private folder; return the env that makes it visible."""
    target = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(EXAMPLE)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert any(p.name.startswith("qbench_plugin_example-") for p in target.iterdir())
    return {"PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}


def test_plugin_appears_with_its_distribution(cli, installed):
    proc = cli("plugins", "--json", env=installed)
    assert proc.returncode == 0, proc.stderr
    items = {(c["kind"], c["name"]): c for c in json.loads(proc.stdout)["components"]}
    for key in [("defense", "input_rounding"), ("attack", "random_sign")]:
        assert items[key]["distribution"] == "qbench-plugin-example"
        assert items[key]["distribution_version"] == "0.1.0"
        assert items[key]["plugin"] == "example"
    assert items[("attack", "random_sign")]["threat"] == "gradient-free"


def test_plugin_evaluates_end_to_end(cli, installed, tmp_path):
    proc = cli(
        "evaluate", "--defense", "input_rounding", "--attack", "fgsm", "--attack", "random_sign",
        "--epochs", "3", "--seeds", "1", "--n-test", "60", "--json", "--store", str(tmp_path / "s.sqlite"),
        env=installed,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    defended = report["defense"]
    assert defended["defense"]["name"] == "input_rounding"
    assert defended["training"]["defense_info"] == [{"step": 0.25}]
    attacks = {r["attack"]: r for r in defended["attacks"]}
    assert set(attacks) == {"fgsm", "random_sign"} and all(r["status"] == "ok" for r in attacks.values())
    assert report["undefended"]["defense"]["name"] == "none"
    assert defended["worst_case"][0]["robust"]["mean"] <= min(r["robust"]["mean"] for r in attacks.values())


def test_plugin_filtered_out_by_env(cli, installed):
    proc = cli("plugins", "--json", env={**installed, "QBENCH_PLUGINS": "none,fgsm"})
    names = {c["name"] for c in json.loads(proc.stdout)["components"]}
    assert names == {"none", "fgsm"}


def test_contract_checks_pass_for_the_example():
    sys.path.insert(0, str(EXAMPLE))
    try:
        from qbench_plugin_example import InputRounding, RandomSign
    finally:
        sys.path.remove(str(EXAMPLE))
    model = check_defense(InputRounding)
    adv = check_attack(RandomSign, epsilon=0.2)
    assert adv.shape[1] == 4 and model is not None
