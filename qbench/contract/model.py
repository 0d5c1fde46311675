"""The model contract: a factory for a ``torch.nn.Module`` returning logits of shape ``(N, C)``."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch

from qbench.contract.component import Component

if TYPE_CHECKING:
    from qbench.contract.context import Context
    from qbench.contract.dataset import DataSplit


class Model(Component):
    """A registered model. :meth:`build` returns a fresh, untrained module for a dataset.

    The module's forward returns logits ``(N, n_classes)``; softmax of them is the class distribution
    (for a quantum classifier, ``log`` of the measured class probabilities, so cross-entropy on the logits
    is the quantum cross-entropy of Lu et al.). A module whose forward is random sets ``stochastic = True``.
    Initial weights must come from ``ctx.generator``.
    """

    kind: ClassVar[str] = "model"

    def build(self, data: "DataSplit", ctx: "Context") -> torch.nn.Module:
        """A new module for ``data`` (its input shape and number of classes)."""
        raise NotImplementedError  # abstract


def is_stochastic(module: torch.nn.Module) -> bool:
    """Whether ``module``'s forward draws randomness (its own flag or any submodule's)."""
    return any(bool(getattr(m, "stochastic", False)) for m in module.modules())


def noiseless_source(model: torch.nn.Module) -> torch.nn.Module:
    """The network a deployed model was made from, before a hardware mapping added noise.

    A defense whose ``deploy`` maps a trained network onto noisy hardware records it on the result with
    :func:`attach_noiseless_source`; attacks of the seed's threat model (crafted on the noiseless DNN,
    evaluated on the noisy one) use it. Any other model is its own noiseless source.
    """
    return getattr(model, "noiseless_model", None) or model


def attach_noiseless_source(deployed: torch.nn.Module, model: torch.nn.Module) -> torch.nn.Module:
    """Record ``model`` as the noiseless network ``deployed`` was made from (see :func:`noiseless_source`).

    It is kept as a plain reference, not a submodule: a submodule would belong to the deployed model's
    ``modules()``, ``parameters()``, ``train()``/``eval()`` and ``to()``, so that whatever the deployment
    does to its own layers also reached the noiseless network. Until 2026-12-07 it was a submodule, and
    re-measuring the deployed VGG16's batch-norm statistics on the device reset the noiseless VGG16's to
    mean 0 and variance 1, which the noiseless attacks and QNAD's weight ranking then ran on.
    """
    deployed.__dict__["noiseless_model"] = model  # bypasses nn.Module.__setattr__'s registration
    return deployed
