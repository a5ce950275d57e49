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


AFFINE = ("standard", "minmax", "none")  # input scalers a fold refits from the shards' values
AFFINE_TARGET = ("standard", "log1p")  # target scalers it refits (log1p: affine in log1p(y))


def keeps_missing(data) -> bool:
    """Whether a fold entry's shards keep missing numbers as NaN, for each fold to fill with its
    training folds' mean (`missing: mean` under an affine scaler; robust and quantile scaling
    bend the values, so their shards are filled with the whole table's mean)."""
    return data.missing == "mean" and data.scale in AFFINE


@dataclass(eq=False)
class Rescale:
    """Inputs `columns` of each window read as (X - shift) / scale in X's dtype, a missing one
    (NaN) first set to its `fill`; a missing category (a one-hot block of zeros, or code -1) set
    to its fill, (first input, width or 0 for a code, the fill's index) in `categories`; a
    regression target as (y - y_shift) / y_scale."""

    columns: np.ndarray
    shift: np.ndarray
    scale: np.ndarray = field(default=None)
    fill: np.ndarray | None = None
    y_shift: np.ndarray | None = None
    y_scale: np.ndarray | None = None
    categories: list = field(default_factory=list)

    def __call__(self, X: np.ndarray, y: np.ndarray | None = None) -> None:
        for j, width, index in self.categories:
            if width:
                missing = ~X[:, j:j + width].any(axis=1)
                X[missing, j + index] = 1
            else:
                column = X[:, j]
                column[column < 0] = index
        if len(self.columns):
            block = X[:, self.columns]
            if self.fill is not None:
                missing = np.isnan(block)
                if missing.any():
                    block = np.where(missing, self.fill, block)
            block -= self.shift
            block /= self.scale
            X[:, self.columns] = block
        if self.y_shift is not None and y is not None:
            y -= self.y_shift.reshape((1,) * (y.ndim - 1) + (-1,))
            y /= self.y_scale.reshape((1,) * (y.ndim - 1) + (-1,))


class Stats:
    """Per column of blocks (rows, columns): present values' count, mean, M2 (Chan et al.'s
    merge, a whole block at a time, as scanstats.Moments does per column), minimum, maximum, and
    missing (NaN) values."""

    def __init__(self, width: int):
        self.n, self.mean, self.m2 = np.zeros(width), np.zeros(width), np.zeros(width)
        self.low, self.high, self.missing = np.full(width, np.inf), np.full(width, -np.inf), np.zeros(width)

    def add(self, block: np.ndarray) -> None:
        block = block.astype(np.float64)
        present = ~np.isnan(block)
        b_n = present.sum(axis=0)
        self.missing += len(block) - b_n
        if not b_n.any():
            return
        b_mean = np.where(present, block, 0.0).sum(axis=0) / np.maximum(b_n, 1)
        b_m2 = np.where(present, (block - b_mean) ** 2, 0.0).sum(axis=0)
        delta, total = b_mean - self.mean, self.n + b_n
        share = np.divide(b_n, total, out=np.zeros_like(self.n), where=total > 0)
        self.mean = self.mean + delta * share
        self.m2 = self.m2 + b_m2 + delta ** 2 * self.n * share
        self.n = total
        self.low, self.high = np.fmin(self.low, np.fmin.reduce(block, axis=0)), \
            np.fmax(self.high, np.fmax.reduce(block, axis=0))


