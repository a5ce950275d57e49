"""cv folds of a streamed table, drawn and scaled shard by shard without holding the table.

- Which rows are in fold i of K (`InFold`): for a classification, each class's rows, in file
  order, are dealt to the K folds in blocks of K, each block in its own seeded order
  (`splits.dealt_fold`), so every fold keeps the class proportions (within one row); for a
  regression, the row number's hash (`splits.hashed_fold`).
- The scaler of fold i (`fold_scaling`): the shards were scaled once by a scaler fitted on
  every row of the table; fold i's training rows (the other folds) are measured again in one
  read of their shards, and both parts of the fold are rescaled by those statistics as they are
  read (`Rescale`), so the validation fold takes no part in its own scaling. The encoder that
  the model saves gets the composed scaler, which maps raw values the same way.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .splits import dealt_fold, hashed_fold


@dataclass(frozen=True, eq=False)
class InFold:
    """Which of shard j's rows (by row number, and class) are in fold `i` of `k` (`inside`) or
    outside it; `before` (shards, classes): each class's rows in the shards before shard j,
    for a classification. A class, not a closure, so that a dataset sent to a Ray worker pickles."""

    seed: int
    k: int
    i: int
    inside: bool
    before: np.ndarray | None = None

    def __call__(self, j: int, rows: np.ndarray, y: np.ndarray) -> np.ndarray:
        if self.before is None:
            fold = hashed_fold(rows, self.seed, self.k)
        else:
            ranks = np.empty(len(y), dtype=np.int64)
            for c in np.unique(y):
                where = np.flatnonzero(y == c)
                ranks[where] = self.before[j, c] + np.arange(len(where))
            fold = dealt_fold(ranks, y, self.seed, self.k)
        return (fold == self.i) == self.inside


def class_offsets(targets, n_classes: int) -> np.ndarray:
    """(shards, classes): rows of each class in the shards before each shard, from each shard's y."""
    counts = np.array([np.bincount(y, minlength=n_classes) for y in targets], dtype=np.int64).reshape(-1, n_classes)
    return np.cumsum(counts, axis=0) - counts


@dataclass(eq=False)
class Rescale:
    """Inputs `columns` of each window read as (X - shift) / scale, in X's dtype."""

    columns: np.ndarray
    shift: np.ndarray
    scale: np.ndarray = field(default=None)

    def __call__(self, X: np.ndarray) -> None:
        block = X[:, self.columns]
        block -= self.shift
        block /= self.scale
        X[:, self.columns] = block


def fold_scaling(train_part, encoder, dtype) -> Rescale | None:
    """The Rescale of a fold's parts from its training rows' statistics (standard or minmax; None
    for scale: none or no numbers), and encoder.scaler set to the composed scaler."""
    scaler = encoder.scaler
    if scaler is None or scaler["kind"] not in ("standard", "minmax") or not len(train_part):
        return None
    passthrough = encoder._onehot_mask()
    columns = np.flatnonzero(~passthrough)
    if not len(columns):
        return None
    n, mean, m2 = 0, np.zeros(len(columns)), np.zeros(len(columns))
    low, high = np.full(len(columns), np.inf), np.full(len(columns), -np.inf)
    for X, _ in train_part.chunks():
        block = X[:, columns].astype(np.float64)
        if not len(block):
            continue
        # Chan et al.'s merge, a whole shard at a time, as scanstats.Moments does per column
        b_n, b_mean = len(block), block.mean(axis=0)
        b_m2 = ((block - b_mean) ** 2).sum(axis=0)
        delta, total = b_mean - mean, n + b_n
        mean = mean + delta * b_n / total
        m2 = m2 + b_m2 + delta ** 2 * n * b_n / total
        n = total
        low, high = np.minimum(low, block.min(axis=0)), np.maximum(high, block.max(axis=0))
    if scaler["kind"] == "standard":
        shift, spread = mean, np.sqrt(m2 / max(n, 1))
    else:
        shift, spread = low, high - low
    spread = np.where(np.isfinite(spread) & (spread > 0), spread, 1.0)
    shift = np.where(np.isfinite(shift), shift, 0.0)
    offset, scale = np.array(scaler["offset"], dtype=np.float64), np.array(scaler["scale"], dtype=np.float64)
    offset[columns] += scale[columns] * shift
    scale[columns] *= spread
    encoder.scaler = {**scaler, "offset": offset.tolist(), "scale": scale.tolist()}
    return Rescale(columns, shift.astype(dtype), spread.astype(dtype))
