"""Which values of a DNN go to which physical qubit (qbench's fixed DNN-to-qubit mapping).

Mapped layers are the multiply-accumulate layers: every ``Conv1d``/``Conv2d``/``Conv3d``/``Linear`` module,
in ``model.named_modules()`` order. Biases are not mapped: a bias is the accumulator's starting value,
added classically (it still passes through the noisy read-back of the layer's output).

Weights are numbered by a *global flat index*: layer after layer, each layer's ``weight.flatten()`` in
order. With ``Q`` characterised qubits ``qubits = (q_0, ..., q_{Q-1})``, weight ``g`` is encoded on qubit
``qubits[g % Q]`` (round-robin) in *time slot* ``g // Q``: the device executes ``Q`` weights at a time,
one per qubit. Activations (a mapped layer's output, the MAC result) are numbered per example by their
flat index ``j`` in the output ``(C, ...)`` and encoded on ``qubits[j % Q]``.
"""

from __future__ import annotations

import torch

#: the modules whose weights and outputs are mapped onto qubits
MAPPED_LAYER_TYPES: tuple[type[torch.nn.Module], ...] = (
    torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.Linear,
)


def mapped_layers(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """``(name, module)`` for every mapped layer of ``model``, in ``named_modules()`` order."""
    return [(name, module) for name, module in model.named_modules() if isinstance(module, MAPPED_LAYER_TYPES)]


def weight_offsets(model: torch.nn.Module) -> dict[str, tuple[int, int]]:
    """``name -> (offset, numel)``: where each mapped layer's weights start in the global flat index."""
    offsets: dict[str, tuple[int, int]] = {}
    offset = 0
    for name, module in mapped_layers(model):
        numel = module.weight.numel()
        offsets[name] = (offset, numel)
        offset += numel
    return offsets


def weight_qubits(model: torch.nn.Module, qubits: tuple[int, ...] | list[int]) -> dict[str, torch.Tensor]:
    """``name -> LongTensor`` shaped like the layer's weight: the physical qubit each weight is encoded on."""
    n = len(qubits)
    table = torch.as_tensor(list(qubits), dtype=torch.long)
    result = {}
    for (name, module), (offset, numel) in zip(mapped_layers(model), weight_offsets(model).values()):
        index = (torch.arange(offset, offset + numel) % n).reshape(module.weight.shape)
        result[name] = table[index]
    return result
