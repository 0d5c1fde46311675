"""SIGKILL a running `qbench evaluate`, run it again: every cell present exactly once, equal to a clean run."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ARGS = [
    "evaluate", "--defense", "none", "--json", "--epochs", "3", "--seeds", "2", "--n-test", "60", "--attack", "fgsm",
    "--epsilon", "0.05", "--epsilon", "0.1", "--epsilon", "0.15", "--epsilon", "0.2", "--epsilon", "0.3",
]
EXPECTED_CELLS = 2 * (1 + 5)


def count_cells(path):
    if not path.exists():
        return 0
    try:
        conn = sqlite3.connect(path, timeout=5)
        try:
            return conn.execute("SELECT COUNT(*) FROM cells").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        return 0


def test_sigkill_midway_then_resume(tmp_path, cli):
    killed = tmp_path / "killed.sqlite"
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("qbench")), *ARGS, "--store", str(killed)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while count_cells(killed) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed; make it longer"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = count_cells(killed)
    assert 3 <= partial < EXPECTED_CELLS

    resumed = cli(*ARGS, "--store", str(killed))
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    assert report["defense"]["cells_computed"] == EXPECTED_CELLS - partial

    conn = sqlite3.connect(killed)
    assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT key) FROM cells").fetchone() == (EXPECTED_CELLS, EXPECTED_CELLS)

    fresh = json.loads(cli(*ARGS, "--store", str(tmp_path / "fresh.sqlite")).stdout)
    for field in ("clean", "attacks", "worst_case"):
        assert report["defense"][field] == fresh["defense"][field]