def fold_scaling(train_part, encoder, dtype, target_scaler: dict | list | None = None) -> tuple:
    """(the Rescale of a fold's parts from its training rows' statistics, or None; the fold's
    target scaler). Sets encoder.scaler to the composed scaler (standard or minmax) and, for
    shards that kept missing values (`keeps_missing`), encoder.fill to the training folds'
    means and most frequent categories; a regression target's standard or log1p scaler is
    composed the same way. Several targets: `target_scaler` is a list, each y column's scaler
    (None for a classification's class indices, which stay as they are), and so is the result."""
    scaler = encoder.scaler
    kind = scaler["kind"] if scaler is not None else "none"
    columns = np.array(encoder.numeric_inputs(), dtype=np.int64)
    refit = kind in ("standard", "minmax") and len(columns) > 0
    fills = encoder.fill is not None and kind in AFFINE  # the entry kept missing values (keeps_missing)
    several = isinstance(target_scaler, list)
    scalers = target_scaler if several else [target_scaler] * (train_part.y_width if target_scaler else 0)
    # the y columns rescaled: a single target's outputs, or the regression columns of several
    y_columns = np.array([c for c, one in enumerate(scalers) if one and one["kind"] in AFFINE_TARGET], dtype=np.int64)
    y_refit = bool(len(y_columns) and train_part.y_width)
    if not len(train_part) or not (refit or fills or y_refit):
        return None, target_scaler
    layout = [(f, j, width) for f, j, width in _categorical_inputs(encoder)
              if fills and encoder.fill.get(f) is not None]
    inputs, targets, seen = _measured(train_part, columns, layout, y_columns if y_refit else None, encoder)
    offset = np.array(scaler["offset"], dtype=np.float64) if scaler else np.zeros(len(encoder._onehot_mask()))
    scale = np.array(scaler["scale"], dtype=np.float64) if scaler else np.ones(len(offset))
    stored_fill, categories = None, []
    if fills:
        stored_fill, categories = _fills(encoder, inputs, columns, offset, scale, seen, layout)
    shift, spread = _shift_spread(inputs, kind) if refit else (np.zeros(len(columns)), np.ones(len(columns)))
    if refit:
        offset[columns] += scale[columns] * shift
        scale[columns] *= spread
        encoder.scaler = {**scaler, "offset": offset.tolist(), "scale": scale.tolist()}
    y_shift = y_scale = None
    if y_refit and not several:
        y_shift, y_scale = _shift_spread(targets, "standard")
        t_offset, t_scale = np.array(target_scaler["offset"]), np.array(target_scaler["scale"])
        target_scaler = {**target_scaler, "offset": (t_offset + t_scale * y_shift).tolist(),
                         "scale": (t_scale * y_scale).tolist()}
        y_shift, y_scale = y_shift.astype(dtype), y_scale.astype(dtype)
    elif y_refit:  # each regression column as one target's, the others by (y - 0) / 1: unchanged
        moved, spread_y = _shift_spread(targets, "standard")
        y_shift, y_scale = np.zeros(train_part.y_width), np.ones(train_part.y_width)
        y_shift[y_columns], y_scale[y_columns] = moved, spread_y
        target_scaler = list(target_scaler)
        for c, a, b in zip(y_columns.tolist(), moved, spread_y):
            one = target_scaler[c]
            target_scaler[c] = {**one, "offset": [one["offset"][0] + one["scale"][0] * a],
                                "scale": [one["scale"][0] * b]}
        y_shift, y_scale = y_shift.astype(dtype), y_scale.astype(dtype)
    rescale = Rescale(columns, shift.astype(dtype), spread.astype(dtype),
                      None if stored_fill is None else stored_fill.astype(dtype), y_shift, y_scale, categories)
    return rescale, target_scaler


def _measured(train_part, columns, layout: list, y_columns, encoder) -> tuple:
    """(Stats of the inputs `columns`, Stats of the targets' `y_columns` (None: none), each
    `layout` category's rows per category (missing ones, kept so, set nothing)) over the fold's
    training rows, in one read."""
    inputs, targets = Stats(len(columns)), Stats(len(y_columns) if y_columns is not None else 0)
    seen = [np.zeros(width or len(encoder.categories[f]), dtype=np.int64) for f, j, width in layout]
    for X, y in train_part.chunks():
        inputs.add(X[:, columns])
        for counts, (f, j, width) in zip(seen, layout):
            if width:
                counts += X[:, j:j + width].sum(axis=0, dtype=np.int64)
            else:
                codes = X[:, j].astype(np.int64)
                counts += np.bincount(codes[codes >= 0], minlength=len(counts))
        if y_columns is not None:
            targets.add(y.reshape(len(y), -1)[:, y_columns])
    return inputs, targets, seen


def _fills(encoder, inputs: Stats, columns, offset, scale, seen: list, layout: list) -> tuple:
    """(the fill of each input `columns` as the shards hold them, or None when nothing is
    missing; the Rescale's categories): a number's training mean, a category's most frequent
    (the first in sorted order among equals), set in encoder.fill as a raw value. The inputs'
    Stats then count the filled rows, as the in-memory scaler, fitted after filling, does."""
    mean = np.where(inputs.n > 0, inputs.mean, 0.0)
    names = encoder.inputs  # a numeric input's name is its column's
    fill = dict(encoder.fill)
    fill.update({names[c]: float(offset[c] + scale[c] * m) for c, m in zip(columns, mean) if names[c] in fill})
    categories = []
    for counts, (f, j, width) in zip(seen, layout):
        if counts.any():
            index = int(np.argmax(counts))
            categories.append((j, width, index))
            fill[f] = encoder.categories[f][index]
    encoder.fill = fill
    if not inputs.missing.any():
        return None, categories
    inputs.n = inputs.n + inputs.missing  # M2 and the mean stay: the fill is the mean
    inputs.low, inputs.high = np.fmin(inputs.low, mean), np.fmax(inputs.high, mean)
    return mean, categories


def _shift_spread(stats: Stats, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """What standard (mean, std) or minmax (low, high - low) scaling takes off and divides by."""
    if kind == "standard":
        shift, spread = stats.mean, np.sqrt(stats.m2 / np.maximum(stats.n, 1))
    else:
        shift, spread = stats.low, stats.high - stats.low
    spread = np.where(np.isfinite(spread) & (spread > 0), spread, 1.0)
    return np.where(np.isfinite(shift), shift, 0.0), spread


def _categorical_inputs(encoder) -> list:
    """(feature, first input, width: 0 for a code) of each categorical feature."""
    found, j = [], 0
    for f in encoder.features:
        width = len(encoder.categories[f]) if encoder._onehot_column(f) else 1
        if f in encoder.categories:
            found.append((f, j, width if encoder._onehot_column(f) else 0))
        j += width
    return found
