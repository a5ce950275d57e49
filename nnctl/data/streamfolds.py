"""cv folds of a streamed table, drawn and scaled shard by shard without holding the table.

- Which rows are in fold i of K (`InFold`): for a classification, each class's rows, in file
  order, are dealt to the K folds in blocks of K, each block in its own seeded order
  (`splits.dealt_fold`), so every fold keeps the class proportions (within one row); for a
  regression, the row number's hash (`splits.hashed_fold`).
- The scaler of fold i (`fold_scaling`): the shards were scaled once by a scaler fitted on
  every row of the table; fold i's training rows (the other folds) are measured again in one
  read of their shards, and both parts of the fold are rescaled by those statistics as they are
  read (`Rescale`), so the validation fold takes no part in its own scaling. The encoder that
  the model saves gets the composed scaler, which maps raw values the same way. Robust and
  quantile scaling bend the values, so nothing affine composes with them: a cv entry under them
  holds the numbers raw (`fold_source`), and each fold fits its scaler on a bounded sample of its
  training rows' values, the first pass's `scanstats.Reservoir` (every value, when a column has
  at most `scanstats.sample_rows` of them: then exactly the in-memory fold's scaler); so are
  regression targets under a `quantile` transform.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .scaling import apply_scaler, fit_target, scaler_from_columns, target_setting, to_training
from .scanstats import Reservoir, sample_rows
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
SAMPLED = ("robust", "quantile")  # input scalers a fold fits anew from its training rows' raw values


def fold_source(cfg):
    """The config a cv entry's shards are written from: the whole table (only the data, seed,
    task and dtype matter, so training's rules about a validation part, which a changed config
    is checked against, are set aside with it), its numbers raw under robust or quantile
    scaling, and its regression targets raw under a quantile transform: each fold fits those on
    its own training rows (`fold_scaling`)."""
    data = replace(cfg.data, validation_split=0.0)
    if data.scale in SAMPLED:
        data = replace(data, scale="none")
    if target_setting(data) == "quantile":
        data = replace(data, target_transform="none")
    return replace(cfg, data=data, training=replace(cfg.training, early_stopping=None, calibration="none"))


def keeps_missing(data) -> bool:
    """Whether a fold entry's shards (written from `fold_source`'s data) keep missing numbers as
    NaN, for each fold to fill with its training folds' mean (`missing: mean` under an affine
    scaler, or none: robust and quantile entries hold raw numbers)."""
    return data.missing == "mean" and data.scale in AFFINE


@dataclass(eq=False)
class Rescale:
    """Inputs `columns` of each window read as (X - shift) / scale in X's dtype, a missing one
    (NaN) first set to its `fill`; a missing category (a one-hot block of zeros, or code -1) set
    to its fill, (first input, width or 0 for a code, the fill's index) in `categories`; a
    regression target as (y - y_shift) / y_scale. Then `scaler` (robust or quantile, fitted on
    the raw numbers the entry holds) applied as the model applies it, and each (y columns, a
    quantile target scaler) of `y_maps` to those columns of y."""

    columns: np.ndarray
    shift: np.ndarray
    scale: np.ndarray = field(default=None)
    fill: np.ndarray | None = None
    y_shift: np.ndarray | None = None
    y_scale: np.ndarray | None = None
    categories: list = field(default_factory=list)
    scaler: dict | None = None
    y_maps: list = field(default_factory=list)

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
        if self.scaler is not None:
            apply_scaler(X, self.scaler)
        if self.y_shift is not None and y is not None:
            y -= self.y_shift.reshape((1,) * (y.ndim - 1) + (-1,))
            y /= self.y_scale.reshape((1,) * (y.ndim - 1) + (-1,))
        for columns, scaler in self.y_maps if y is not None else ():
            y[:, columns] = to_training(y[:, columns], scaler)


class Stats:
    """Per column of blocks (rows, columns): present values' count, mean, M2 (Chan et al.'s
    merge, a whole block at a time, as scanstats.Moments does per column), minimum, maximum, and
    missing (NaN) values; `sampled`: a seeded bounded sample of each column's present values
    too (`samples`, the first pass's Reservoir and size)."""

    def __init__(self, width: int, sampled: bool = False):
        self.n, self.mean, self.m2 = np.zeros(width), np.zeros(width), np.zeros(width)
        self.low, self.high, self.missing = np.full(width, np.inf), np.full(width, -np.inf), np.zeros(width)
        size = sample_rows(width) if sampled else 0
        self.samples = [Reservoir(size, seed=c) for c in range(width)] if sampled else []

    def add(self, block: np.ndarray) -> None:
        block = block.astype(np.float64)
        present = ~np.isnan(block)
        for c, sample in enumerate(self.samples):  # a loop over columns, each a vector
            sample.add(block[present[:, c], c])
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


def fold_scaling(train_part, encoder, dtype, target_scaler: dict | list | None = None, data=None,
                 regression: list | None = None) -> tuple:
    """(the Rescale of a fold's parts from its training rows' statistics, or None; the fold's
    target scaler). Sets encoder.scaler to the composed scaler (standard or minmax), or under
    `data.scale` robust or quantile (the entry's numbers raw: `fold_source`) to one fitted on
    the training rows' sample, and, for shards that kept missing values (`keeps_missing`),
    encoder.fill to the training folds' means and most frequent categories; a regression
    target's standard or log1p scaler is composed the same way, and a quantile one (its y raw in
    the entry) fitted on their sample. Several targets: `target_scaler` is a list, each y
    column's scaler (None for a classification's class indices, which stay as they are), and so
    is the result; `regression` lists the y columns that are regression targets."""
    scaler = encoder.scaler
    kind = scaler["kind"] if scaler is not None else "none"
    columns = np.array(encoder.numeric_inputs(), dtype=np.int64)
    refit = kind in ("standard", "minmax") and len(columns) > 0
    bent = data.scale if data is not None and data.scale in SAMPLED and kind == "none" and len(columns) else None
    fills = encoder.fill is not None and kind in AFFINE  # the entry kept missing values (keeps_missing)
    several = isinstance(target_scaler, list)
    # the y columns under a quantile transform, held raw (fold_source): a single target's outputs,
    # or the regression columns of several
    quantile = data is not None and target_setting(data) == "quantile" and train_part.y_width
    y_raw = np.array((regression or []) if several else range(train_part.y_width) if quantile else [], dtype=np.int64)
    y_quantile = bool(quantile and len(y_raw))
    scalers = target_scaler if several else [target_scaler] * (train_part.y_width if target_scaler else 0)
    # the y columns rescaled: a single target's outputs, or the regression columns of several
    y_columns = np.array([c for c, one in enumerate(scalers) if one and one["kind"] in AFFINE_TARGET], dtype=np.int64)
    y_refit = bool(len(y_columns) and train_part.y_width)
    if not len(train_part) or not (refit or fills or y_refit or bent or y_quantile):
        return None, target_scaler
    layout = [(f, j, width) for f, j, width in _categorical_inputs(encoder)
              if fills and encoder.fill.get(f) is not None]
    y_measured = y_columns if y_refit else y_raw if y_quantile else None
    inputs, targets, seen = _measured(train_part, columns, layout, y_measured, encoder, bool(bent), y_quantile)
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
    fitted, y_maps = None, []
    if bent:
        encoder.scaler = fitted = _sampled_scaler(inputs, columns, len(offset), bent, stored_fill, dtype)
    if y_quantile and not several:  # one map per output, as in memory
        target_scaler = fit_target(np.column_stack([r.values for r in targets.samples]), "quantile")
        y_maps = [(y_raw, target_scaler)]
    elif y_quantile:
        target_scaler = list(target_scaler)
        for c, sample in zip(y_raw.tolist(), targets.samples):
            target_scaler[c] = fit_target(sample.values.reshape(-1, 1), "quantile")
            y_maps.append((np.array([c]), target_scaler[c]))
    rescale = Rescale(columns, shift.astype(dtype), spread.astype(dtype),
                      None if stored_fill is None else stored_fill.astype(dtype), y_shift, y_scale, categories,
                      fitted, y_maps)
    return rescale, target_scaler


def _sampled_scaler(inputs: "Stats", columns, width: int, kind: str, fill, dtype) -> dict:
    """robust or quantile over the inputs, from each numeric column's sample of training values
    with its filled-in missing values in their share, as the first pass fits it
    (scanpass.FirstPass._sampled_scaler) and in memory's fit_scaler, on the values the dtype holds."""
    passthrough = np.ones(width, dtype=bool)
    passthrough[columns] = False
    place = {int(j): c for c, j in enumerate(columns)}

    def column(j: int) -> np.ndarray:
        c = place[j]
        return inputs.samples[c].as_trained(dtype, None if fill is None else fill[c], int(inputs.missing[c]))

    return scaler_from_columns(column, width, kind, passthrough)


def _measured(train_part, columns, layout: list, y_columns, encoder, sampled: bool = False,
              y_sampled: bool = False) -> tuple:
    """(Stats of the inputs `columns`, Stats of the targets' `y_columns` (None: none), each
    `layout` category's rows per category (missing ones, kept so, set nothing)) over the fold's
    training rows, in one read; `sampled`, `y_sampled`: the Stats keep a bounded sample of each
    column's present values too (`samples`)."""
    inputs, targets = Stats(len(columns), sampled), Stats(len(y_columns) if y_columns is not None else 0, y_sampled)
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
