"""Stable keys for cells and trainings: a hash of the canonical JSON of the full configuration."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace, so equal configurations give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def config_hash(value: Any) -> str:
    """SHA-256 (hex, 32 characters) of the canonical JSON of ``value``."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:32]


def file_sha256(path: Path | str) -> str:
    """SHA-256 of a file's bytes (data-file provenance)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
