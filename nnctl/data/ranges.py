"""Inputs far outside what training saw: a network extrapolates there without a word (a diamond
31.8 mm wide, a body mass in kg where training had grams), so predict, evaluate and serve count
such rows per numeric column and say so.

The rule: the training part's [min, max] of a column, widened by RANGE_MARGIN times its width
on each side. A value v is far outside when

    v < min − m·(max − min)   or   v > max + m·(max − min),      m = RANGE_MARGIN

(for a column that was constant in training, any value off it by more than a millionth of its
size, or of 1 for a column of zeros, is). Missing values filled by the
model are not counted; categorical columns have their own check (unknown categories).

The model stores the ranges as `meta.ranges` ({column: [min, max]}); a model without them (from
an older nnctl) is not checked. The check runs on the model's scaled input matrix, with the
bounds scaled the same way, so it costs a comparison per cell and no second parse of the table.
"""
from __future__ import annotations

import numpy as np

from ..errors import NnctlError

RANGE_MARGIN = 0.5  # m above: how far beyond the training range, in training ranges, is "far"
STRICT_FLAG = "--strict-range"


def fit_ranges(X: np.ndarray, encoder) -> dict:
    """{column: [min, max]} of each numeric feature over the unscaled training matrix X (rows,
    inputs), as the encoder lays its inputs out; empty without rows."""
    if not len(X):
        return {}
    index = _numeric_inputs(encoder)
    low, high = X[:, list(index.values())].min(axis=0), X[:, list(index.values())].max(axis=0)
    return {col: [shortest(lo, X.dtype), shortest(hi, X.dtype)] for col, lo, hi in zip(index, low, high)}


def shortest(value: float, dtype) -> float:
    """`value` as the dtype holds it, written with the fewest digits that read back the same
    (3.702, not float32's 3.7019999027252197)."""
    return float(str(np.dtype(dtype).type(value)))


def _numeric_inputs(encoder) -> dict:
    """{numeric feature: its input column's index}: a numeric feature is one input, named after it."""
    positions = {name: j for j, name in enumerate(encoder.inputs)}
    return {col: positions[col] for col in encoder.features if col not in encoder.categories}


class RangeCheck:
    """Counts, over the chunks a table is read in, the rows of each numeric column that lie far
    outside the training range (see the module docstring). `add` takes the model's scaled inputs;
    `strict` makes the first such value an NnctlError naming the column and its row."""

    def __init__(self, encoder, where: str = "data", strict: bool = False):
        self.where, self.strict, self.rows = where, strict, 0
        bounds = getattr(encoder, "_range_bounds", None)
        if bounds is None:  # the same for every request a served model answers: worked out once
            bounds = encoder._range_bounds = _Bounds(encoder)
        self.columns, self.ranges, self.inputs = bounds.columns, bounds.ranges, bounds.inputs
        self.offset, self.scale, self.low, self.high = bounds.offset, bounds.scale, bounds.low, bounds.high
        self.counts = np.zeros(len(self.columns), dtype=np.int64)
        self.first: dict[int, tuple[int, float]] = {}  # column -> (0-based row, value in its units)

    def add(self, X: np.ndarray, rows=None) -> None:
        """X: (rows, inputs) scaled, as the model takes it; `rows`: each row's 0-based number in
        the table (a chunk's index), for the messages."""
        self.rows += len(X)
        if not len(self.columns) or not len(X):
            return
        values = X[:, self.inputs]
        outside = (values < self.low) | (values > self.high)
        if not outside.any():
            return
        counts = outside.sum(axis=0)
        self.counts += counts
        for k in map(int, np.flatnonzero(counts)):
            if k in self.first:
                continue
            i = int(np.flatnonzero(outside[:, k])[0])
            row = int(rows[i]) if rows is not None else i
            self.first[k] = (row, self._unscaled(k, float(values[i, k]), X.dtype))
        if self.strict:
            k = int(np.flatnonzero(counts)[0])
            raise NnctlError(self.message(k), self.where, "check that column's units and values, or leave out "
                             f"{STRICT_FLAG} to predict anyway (a warning then counts such rows)",
                             column=self.columns[k], row=self.first[k][0])

    def _unscaled(self, k: int, value: float, dtype) -> float:
        """A scaled input back in its column's units, rounded to what the scaling kept: the float32
        round trip turns a 0 into -7.7e-08 when the training range is 4.3 to 7.7."""
        v = shortest(value * self.scale[k] + self.offset[k], dtype)
        size = max(abs(self.offset[k]), float(np.abs(self.ranges[k]).max()), abs(v), 1e-300)
        quantum = 10.0 ** np.floor(np.log10(size * float(np.finfo(dtype).eps) * 8))
        return float(f"{round(v / quantum) * quantum:.12g}")

    def message(self, k: int) -> str:
        lo, hi = self.ranges[k]
        row, value = self.first[k]
        n = int(self.counts[k])
        return (f"column '{self.columns[k]}': {n:,} row{'s' if n != 1 else ''} far outside what training saw "
                f"(training range {lo:.6g} to {hi:.6g}; e.g. {value:.6g} in data row {row + 1})")

    def warnings(self) -> list[str]:
        """One line per column with rows far outside, in the model's column order."""
        return [self.message(int(k)) for k in np.flatnonzero(self.counts)]

    def summary(self) -> list[dict]:
        """The same as data: [{column, rows, min, max, first_row, example}] (first_row 1-based)."""
        return [{"column": self.columns[k], "rows": int(self.counts[k]), "min": float(self.ranges[k, 0]),
                 "max": float(self.ranges[k, 1]), "first_row": self.first[k][0] + 1, "example": self.first[k][1]}
                for k in map(int, np.flatnonzero(self.counts))]


class _Bounds:
    """An encoder's checked columns and their far-outside bounds in its scaled inputs' units."""

    def __init__(self, encoder):
        ranges = dict(getattr(encoder, "ranges", None) or {})
        index = _numeric_inputs(encoder)
        self.columns = [c for c in index if c in ranges]
        self.ranges = np.array([ranges[c] for c in self.columns], dtype=np.float64).reshape(-1, 2)
        self.inputs = np.array([index[c] for c in self.columns], dtype=np.intp)
        self.offset = np.asarray(encoder.scaler["offset"], dtype=np.float64)[self.inputs]
        self.scale = np.asarray(encoder.scaler["scale"], dtype=np.float64)[self.inputs]
        # a column constant in training gets a sliver of width: its float32 inputs are not exactly
        # the float64 constant, and only a value that really differs should count
        width = np.maximum(self.ranges[:, 1] - self.ranges[:, 0],
                           1e-6 * np.maximum(np.abs(self.ranges).max(axis=1, initial=0.0), 1.0))
        low, high = self.ranges[:, 0] - RANGE_MARGIN * width, self.ranges[:, 1] + RANGE_MARGIN * width
        self.low, self.high = (low - self.offset) / self.scale, (high - self.offset) / self.scale
