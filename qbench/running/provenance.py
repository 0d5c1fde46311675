"""Where a number came from: the checkout's commit and the versions of the packages it depends on.

Used by the runner (the commit a cell was computed at), the entries and the reproduction reports.
"""

from __future__ import annotations

import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

#: packages whose versions go into every entry's provenance
PROVENANCE_PACKAGES = (
    "torch", "pennylane", "qiskit", "qiskit-aer", "qiskit-ibm-runtime", "adversarial-robustness-toolbox",
    "numpy", "scipy", "scikit-learn",
)


def git_commit(root: Path | None = None) -> str | None:
    """The checkout's HEAD commit (``+dirty`` when the tree has changes), or None outside git."""
    cwd = root or Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10)
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return None


def package_versions() -> dict[str, str]:
    """Installed versions of the packages a number depends on."""
    out = {}
    for name in PROVENANCE_PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out
