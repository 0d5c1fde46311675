"""Seed-fixed selections of examples by class: stratified subsets, balanced subsets, per-class hold-outs.

Every function returns sorted indices into the label array, so a selection depends only on the labels,
the requested sizes and the seed (numpy's PCG64 stream), never on a cell's seed.
"""

from __future__ import annotations

import numpy as np

from qbench import DataError


def stratified_indices(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` indices whose class proportions follow ``labels`` (largest-remainder rounding).

    ``n`` equal to the number of labels returns every index.
    """
    labels = np.asarray(labels)
    if not 0 < n <= labels.size:
        raise ValueError(f"cannot take {n} of {labels.size} examples")
    if n == labels.size:
        return np.arange(labels.size)
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * n / labels.size
    quotas = np.floor(exact).astype(np.int64)
    # hand the leftover examples to the classes with the largest fractional parts (ties: lower class first)
    order = np.lexsort((classes, -(exact - quotas)))
    quotas[order[: n - int(quotas.sum())]] += 1
    return per_class_indices(labels, dict(zip(classes.tolist(), quotas.tolist())), seed)


def per_class_indices(labels: np.ndarray, quotas: dict[int, int], seed: int) -> np.ndarray:
    """``quotas[c]`` indices drawn at random (seed-fixed) from the examples of each class ``c``.

    Raises ``ValueError`` naming the class when it has fewer examples than its quota.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    chosen = []
    for cls in sorted(quotas):
        members = np.flatnonzero(labels == cls)
        if quotas[cls] > members.size:
            raise ValueError(f"class {cls} has {members.size} examples, {quotas[cls]} requested")
        chosen.append(rng.permutation(members)[: quotas[cls]])
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


def hold_out_per_class(labels: np.ndarray, per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split every class into ``per_class`` held-out indices and the rest: ``(kept, held_out)``, sorted."""
    labels = np.asarray(labels)
    held = per_class_indices(labels, {int(c): per_class for c in np.unique(labels)}, seed)
    kept = np.setdiff1d(np.arange(labels.size), held, assume_unique=True)
    return kept, held


def optional_subset(labels: np.ndarray, n: int | None, seed: int, option: str, source: str) -> np.ndarray:
    """Every index when ``n`` is None, else a stratified subset of ``n``.

    ``option`` and ``source`` word the :class:`qbench.DataError` raised when fewer than ``n`` examples
    exist, e.g. ``"n_train"`` and ``"train-labels-idx1-ubyte.gz in /data/mnist"``.
    """
    labels = np.asarray(labels)
    if n is None:
        return np.arange(labels.size)
    if n > labels.size:
        raise DataError(f"{option}={n}, but {source} holds only {labels.size} examples")
    return stratified_indices(labels, n, seed)
