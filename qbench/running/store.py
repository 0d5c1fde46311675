"""The result store: one SQLite file (WAL) holding trained-model records and finished cells.

Every cell is committed as soon as it finishes, keyed by a hash of its full configuration and the qbench
version; ``INSERT OR IGNORE`` on that key means a re-run never duplicates a cell and a killed run loses at
most the cell it was computing. Trained weights live beside the database in ``<store>.artifacts/`` as
safetensors, written to a temporary name and renamed, so a half-written file is never taken for a result.
A training under way keeps its checkpoint there too (``checkpoints/<training key>.pt``,
:mod:`qbench.contract.checkpoint`), removed once its weights are stored.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from qbench.errors import StoreError

SCHEMA_VERSION = 1
#: the artifact subfolder of the checkpoints of trainings and cells under way
CHECKPOINTS = "checkpoints"
MARKER = "qbench-result-store"
SQLITE_HEADER = b"SQLite format 3\x00"

def checkpoint_path(artifacts: Path, key: str) -> Path:
    """Where the training ``key`` keeps its checkpoint in a store's artifact folder."""
    return Path(artifacts) / CHECKPOINTS / f"{key}.pt"


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trainings (
    key TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    seed INTEGER NOT NULL,
    weights TEXT NOT NULL,
    seconds REAL NOT NULL,
    info TEXT NOT NULL,
    qbench_version TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS cells (
    key TEXT PRIMARY KEY,
    train_key TEXT NOT NULL,
    spec TEXT NOT NULL,
    kind TEXT NOT NULL,
    attack TEXT,
    epsilon REAL,
    seed INTEGER NOT NULL,
    status TEXT NOT NULL,
    n INTEGER NOT NULL,
    n_correct INTEGER NOT NULL,
    accuracy REAL,
    correct BLOB,
    info TEXT NOT NULL,
    seconds REAL NOT NULL,
    error TEXT,
    qbench_version TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS cells_by_training ON cells (train_key);
"""


def default_store_path() -> Path:
    """``$QBENCH_STORE`` or ``results.sqlite`` in the user's cache directory."""
    env = os.environ.get("QBENCH_STORE")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("qbench")) / "results.sqlite"


@dataclass
class CellRecord:
    """One finished cell as stored."""

    key: str
    train_key: str
    spec: dict[str, Any]
    kind: str  # "clean" or "attack"
    attack: str | None
    epsilon: float | None
    seed: int
    status: str  # "ok", "skipped" or "failed"
    n: int
    n_correct: int
    accuracy: float | None
    #: per-example, per-draw correctness ``(n, 2 * draws)``: columns ``[:draws]`` are evaluation set A
    #: (selection), ``[draws:]`` set B (reporting); see :mod:`qbench.running.scoring`
    correct: np.ndarray | None
    info: dict[str, Any]
    seconds: float
    error: str | None = None
    qbench_version: str = ""


@dataclass
class TrainingRecord:
    """One trained model as stored (weights in the artifacts folder)."""

    key: str
    spec: dict[str, Any]
    seed: int
    weights: str
    seconds: float
    info: dict[str, Any]
    qbench_version: str = ""


#: the correctness blob of a scoring-v2 cell: magic, examples (8 bytes), draws (4 bytes), packed bits
_BITS_MAGIC = b"QB2\x00"


def same_weights(a: Path, b: Path) -> bool:
    """Whether two weights files hold the same tensors: identical bytes, or, where the files differ (e.g. in
    safetensors metadata), the same names, shapes, dtypes and values.

    One training key names one computation, but the same training run on two machines may round
    differently; a store that holds the other machine's weights must not take its cells (computed from
    those weights) as if they were its own.
    """
    if Path(a).read_bytes() == Path(b).read_bytes():
        return True
    try:
        from safetensors.torch import load_file

        left, right = load_file(str(a)), load_file(str(b))
    except Exception:  # noqa: BLE001 - not a safetensors file: the bytes decide
        return False
    return left.keys() == right.keys() and all(
        left[k].dtype == right[k].dtype and left[k].shape == right[k].shape and bool((left[k] == right[k]).all())
        for k in left)


def _pack(bits: np.ndarray | None) -> bytes | None:
    """Per-example, per-draw correctness ``(n, draws)`` as a compact blob (1-D arrays are one draw)."""
    if bits is None:
        return None
    bits = np.asarray(bits, dtype=bool)
    if bits.ndim == 1:
        bits = bits[:, None]
    n, m = bits.shape
    return _BITS_MAGIC + n.to_bytes(8, "little") + m.to_bytes(4, "little") + np.packbits(bits.ravel()).tobytes()


def _unpack(blob: bytes | None) -> np.ndarray | None:
    """The ``(n, draws)`` bool array of :func:`_pack` (a v1 blob, one bit per example, reads as one draw)."""
    if blob is None:
        return None
    if blob[:4] == _BITS_MAGIC:
        n = int.from_bytes(blob[4:12], "little")
        m = int.from_bytes(blob[12:16], "little")
        flat = np.unpackbits(np.frombuffer(blob[16:], dtype=np.uint8))[: n * m].astype(bool)
        return flat.reshape(n, m)
    n = int.from_bytes(blob[:8], "little")
    return np.unpackbits(np.frombuffer(blob[8:], dtype=np.uint8))[:n].astype(bool)[:, None]


class Store:
    """An open result store. Use :meth:`open`; it refuses (and leaves untouched) a file that is not one."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self.conn = conn

    @property
    def artifacts(self) -> Path:
        """The folder holding trained weights and other binary artifacts of this store."""
        return self.path.with_name(self.path.name + ".artifacts")

    @classmethod
    def open(cls, path: Path | str, create: bool = True) -> "Store":
        """Open (or, with ``create``, make) the store at ``path``."""
        path = Path(path).expanduser()
        exists = path.exists()
        if exists:
            if path.is_dir():
                raise StoreError(f"store path {path} is a directory, not a qbench store file")
            with open(path, "rb") as fh:
                head = fh.read(len(SQLITE_HEADER))
            if head and head != SQLITE_HEADER:
                raise StoreError(f"{path} is not a qbench store (not an SQLite file); left untouched")
        elif not create:
            raise StoreError(f"no qbench store at {path}")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(str(path), timeout=60, isolation_level=None)
            if exists and os.path.getsize(path) > 0:
                tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
                if "meta" not in tables:
                    conn.close()
                    raise StoreError(f"{path} is an SQLite file but not a qbench store; left untouched")
                row = conn.execute("SELECT value FROM meta WHERE key='marker'").fetchone()
                if not row or row[0] != MARKER:
                    conn.close()
                    raise StoreError(f"{path} is an SQLite file but not a qbench store; left untouched")
                version = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
                if not version or int(version[0]) > SCHEMA_VERSION:
                    conn.close()
                    raise StoreError(f"{path} was written by a newer qbench (schema {version}); left untouched")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('marker', ?)", (MARKER,))
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path} is not a usable qbench store ({exc}); left untouched") from None
        return cls(path, conn)

    def close(self) -> None:
        """Close the connection (checkpointing the WAL)."""
        self.conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # trainings -------------------------------------------------------------------------------------
    def get_training(self, key: str) -> TrainingRecord | None:
        """The training record for ``key`` if its weights file is present too."""
        row = self.conn.execute(
            "SELECT key, spec, seed, weights, seconds, info, qbench_version FROM trainings WHERE key=?", (key,)
        ).fetchone()
        if row is None or not (self.artifacts / row[3]).exists():
            return None
        return TrainingRecord(row[0], json.loads(row[1]), row[2], row[3], row[4], json.loads(row[5]), row[6])

    def put_training(self, record: TrainingRecord) -> None:
        """Record a training whose weights file already sits in :attr:`artifacts`."""
        self.conn.execute(
            "INSERT OR REPLACE INTO trainings VALUES (?,?,?,?,?,?,?,?)",
            (
                record.key,
                json.dumps(record.spec, sort_keys=True),
                record.seed,
                record.weights,
                record.seconds,
                json.dumps(record.info, sort_keys=True),
                record.qbench_version,
                time.time(),
            ),
        )

    # cells -----------------------------------------------------------------------------------------
    def has_cell(self, key: str) -> bool:
        """Whether a cell with ``key`` is stored (in any status but ``failed``)."""
        row = self.conn.execute("SELECT status FROM cells WHERE key=?", (key,)).fetchone()
        return row is not None and row[0] != "failed"

    def put_cell(self, cell: CellRecord) -> None:
        """Commit one cell. A stored successful cell is never replaced; a failed one may be retried."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            row = self.conn.execute("SELECT status FROM cells WHERE key=?", (cell.key,)).fetchone()
            if row is not None and row[0] != "failed":
                self.conn.execute("COMMIT")
                return
            self.conn.execute(
                "INSERT OR REPLACE INTO cells VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    cell.key,
                    cell.train_key,
                    json.dumps(cell.spec, sort_keys=True),
                    cell.kind,
                    cell.attack,
                    cell.epsilon,
                    cell.seed,
                    cell.status,
                    cell.n,
                    cell.n_correct,
                    cell.accuracy,
                    _pack(cell.correct),
                    json.dumps(cell.info, sort_keys=True),
                    cell.seconds,
                    cell.error,
                    cell.qbench_version,
                    time.time(),
                ),
            )
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def get_cell(self, key: str) -> CellRecord | None:
        """The stored cell with ``key``."""
        rows = list(self._cells("WHERE key=?", (key,)))
        return rows[0] if rows else None

    def cells(self) -> list[CellRecord]:
        """Every stored cell, oldest first."""
        return list(self._cells("ORDER BY created", ()))

    def trainings(self) -> list[TrainingRecord]:
        """Every stored training record."""
        rows = self.conn.execute(
            "SELECT key, spec, seed, weights, seconds, info, qbench_version FROM trainings ORDER BY created"
        )
        return [TrainingRecord(r[0], json.loads(r[1]), r[2], r[3], r[4], json.loads(r[5]), r[6]) for r in rows]

    def _cells(self, where: str, args: tuple) -> Iterator[CellRecord]:
        query = (
            "SELECT key, train_key, spec, kind, attack, epsilon, seed, status, n, n_correct, accuracy, correct, "
            f"info, seconds, error, qbench_version FROM cells {where}"
        )
        for r in self.conn.execute(query, args):
            yield CellRecord(
                r[0], r[1], json.loads(r[2]), r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], _unpack(r[11]),
                json.loads(r[12]), r[13], r[14], r[15],
            )
