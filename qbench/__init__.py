"""qbench: a plugin-based benchmark harness for adversarial defenses of quantum machine-learning models.

The public API a plugin uses is re-exported here; see ``docs/plugins.md``.
"""

from importlib.metadata import PackageNotFoundError, version as _dist_version

try:
    __version__ = _dist_version("qbench")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

from qbench.contract.attack import Attack, AttackSkipped
from qbench.contract.context import Context
from qbench.contract.dataset import DataSplit, Dataset, TrainingSchedule
from qbench.contract.defense import Defense
from qbench.contract.domain import Domain
from qbench.errors import ConfigError, DataError, QBenchError, UsageError
from qbench.hookspecs import hookimpl
from qbench.contract.model import Model, is_stochastic, noiseless_source
from qbench.contract.readout import prediction_is_random

_LAZY = {
    # importing these pulls in PennyLane / ART, which the CLI should not pay for on `qbench --help`
    "CircuitClassifier": "qbench.contract.circuit_model",
    "LayerInsert": "qbench.contract.circuit_model",
    "art_classifier": "qbench.contract.art_bridge",
    "load_model": "qbench.publishing.loading",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'qbench' has no attribute {name!r}")


__all__ = [
    "__version__", "hookimpl", "Attack", "AttackSkipped", "Context", "DataSplit", "Dataset", "TrainingSchedule",
    "Defense", "Domain", "Model", "is_stochastic", "noiseless_source", "prediction_is_random", "ConfigError", "DataError", "QBenchError", "UsageError",
    *_LAZY,
]
