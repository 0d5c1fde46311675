"""The board's readout: how a quantum classifier's deployed prediction is measured.

DESIGN section 4 ("equal readout"): on a board every defense predicts from the same measurement. On the
QNN track that is the seed paper's J = 50 single shots of the readout wires; ``shots=None`` reads the
exact class probabilities instead (a board option). A model is read out by shots when it exposes
``class_probabilities(x) -> (N, K)`` (every :class:`qbench.CircuitClassifier` does); a classical model
(the mapped-DNN track) predicts from its logits whatever the readout.

Written by hand because it is a few lines of torch: sampling class outcomes is ``torch.multinomial``;
what qbench adds is the rule that the label is the most frequent outcome, passed through the model's own
``logits_from`` (its trained readout bias, if any).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from qbench.contract.model import is_stochastic


#: the command-line value ``--shots exact``, kept as 0 until the track's default is known
EXACT = 0


def readout_shots(requested: int | None, track_default: int | None) -> int | None:
    """The plan's shots: the track's default unless the user asked (``EXACT`` = exact probabilities)."""
    if requested is None:
        return track_default
    return None if requested == EXACT else requested


def has_quantum_readout(model: torch.nn.Module) -> bool:
    """Whether ``model`` is measured (it exposes ``class_probabilities``), so shots apply to it."""
    return callable(getattr(model, "class_probabilities", None))


def prediction_is_random(model: torch.nn.Module, shots: int | None) -> bool:
    """Whether ``model``'s deployed prediction under ``shots`` (``ctx.shots``) is a random variable.

    It is when the forward itself draws noise (:func:`~qbench.is_stochastic`) and also when a deterministic
    quantum classifier is read out by shots: then the expected accuracy follows the true class's
    probability, not whether the exact argmax flips. An attack that keeps or discards a point by one
    ``predict`` of it (ART's APGD does) should choose by its loss instead wherever this is true.
    """
    return is_stochastic(model) or (shots is not None and has_quantum_readout(model))


def frequencies(probabilities: torch.Tensor, shots: int) -> torch.Tensor:
    """``(N, K)`` measured class frequencies of ``shots`` single-shot measurements per row.

    Draws from torch's global generator, which the runner seeds per evaluation draw (common random
    numbers: the same input gives the same measured frequencies in every cell of a training).
    """
    if shots < 1:
        raise ValueError("shots must be >= 1")
    probs = probabilities.detach().clamp_min(0)
    outcomes = torch.multinomial(probs, shots, replacement=True)
    return F.one_hot(outcomes, probs.shape[1]).sum(dim=1).to(probs.dtype) / shots


def label_from_frequencies(model: torch.nn.Module, freqs: torch.Tensor) -> torch.Tensor:
    """The predicted label from measured frequencies, through the model's ``logits_from`` when it has one."""
    logits_from = getattr(model, "logits_from", None)
    scores = logits_from(freqs) if callable(logits_from) else freqs
    return scores.argmax(dim=1)


def measure(model: torch.nn.Module, x: torch.Tensor, shots: int | None) -> torch.Tensor:
    """Labels of ``x`` read out with ``shots`` single shots (None: argmax of the exact output)."""
    with torch.no_grad():
        if shots is None or not has_quantum_readout(model):
            return model(x).argmax(dim=1)
        return label_from_frequencies(model, frequencies(model.class_probabilities(x), shots))
