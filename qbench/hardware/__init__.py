"""The hardware-noise side of the mapped-DNN track (DESIGN section 7; QNAD, seeds/001).

A DNN's weights and activations are "executed on a noisy IBM backend": each value is encoded as
``RY(arccos v)`` on a physical qubit and read back as ``<Z>`` from a finite number of shots. How the
backend's calibrated noise (and injected CNOT-pair crosstalk) perturbs that read-back is characterised
once on qiskit-aer and cached (:func:`characterise`), then applied to a whole ``torch.nn.Module`` at torch
speed (:func:`map_to_hardware`). QNAD's crosstalk placement on the most important weights is
:func:`qnad_crosstalk` (or :func:`weight_importance` + :func:`place_crosstalk`).

Typical use::

    from qbench import hardware
    char = hardware.characterise("ibm_nairobi", cache_dir=ctx.cache_dir)
    plan = hardware.qnad_crosstalk(model, x_train[:512], y_train[:512], char, level=0.05, k=4)
    noisy = hardware.map_to_hardware(model, char, crosstalk=plan, generator=ctx.generator)
"""

from qbench.hardware.backends import (
    DEFAULT_BACKEND, Topology, backend_names, backend_topology, calibration_fingerprint, canonical_backend_name,
    load_backend,
)
from qbench.hardware.batch_norm import batch_norm_layers, recalibrate_batch_norm
from qbench.hardware.cache import JsonCache, cache_key
from qbench.hardware.characterisation import (
    DEFAULT_GRID, DEFAULT_KS, DEFAULT_REPEATS, DEFAULT_SHOTS, Characterisation, characterise, encoding_circuit,
    make_grid, transpile_for,
)
from qbench.hardware.crosstalk import CrosstalkPlan, place_crosstalk, qnad_crosstalk, weight_importance
from qbench.hardware.mapping import MAPPED_LAYER_TYPES, mapped_layers, weight_offsets, weight_qubits
from qbench.hardware.noisy_mac import MappedLayer, MappedModel, ReadoutNoise, map_to_hardware, perturb

__all__ = [
    "DEFAULT_BACKEND", "Topology", "backend_names", "backend_topology", "calibration_fingerprint",
    "canonical_backend_name", "load_backend",
    "batch_norm_layers", "recalibrate_batch_norm",
    "JsonCache", "cache_key",
    "DEFAULT_GRID", "DEFAULT_KS", "DEFAULT_REPEATS", "DEFAULT_SHOTS", "Characterisation", "characterise",
    "encoding_circuit", "make_grid", "transpile_for",
    "CrosstalkPlan", "place_crosstalk", "qnad_crosstalk", "weight_importance",
    "MAPPED_LAYER_TYPES", "mapped_layers", "weight_offsets", "weight_qubits",
    "MappedLayer", "MappedModel", "ReadoutNoise", "map_to_hardware", "perturb",
]
