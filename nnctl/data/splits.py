"""Train and validation rows: a stratified or random split by a fraction, or fold i of K; every
draw from the generator it is given."""
from __future__ import annotations

import numpy as np


def stratified_split(y: np.ndarray, fraction: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation row indices, each class split in the same proportion (every class
    keeps at least one training row)."""
    if fraction == 0:
        return np.arange(len(y)), np.arange(0)
    train, val = [], []
    for c in range(int(y.max()) + 1):
        rows = rng.permutation(np.flatnonzero(y == c))
        n_val = min(int(round(fraction * len(rows))), len(rows) - 1)
        val.append(rows[:n_val])
        train.append(rows[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def kfold_split(y: np.ndarray, fold: tuple[int, int], rng, stratified: bool) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation row indices of fold i of K: rows are dealt to the K folds in a
    shuffled order drawn from `rng` (class by class when `stratified`, so each fold keeps the
    class proportions); the validation part is fold i, training the rest."""
    i, k = fold
    assignment = np.empty(len(y), dtype=np.int64)
    groups = [np.flatnonzero(y == c) for c in np.unique(y)] if stratified else [np.arange(len(y))]
    offset = 0
    for rows in groups:
        rows = rng.permutation(rows)
        assignment[rows] = (np.arange(len(rows)) + offset) % k
        offset += len(rows)  # the next class starts where this one stopped: folds stay even
    return np.flatnonzero(assignment != i), np.flatnonzero(assignment == i)


def random_split(n: int, fraction: float, rng) -> tuple[np.ndarray, np.ndarray]:
    rows = rng.permutation(n)
    n_val = min(int(round(fraction * n)), n - 1)
    return np.sort(rows[n_val:]), np.sort(rows[:n_val])
