"""The published entry schema: committed entries pass, entries that would mislead a reader fail, and the
schema's fields are documented in docs/entries.md."""

import copy
import json
import re
from pathlib import Path

import pytest

from qbench.publishing import entry as entry_mod
from qbench.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]
ENTRY = json.loads((ROOT / "leaderboards" / "mapped-dnn" / "mnist-lenet" / "intrinsic_noise.json").read_text())


def broken(change):
    entry = copy.deepcopy(ENTRY)
    change(entry)
    return entry


def test_a_committed_entry_is_valid():
    entry_mod.validate(ENTRY)


@pytest.mark.parametrize("change, where", [
    (lambda e: e["defense"].pop("distribution"), "defense"),
    (lambda e: e["defense"].update(distribution_version=""), "defense/distribution_version"),
    (lambda e: e["attacks"][0].update(robust=None), "attacks/0/robust"),
    (lambda e: e["attacks"][0].update(status="skipped"), "attacks/0"),  # skipped without a reason
    (lambda e: e["flags"].update(unreliable=True), "flags/reasons"),  # unreliable without a reason
    (lambda e: e["flags"].update(reasons=["looks odd"]), "flags/reasons"),  # a reason on a reliable entry
    (lambda e: e["provenance"]["data_files"].update({"x.gz": "not-a-hash"}), "provenance/data_files/x.gz"),
    (lambda e: e["clean"].update(mean=1.2), "clean/mean"),
])
def test_entries_that_would_mislead_are_rejected(change, where):
    with pytest.raises(UsageError, match=re.escape(f"at {where}:")):
        entry_mod.validate(broken(change))


def test_every_top_level_field_is_documented():
    doc = (ROOT / "docs" / "entries.md").read_text()
    schema = entry_mod.schema()
    missing = [name for name in schema["properties"] if f"`{name}`" not in doc]
    assert not missing, f"docs/entries.md does not describe {missing}"
    assert "qbench/schemas/entry.schema.json" in doc
