"""Provenance of data files: their SHA-256, keyed by the path relative to the data directory.

Hashing the MNIST and CIFAR files costs tens of milliseconds each; a dataset is loaded once per cell, so
digests are cached in-process per (path, mtime, size) and recomputed only when a file changes.
"""

from __future__ import annotations

from pathlib import Path

from qbench.hashing import file_sha256

_DIGESTS: dict[tuple[str, int, int], str] = {}


def cached_sha256(path: Path) -> str:
    """SHA-256 of ``path``'s bytes, computed once per (resolved path, mtime, size) in this process."""
    resolved = path.resolve()
    stat = resolved.stat()
    key = (str(resolved), stat.st_mtime_ns, stat.st_size)
    if key not in _DIGESTS:
        _DIGESTS[key] = file_sha256(resolved)
    return _DIGESTS[key]


def file_records(data_dir: Path, paths: list[Path]) -> dict[str, str]:
    """``{path relative to data_dir (POSIX form): sha256}`` for the files read (``DataSplit.files``)."""
    records = {}
    for path in paths:
        try:
            key = path.relative_to(data_dir).as_posix()
        except ValueError:
            key = path.as_posix()
        records[key] = cached_sha256(path)
    return records
