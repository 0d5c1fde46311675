"""qbench: a plugin-based benchmark harness for adversarial defenses of quantum machine-learning models.

The public API a plugin uses is re-exported here; see ``docs/plugins.md``.
"""

from importlib.metadata import PackageNotFoundError, version as _dist_version

try:
    __version__ = _dist_version("qbench")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

from qbench.errors import ConfigError, DataError, QBenchError, UsageError
from qbench.hookspecs import hookimpl

# The rest of the public API is imported on first use (PEP 562): the contract pulls in torch, PennyLane and
# ART, which `qbench --help` and a mistyped command line should not wait for. `from qbench import Defense`
# and `qbench.Defense` work as before.
_LAZY = {
    "Attack": "qbench.contract.attack",
    "AttackSkipped": "qbench.contract.attack",
    "Context": "qbench.contract.context",
    "DataSplit": "qbench.contract.dataset",
    "Dataset": "qbench.contract.dataset",
    "TrainingSchedule": "qbench.contract.dataset",
    "Defense": "qbench.contract.defense",
    "Domain": "qbench.contract.domain",
    "Model": "qbench.contract.model",
    "is_stochastic": "qbench.contract.model",
    "noiseless_source": "qbench.contract.model",
    "attach_noiseless_source": "qbench.contract.model",
    "prediction_is_random": "qbench.contract.readout",
    "CircuitClassifier": "qbench.contract.circuit_model",
    "LayerInsert": "qbench.contract.circuit_model",
    "art_classifier": "qbench.contract.art_bridge",
    "load_model": "qbench.publishing.loading",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'qbench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = ["__version__", "hookimpl", "ConfigError", "DataError", "QBenchError", "UsageError", *_LAZY]
