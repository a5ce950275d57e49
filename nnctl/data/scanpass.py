"""The first pass's state: fed one chunk at a time (`FirstPass.add`), it keeps per column what
`load_dataset` would learn from the whole table, and the same checks, with the row they fail at.

Each column's kind is decided by its first chunk with a value in it: text makes it categorical
(under `categorical: auto`), numbers numeric. A whole file read at once would take a numeric
column with one stray word in row 10 million as text; here that word is an error naming its row.
"""
from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

from ..errors import NnctlError, plain
from .columns import auto_task, column_warnings, looks_like_decimal_commas, missing_error
from .encoding import category_label, is_number
from .scaling import check_log1p, fit_target, scaler_from_columns, target_setting
from .scanstats import ID_TRACK_ROWS, DistinctInts, Moments, Reservoir, Scratch, TargetLabels, sample_rows



def kept_rows(chunk, used: list, target, policy: str, where: str) -> np.ndarray:
    """(rows,) bool: the rows data.missing keeps. Under `error` a missing value is an error
    naming its column and first row (the chunk's index is the row's place in its file).
    `target`: its column, or the several targets' (each already checked by `kept_targets`)."""
    def missing(col):  # None when nothing is missing: a NumPy integer or bool column never is
        column = chunk[col]
        if isinstance(column.dtype, np.dtype) and column.dtype.kind in "iub":
            return None
        found = column.isna().to_numpy()
        return found if found.any() else None

    if policy == "error":
        for col in used:
            found = missing(col)
            if found is not None:
                row = int(chunk.index[int(np.flatnonzero(found)[0])])
                raise missing_error(col, row, where, target=col in (target if isinstance(target, list) else [target]))
    checked = used if policy == "drop" else target if isinstance(target, list) else [target]
    dropped = [m for c in checked if (m := missing(c)) is not None]
    if not dropped:
        return np.ones(len(chunk), dtype=bool)
    return ~np.logical_or.reduce(dropped)


def kept_targets(cfg, chunk, features: list, names: list, where: str) -> np.ndarray:
    """kept_rows of several targets, as the in-memory path keeps them
    (`targets.drop_missing_targets`, then data.missing on the features): a row missing a target
    is dropped under that target's policy `drop`, an error naming the column and row under `error`."""
    from .targets import drop_hint, missing_policy

    keep = np.ones(len(chunk), dtype=bool)
    for name in names:
        missing = chunk[name].isna().to_numpy()
        if missing.any():
            if missing_policy(cfg, name) == "error":
                row = int(chunk.index[int(np.flatnonzero(missing)[0])])
                raise missing_error(name, row, where, target=True, hint=drop_hint(name))
            keep &= ~missing
    if keep.any():
        keep[keep] = kept_rows(chunk if keep.all() else chunk[keep], features, names, cfg.data.missing, where)
    return keep


LATER_AHEAD = 2  # chunks whose moments may wait for the thread learning them


def cut(array: np.ndarray, at):
    """array's rows at these places (all of them for None)."""
    return array if at is None else array[at]


def _numeric_dtype(column) -> bool:
    import pandas as pd

    return pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)


LEARNERS = 2  # threads a chunk's columns are learned in (NumPy lets go of the GIL)
LEARN_ALONE_ROWS = 20_000  # a chunk of fewer rows is learned from in the calling thread
_learners = None


def by_column(learn, items: list, rows: int) -> None:
    """learn(*item) for each column's item, in LEARNERS threads when the chunk is large: each
    column's state is its own, and the first error in column order is raised, as one thread
    would raise it."""
    global _learners
    if rows < LEARN_ALONE_ROWS or len(items) < 2:
        for item in items:
            learn(*item)
        return
    if _learners is None:
        from concurrent.futures import ThreadPoolExecutor

        _learners = ThreadPoolExecutor(LEARNERS, thread_name_prefix="nnctl-learn")
    for future in [_learners.submit(learn, *item) for item in items]:
        future.result()


@dataclass
class Raw:
    """A chunk's kept rows as the one pass writes them, by part ("train", "validation": only
    the parts it has rows in): each part's row numbers, its features by column (features, rows)
    in the config's dtype (numbers as read; a category as its code in `FirstPass.codes`; NaN
    where missing), and its target as `TargetLabels.add` gives it. Each column is cut into its
    parts as it comes: cutting the whole (features, rows) block by columns costs ten times more."""
    parts: dict


