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


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer on uint64s: every input bit flips about half the output bits."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def row_hash(row_numbers: np.ndarray, seed: int) -> np.ndarray:
    """A 64-bit hash of each (row number, seed): a row's part depends on nothing else, so it is
    the same however the table is chunked, and the same in every run with this seed."""
    rows = np.asarray(row_numbers, dtype=np.int64).astype(np.uint64)
    key = _splitmix64(np.array([seed], dtype=np.uint64))[0]
    return _splitmix64(rows ^ key)


def hashed_validation(row_numbers: np.ndarray, seed: int, fraction: float) -> np.ndarray:
    """True for the rows in the validation part: the hash's top 53 bits as a uniform number in
    [0, 1) below `fraction`. (rows,) bool."""
    uniform = (row_hash(row_numbers, seed) >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
    return uniform < fraction


def hashed_fold(row_numbers: np.ndarray, seed: int, k: int) -> np.ndarray:
    """Each row's fold in 0..k-1, from the same hash: fold i is cv's validation part i. (rows,) int64."""
    return (row_hash(row_numbers, seed) % np.uint64(k)).astype(np.int64)


def dealt_fold(ranks: np.ndarray, labels: np.ndarray, seed: int, k: int) -> np.ndarray:
    """Each row's fold in 0..k-1 when each class's rows are dealt to the folds in blocks of k, in
    a seeded order of their own: `ranks` is each row's place among its class's rows (0, 1, ...),
    `labels` its class. Rows k·b to k·b + k - 1 of a class go one to each fold, so the folds keep
    the class proportions (within one row) however the rows are chunked. (rows,) int64."""
    ranks, labels = np.asarray(ranks, dtype=np.int64), np.asarray(labels, dtype=np.int64)
    block, place = ranks // k, ranks % k
    base = (labels << 40) + block  # one key per (class, block)
    # each of the block's k places gets a hash; a place's fold is its hash's rank among them
    keys = row_hash((base[:, None] * k + np.arange(k)).reshape(-1), seed).reshape(len(ranks), k)
    mine = keys[np.arange(len(ranks)), place]
    return (keys < mine[:, None]).sum(axis=1).astype(np.int64)
