"""A folder of JSON documents keyed by a hash of what produced them (characterisations of backends).

A document is written atomically (temporary file, then rename), so a killed run leaves either the old
file or the new one. A file that cannot be read, is not JSON, names another key, or does not parse is a
*miss*: it is logged and the caller recomputes and overwrites it. A cache never makes a run fail.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Callable, TypeVar

from qbench.hashing import config_hash

log = logging.getLogger("qbench.hardware")

T = TypeVar("T")


def cache_key(fields: dict[str, Any]) -> str:
    """The key of a document: a hash of the canonical JSON of ``fields`` (everything it depends on)."""
    return config_hash(fields)


class JsonCache:
    """JSON documents in ``folder``, one file per key, named ``<label>-<key>.json``."""

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)

    def path(self, key: str, label: str = "entry") -> Path:
        """The file that holds (or would hold) the document ``key``."""
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", label)
        return self.folder / f"{safe}-{key}.json"

    def load(self, key: str, parse: Callable[[dict[str, Any]], T], label: str = "entry") -> T | None:
        """The document ``key`` parsed by ``parse``, or None if it is missing or unusable (logged)."""
        path = self.path(key, label)
        if not path.exists():
            return None
        try:
            document = json.loads(path.read_text())
            if not isinstance(document, dict) or document.get("key") != key:
                raise ValueError("the file does not hold this key")
            return parse(document["value"])
        except Exception as exc:  # noqa: BLE001 - any unusable file is a miss, never a crash
            log.warning("ignoring unusable cache file %s (%s: %s); recomputing", path, type(exc).__name__, exc)
            return None

    def save(self, key: str, value: dict[str, Any], label: str = "entry") -> Path:
        """Write ``value`` (JSON-serialisable) as the document ``key``; returns the file written."""
        path = self.path(key, label)
        self.folder.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"key": key, "value": value}, indent=1, sort_keys=True)
        handle, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(handle, "w") as fh:
                fh.write(text)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path