class FirstPass:
    def __init__(self, cfg, features: list, where: str):
        from .targets import is_multi, target_names

        data = cfg.data
        self.cfg, self.data, self.features, self.where = cfg, data, features, where
        self.dtype, self.model_task = np.dtype(cfg.training.dtype), cfg.model.task
        self.listed = [] if data.categorical == "auto" else list(data.categorical)
        self.kinds = {c: "categorical" for c in self.listed}  # the rest: "numeric" or text, from the data
        self.names = target_names(data.target)
        self.used = list(dict.fromkeys(features + self.names))
        # the target's sample only for a quantile transform (several targets: as each asks)
        quantile = is_multi(data.target) or target_setting(data) == "quantile"
        self.target = TargetLabels(self.names[0], sampled=quantile,
                                   logged=is_multi(data.target) or target_setting(data) == "log1p")
        # several targets: one TargetLabels each (the first is `target`)
        self.labels = [self.target] + [TargetLabels(n) for n in self.names[1:]] if is_multi(data.target) else None
        self.rows = self.train_rows = self.val_rows = 0
        self.moments = {c: Moments() for c in features}  # training values as the dtype holds them
        # robust and quantile scaling are fit on a bounded sample of each numeric column
        sampled = data.scale in ("robust", "quantile")
        size = sample_rows(len(features))
        self.samples = {c: Reservoir(size, seed=i) for i, c in enumerate(features)} if sampled else {}
        self.raw = {c: Moments() for c in features}  # training values in float64: the fill mean
        self.missing_train = dict.fromkeys(features, 0)
        self.seen: dict = {c: set() for c in features}  # category names, every kept row
        self.codes: dict = {c: {} for c in features}  # category name -> its code in the raw rows
        self.modes: dict = {c: {} for c in features}  # category -> training rows, for missing: mean
        self.ids = {c: DistinctInts() for c in features}
        self.scratches = threading.local()  # each thread's own Scratch (see `scratch`)
        self.later = None  # the thread learning the training rows' moments, and its work in hand

    def add(self, chunk, rows: np.ndarray, val: np.ndarray, where: str, raw: bool = False):
        """One chunk: its rows' numbers in the table, and which are in the validation part. With
        `raw`, returns the kept rows as `Raw` (what the one pass writes before the end is known)."""
        self.rows += len(chunk)
        self._kinds(chunk, where)
        for col in self.features:
            if self.kinds.get(col) != "categorical":
                self.ids[col].add(chunk[col])  # before dropping, as in memory
        if self.labels is None:
            keep = kept_rows(chunk, self.used, self.data.target, self.data.missing, where)
        else:
            keep = kept_targets(self.cfg, chunk, self.features, self.names, where)
        if not keep.all():
            chunk = chunk[keep]
        train = ~val[keep]
        self.train_rows += int(train.sum())
        self.val_rows += int((~train).sum())
        if self.labels is None:
            codes, values = self.target.add(chunk[self.data.target], train)
        else:  # (rows, targets): each target's codes, and its values (NaN for a column of text)
            added = [labels.add(chunk[labels.target], train) for labels in self.labels]
            codes = np.stack([c for c, _ in added], axis=1)
            values = np.stack([v if v is not None else np.full(len(chunk), np.nan) for _, v in added], axis=1)
        picked = None if train.all() else np.flatnonzero(train)
        # each part's rows' places (None: every row), its arrays filled by column as the columns come
        places = {part: (None if mask.all() else picked if part == "train" else np.flatnonzero(mask))
                  for part, mask in (("train", train), ("validation", ~train)) if mask.any()} if raw else {}
        parts = {part: {"rows": cut(rows[keep], at), "codes": cut(codes, at),
                        "X": np.empty((len(self.features), len(codes) if at is None else len(at)), dtype=self.dtype)}
                 | ({} if values is None else {"values": cut(values, at)}) for part, at in places.items()}
        later = [] if "train" in parts else None  # numeric columns whose moments come from the raw rows

        def learn(i: int, col: str, series) -> None:
            if self.kinds.get(col) == "categorical":
                column = self._categorical(series, col, train)
                if parts:
                    column = column.astype(self.dtype)
                    column[column < 0] = np.nan
            else:
                column = self._numeric(series, col, train, where, picked, later is not None)
                if later is not None:
                    later.append((i, col))
            for part, at in places.items():
                if at is None:
                    parts[part]["X"][i] = column
                else:
                    np.take(column, at, out=parts[part]["X"][i], mode="clip")  # "raise" buffers `out`

        by_column(learn, [(i, col, chunk[col]) for i, col in enumerate(self.features)], len(chunk))
        if later:
            # sorted: the learners' threads append in any order, the moments' thread takes columns in one
            self._learn_later(parts["train"]["X"], sorted(later))
        return Raw(parts) if raw else None

    @property
    def scratch(self) -> Scratch:
        scratch = getattr(self.scratches, "scratch", None)
        if scratch is None:
            scratch = self.scratches.scratch = Scratch()
        return scratch

    def _learn_later(self, X: np.ndarray, columns: list) -> None:
        """The training rows' moments and samples of these numeric columns ((place in X, name)),
        learned from the chunk's raw training part (X: (features, rows), NaN where missing) in a
        thread of its own while the next chunk is read and learned from: chunk after chunk in
        the table's order, from the same values the column gave, so they are the ones learning
        them in `_numeric` would give, bit for bit. `settle` waits for them."""
        from concurrent.futures import ThreadPoolExecutor

        if self.later is None:
            self.later = (ThreadPoolExecutor(1, thread_name_prefix="nnctl-moments"), deque())
        pool, pending = self.later
        while len(pending) >= LATER_AHEAD:  # bounded: each holds a chunk's training rows
            pending.popleft().result()
        pending.append(pool.submit(self._learn_rows, X, columns))

    def _learn_rows(self, X: np.ndarray, columns: list) -> None:
        scratch = self.scratch
        for i, col in columns:
            row = X[i]
            missing = np.isnan(row)
            if missing.any():
                values = row[~missing].astype(np.float64)
            else:
                values = scratch.get("trained", len(row))
                np.copyto(values, row)
            self.moments[col].add(values, scratch)
            if col in self.samples:
                self.samples[col].add(values, scratch)

    def settle(self) -> None:
        """Waits for the moments learned in a thread (`_learn_later`); raises what it raised."""
        if self.later is not None:
            pool, pending = self.later
            self.later = None
            try:
                while pending:
                    pending.popleft().result()
            finally:
                pool.shutdown(cancel_futures=True)

    def _kinds(self, chunk, where: str) -> None:
        for col in self.features:
            column = chunk[col]
            if col in self.listed or _numeric_dtype(column) or not column.notna().any():
                if self.kinds.get(col) is None and _numeric_dtype(column) and column.notna().any():
                    self.kinds[col] = "numeric"
                continue
            if self.kinds.get(col) == "numeric":
                text = (column.notna() & ~column.map(is_number)).to_numpy()
                at = int(np.flatnonzero(text if text.any() else column.notna().to_numpy())[0])
                raise NnctlError(f"column '{col}' holds numbers, but data row {int(column.index[at]) + 1} has "
                                 f"{plain(column.iloc[at])}", where,
                                 "fix that value, or list the column in data.categorical to read it as categories")
            if self.kinds.get(col) is None:
                self._first_text(column, col, where)

    def _first_text(self, column, col: str, where: str) -> None:
        """The in-memory path's checks on a text column (columns.categorical_columns)."""
        if looks_like_decimal_commas(column):
            raise NnctlError(f"column '{col}' holds numbers written with a decimal comma "
                             f"(e.g. '{column.dropna().iloc[0]}')", where, "set data.decimal: \",\" to read them as numbers")
        if self.data.categorical != "auto":
            example = next((v for v in column.dropna() if not is_number(v)), column.dropna().iloc[0])
            raise NnctlError(f"column '{col}' is not numeric (e.g. '{example}')", where,
                             "list it in data.categorical to one-hot encode it (or `categorical: auto`), "
                             f"or leave it out (data.exclude: [{col}], or drop it from data.features)")
        self.kinds[col] = "categorical"

    def _numeric(self, column, col: str, train: np.ndarray, where: str, picked=None, later: bool = False) -> np.ndarray:
        """Learns the column's training moments (`later`: the caller has them learned from the
        raw training rows, `_learn_later`); returns its values as the dtype holds them (NaN
        where missing). A column without a missing or odd value takes the short way, given the
        training rows' places (`picked`; None: every row)."""
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)  # only read: may be pandas' own
        scratch, n = self.scratch, len(values)
        # the temporaries below live in memory reused from column to column (see Scratch): the
        # caller copies what it keeps of `held` before the next column
        held = values
        if self.dtype != np.float64:
            held = scratch.get("held", n, self.dtype)
            with np.errstate(over="ignore", invalid="ignore"):
                np.copyto(held, values, casting="unsafe")
        if np.isfinite(held).all():
            if self.data.missing == "mean":  # the fill value is the mean as read, in float64
                self.raw[col].add(values if picked is None else values[picked], scratch)
            if later:
                return held
            # the training rows in float64 once, for the moments and the sample alike
            trained = held if picked is None else \
                np.take(held, picked, out=scratch.get("picked", len(picked), held.dtype), mode="clip")
            if trained.dtype != np.float64:
                wide = scratch.get("trained", len(trained))
                np.copyto(wide, trained)
                trained = wide
            self.moments[col].add(trained, scratch)
            if col in self.samples:
                self.samples[col].add(trained, scratch)
            return held
        infinite = np.isinf(values)
        if infinite.any():
            row = int(column.index[int(np.flatnonzero(infinite)[0])])
            raise NnctlError(f"column '{col}' has an infinite value (data row {row + 1})", where,
                             "replace it with a finite number or leave the cell empty")
        present = ~np.isnan(values)
        if not np.isfinite(held[present]).all():
            raise NnctlError(f"column '{col}' has values too large for {self.dtype} "
                             f"(beyond ±{np.finfo(self.dtype).max:.3g})", where,
                             "rescale that column, or set training.dtype: float64")
        self.missing_train[col] += int((train & ~present).sum())
        self.raw[col].add(values[present & train])
        if later:
            return held
        self.moments[col].add(held[present & train].astype(np.float64))
        if col in self.samples:
            self.samples[col].add(held[present & train].astype(np.float64))
        return held

    def _categorical(self, column, col: str, train: np.ndarray) -> np.ndarray:
        """Learns the column's categories; returns each row's category code (first seen first,
        -1 when missing)."""
        import pandas as pd

        local, distinct = pd.factorize(column)
        names = [category_label(v) for v in distinct.tolist()]
        self.seen[col].update(names)
        code_of = self.codes[col]
        lookup = np.array([code_of.setdefault(name, len(code_of)) for name in names] + [-1], dtype=np.int64)
        if self.data.missing == "mean":
            counts = np.bincount(local[train & (local >= 0)], minlength=len(names))
            for name, n in zip(names, counts.tolist()):
                if n:
                    self.modes[col][name] = self.modes[col].get(name, 0) + n
        return lookup[local]

    # --- what the pass learned ------------------------------------------------------------

    def categorical(self) -> list:
        """The categorical columns, in the order the in-memory path lists them."""
        return self.listed or [c for c in self.features if self.kinds.get(c) == "categorical"]

    def categories(self) -> dict:
        return {col: sorted(self.seen[col]) for col in self.categorical()}

    def fill_values(self) -> dict:
        """missing: mean's fill values: the training mean of a number, the most frequent
        category (the first in sorted order among equals)."""
        fill = {}
        for col in self.features:
            if self.kinds.get(col) == "categorical":
                counts = self.modes[col]
                fill[col] = min(counts, key=lambda name: (-counts[name], name)) if counts else None
            else:
                fill[col] = self.raw[col].mean if self.raw[col].n else 0.0
        return fill

    def scaler(self, encoder, kind: str, dtype, fill: dict | None) -> dict:
        """encoding's fit_scaler result over the encoded training matrix, from the moments (or,
        for robust and quantile, from each numeric column's bounded sample)."""
        if kind in ("robust", "quantile"):
            return self._sampled_scaler(encoder, kind, dtype, fill)
        offset, scale, passthrough = [], [], []
        for col in encoder.features:
            width = len(encoder.categories[col]) if encoder._onehot_column(col) else 1
            stats = self.moments[col]
            if col not in encoder.categories and fill is not None:
                stats = stats.with_constant(float(dtype.type(fill[col])), self.missing_train[col])
            if kind == "standard" and self.train_rows:
                pair = (stats.mean, stats.std)
            elif kind == "minmax" and self.train_rows:
                pair = (stats.low, stats.high - stats.low)
            else:
                pair = (0.0, 1.0)
            offset += [pair[0]] * width
            scale += [pair[1]] * width
            passthrough += [col in encoder.categories] * width
        offset, scale, passthrough = np.array(offset), np.array(scale), np.array(passthrough, dtype=bool)
        with np.errstate(invalid="ignore"):
            scale = np.where(np.isfinite(scale) & (scale > 0) & ~passthrough, scale, 1.0)
            offset = np.where(passthrough | ~np.isfinite(offset), 0.0, offset)
        return {"kind": kind, "offset": offset.tolist(), "scale": scale.tolist()}

    def _sampled_scaler(self, encoder, kind: str, dtype, fill: dict | None) -> dict:
        """Each numeric column's sample (its own rows: only its quantiles matter), made one column
        at a time as scaling.scaler_from_columns asks for it, never side by side in one matrix."""
        inputs, passthrough = [], []  # per encoded input: its numeric column, or None
        for col in encoder.features:
            width = len(encoder.categories[col]) if encoder._onehot_column(col) else 1
            numeric = col not in encoder.categories
            inputs += [col if numeric else None] * width
            passthrough += [not numeric] * width
        numeric = [c for c in inputs if c is not None]
        rows = max([self._sample_length(c, fill) for c in numeric] + [1])

        def column(j: int) -> np.ndarray:
            col, sample = inputs[j], self.samples[inputs[j]]
            values = sample.as_trained(dtype, None if fill is None else fill[col], self.missing_train[col])
            # a shorter sample (fewer present values) is stretched over the rows by repeating it evenly
            return values[np.arange(rows) * len(values) // rows] if len(values) else np.zeros(rows)

        return scaler_from_columns(column, len(inputs), kind, np.array(passthrough, dtype=bool),
                                   empty=not self.train_rows)

    def _sample_length(self, col: str, fill: dict | None) -> int:
        sample = self.samples[col]
        return len(sample.with_constant(0.0, self.missing_train[col]) if fill is not None else sample.values)

    def column_warnings(self) -> list:
        notes = []
        for col in self.features:
            if self.kinds.get(col) == "categorical":
                notes += column_warnings(col, len(self.seen[col]), self.rows, True, False, self.data.embedding)
            elif self.ids[col].alive and self.rows:
                capped = self.ids[col].capped
                distinct = self.rows if capped else len(self.ids[col].seen)
                notes += column_warnings(col, distinct, self.rows, False, True, self.data.embedding,
                                         checked_rows=ID_TRACK_ROWS if capped else None)
        return notes

    def target_result(self) -> tuple:
        """(task, sorted classes or None, {class: rows} or None, target scaler or None)."""
        self.check_rows()
        task = self.data_task()
        return (task, *self.label_result(self.target, task))

    def check_rows(self) -> None:
        if self.rows and not self.train_rows + self.val_rows:
            raise NnctlError("no rows left after dropping rows with missing values", self.where)

    def label_result(self, labels: TargetLabels, task: str) -> tuple:
        """(sorted classes or None, {class: rows} or None, target scaler or None) of one target
        column, whose task is `task`."""
        target = labels.target
        if task == "classification":
            if labels.overflow:
                raise labels.too_many(self.where)
            counts = labels.label_counts()
            classes = sorted(counts)
            if len(classes) < 2:
                raise NnctlError(f"target column '{target}' has a single class ({plain(classes[0])}); "
                                 "classification needs two or more", self.where,
                                 "check data.target, or set model.task: regression")
            return classes, counts, None
        if labels.text or (labels.seen_bool and not labels.seen_numeric):
            raise NnctlError(f"target column '{target}' is not numeric, so it cannot be a regression target",
                             self.where, "set model.task: classification (or auto)")
        if labels.infinite:
            raise NnctlError(f"target column '{target}' has an infinite value", self.where)
        kind = target_setting(self.data)
        if kind == "log1p":
            check_log1p(np.array([labels.low if np.isfinite(labels.low) else 0.0]), target, self.where)
        scaler = None
        if kind in ("standard", "log1p"):
            moments = labels.moments if kind == "standard" else labels.log_moments
            scale = moments.std if moments.std > 0 else 1.0
            scaler = {"kind": kind, "offset": [moments.mean], "scale": [scale]}
        elif kind == "quantile":
            scaler = fit_target(labels.sample.values, "quantile")
        return None, None, scaler

    def data_task(self) -> str:
        """dataset's choice of task over the whole column (`columns.auto_task`)."""
        return self.model_task if self.model_task != "auto" else auto_task(*self.target_kind())

    def target_kind(self) -> tuple[str, int | None]:
        """(text | bool | int | float, distinct values or None when too many to count), as
        dataset.target_kind."""
        labels = self.target
        return labels.kind(), None if labels.overflow else len(labels.counts)
