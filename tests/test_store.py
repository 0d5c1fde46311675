import hashlib
import sqlite3

import numpy as np
import pytest

from qbench.errors import StoreError
from qbench.running.store import CellRecord, Store, TrainingRecord


def cell(key, status="ok", acc=0.5, correct=(True, False, True)):
    bits = np.array(correct, bool)
    return CellRecord(key, "t1", {"k": key}, "attack", "fgsm", 0.15, 0, status, len(bits), int(bits.sum()), acc, bits, {}, 0.1)


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_roundtrip_and_wal(store_path):
    with Store.open(store_path) as store:
        store.put_cell(cell("a"))
        mode = store.conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    with Store.open(store_path, create=False) as store:
        got = store.get_cell("a")
    assert got.accuracy == 0.5 and got.correct.tolist() == [[True], [False], [True]] and got.epsilon == 0.15


def test_successful_cell_is_never_duplicated_or_replaced(store_path):
    with Store.open(store_path) as store:
        store.put_cell(cell("a", acc=0.5))
        store.put_cell(cell("a", acc=0.9))
        assert [c.accuracy for c in store.cells()] == [0.5]


def test_failed_cell_can_be_retried(store_path):
    with Store.open(store_path) as store:
        store.put_cell(cell("a", status="failed", acc=None, correct=()))
        assert not store.has_cell("a")
        store.put_cell(cell("a", acc=0.7))
        assert store.has_cell("a") and len(store.cells()) == 1 and store.get_cell("a").accuracy == 0.7


def test_training_needs_its_weights_file(store_path):
    with Store.open(store_path) as store:
        store.put_training(TrainingRecord("t1", {}, 0, "t1.safetensors", 1.0, {}))
        assert store.get_training("t1") is None  # no weights file: not a usable training
        store.artifacts.mkdir()
        (store.artifacts / "t1.safetensors").write_bytes(b"x")
        assert store.get_training("t1").seconds == 1.0


@pytest.mark.parametrize(
    "content",
    [b"this is not a database at all", b"SQLite format 3\x00" + b"\x00" * 50],
)
def test_corrupt_store_is_refused_and_left_untouched(tmp_path, content):
    path = tmp_path / "bad.sqlite"
    path.write_bytes(content)
    before = digest(path)
    with pytest.raises(StoreError):
        Store.open(path)
    assert digest(path) == before


def test_foreign_sqlite_file_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "other.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE customers (id INTEGER)")
    conn.commit()
    conn.close()
    before = digest(path)
    with pytest.raises(StoreError, match="not a qbench store"):
        Store.open(path)
    assert digest(path) == before
