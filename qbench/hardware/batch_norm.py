"""Batch-norm statistics re-measured on the hardware: the fine-tuning stage of a mapping that trains nothing.

QNAD (seed 001, section III-B) maps a pre-trained DNN in three stages, the last one "obtain the
classification accuracy and fine-tune the quantum circuit based on the evaluated results". A network
with batch normalisation was normalised with statistics of its *noiseless* activations; through the
read-back every layer's outputs are shifted (the read-back's bias is systematic) and spread, so the
stored means and variances no longer match and the error compounds layer after layer. Measured on the
board's VGG16-BN (``leaderboards/reproductions/analysis/vgg16_finetune.txt``): 25.0% noiseless, 1.9%
mapped as is, 18.2% mapped once the statistics were re-estimated from noisy forwards of 2560 training
images; fine-tuning every weight through the noise reached 25.0% mapped after ten epochs, but its
weights then fall to 16.4% without the noise: that is noise-injection training, a defense of its own,
not a deployment. Re-estimating the statistics changes no trained weight, so the deployed model is still
the trained one run on the device.
"""

from __future__ import annotations

import torch
from torch.nn.modules.batchnorm import _BatchNorm


def batch_norm_layers(model: torch.nn.Module) -> list[_BatchNorm]:
    """The batch-norm modules of ``model`` that keep running statistics."""
    return [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]


@torch.no_grad()
def recalibrate_batch_norm(mapped: torch.nn.Module, x: torch.Tensor, batch_size: int = 128,
                           generator: torch.Generator | None = None) -> int:
    """Re-estimate every batch norm's running mean and variance of ``mapped`` from its forwards on ``x``.

    ``mapped`` is a noisy model (:func:`qbench.hardware.map_to_hardware`); its noise during these forwards
    comes from ``generator`` (then the model's own generator is restored). The statistics are the
    cumulative averages over the batches of ``x``; only the batch norms run in training mode (dropout and
    the rest stay as they are). Returns the number of batch norms; with none, nothing runs and no random
    number is drawn, so a model without batch normalisation deploys exactly as before.
    """
    norms = batch_norm_layers(mapped)
    if not norms:
        return 0
    saved = [(m, m.momentum, m.training) for m in norms]
    previous = getattr(mapped, "generator", None)
    if generator is not None and hasattr(mapped, "generator"):
        mapped.generator = generator
    try:
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the batches
            m.train()
        for start in range(0, len(x), batch_size):
            mapped(x[start:start + batch_size])
    finally:
        for m, momentum, training in saved:
            m.momentum = momentum
            m.train(training)
        if generator is not None and hasattr(mapped, "generator"):
            mapped.generator = previous
    return len(norms)
