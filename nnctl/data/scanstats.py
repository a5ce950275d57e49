"""What the first pass over a large table keeps per column, chunk by chunk, in bounded memory:
moments merged across chunks, distinct values while they may still make an ID, and the
target's labels with their counts."""
from __future__ import annotations

import math

import numpy as np

from ..errors import NnctlError
from .encoding import category_label
from .scaling import SAMPLE_ROWS

ID_TRACK_ROWS = 1 << 20  # an integer column is checked for being an ID over at most this many rows
TARGET_DISTINCT_CAP = 100_000  # distinct target values counted; beyond, only a regression is possible


class Scratch:
    """Arrays a pass reuses from chunk to chunk for its temporaries, by name: a fresh array of
    a few MB a column comes from the kernel as new pages each time, and zeroing and mapping
    them cost the first pass more than the arithmetic done in them."""

    def __init__(self):
        self.arrays: dict = {}

    def get(self, name: str, n: int, dtype=np.float64) -> np.ndarray:
        """An uninitialized (n,) array of `dtype`, the same memory at each call with that name."""
        array = self.arrays.get(name)
        if array is None or len(array) < n or array.dtype != dtype:
            array = self.arrays[name] = np.empty(n, dtype=dtype)
        return array[:n]

    def steps(self, n: int) -> np.ndarray:
        """1.0, 2.0, ... n as float64, made once."""
        array = self.arrays.get("steps")
        if array is None or len(array) < n:
            array = self.arrays["steps"] = np.arange(1, n + 1, dtype=np.float64)
        return array[:n]


class Moments:
    """Count, mean, sum of squared deviations (M2), minimum and maximum of a column, merged
    chunk by chunk in float64 with Chan et al.'s update, which stays accurate where a running
    sum of squares would cancel. A column with values near float64's limit (1e308) would
    overflow the squares into an inf scale: its moments are then kept on values / `unit`, a
    power of two above its largest value, as scaling.fit_target does in memory (exact for
    the rest: a power of two scales without rounding)."""

    def __init__(self):
        self.n, self._mean, self._m2, self.unit = 0, 0.0, 0.0, 1.0
        self.low, self.high = math.inf, -math.inf

    @property
    def mean(self) -> float:
        return self._mean * self.unit

    @property
    def m2(self) -> float:
        with np.errstate(over="ignore"):
            return float(np.float64(self._m2) * self.unit * self.unit)

    def add(self, values: np.ndarray, scratch: Scratch | None = None) -> None:
        """values: (rows,) float64, no NaN."""
        if len(values):
            low, high = float(values.min()), float(values.max())
            self.low, self.high = min(self.low, low), max(self.high, high)
            if self._rescale(max(-low, high)):
                values = values / self.unit
            mean = float(values.mean())
            d = np.subtract(values, mean, out=None if scratch is None else scratch.get("deviations", len(values)))
            # einsum, not a BLAS dot: one vector is too little work to wake BLAS's threads for
            self._merge(len(values), mean, float(np.einsum("i,i->", d, d)))

    def _rescale(self, size: float) -> bool:
        """Whether values as large as `size` are kept on values / unit (unit raised to fit them)."""
        if not (size > LARGE and math.isfinite(size)):
            return self.unit != 1.0
        unit = math.ldexp(1.0, math.frexp(size)[1] - 1)  # size / unit is in [1, 2): 2**1024 is no float
        if unit > self.unit:
            shrink = self.unit / unit
            self._mean, self._m2, self.unit = self._mean * shrink, self._m2 * shrink * shrink, unit
        return True

    def _merge(self, n: int, mean: float, m2: float) -> None:
        """Merges n values of (mean, M2), both already on the unit's scale."""
        total = self.n + n
        if total == 0:
            return
        delta = mean - self._mean
        self._mean += delta * n / total
        self._m2 += m2 + delta * delta * self.n * n / total
        self.n = total

    def with_constant(self, value: float, count: int) -> "Moments":
        """These moments with `count` more rows of `value` (a filled-in missing value)."""
        out = Moments()
        out.n, out._mean, out._m2, out.unit = self.n, self._mean, self._m2, self.unit
        out.low, out.high = self.low, self.high
        if count:
            out._merge(count, value / out.unit if out._rescale(abs(value)) else value, 0.0)
            out.low, out.high = min(out.low, value), max(out.high, value)
        return out

    @property
    def std(self) -> float:
        return math.sqrt(self._m2 / self.n) * self.unit if self.n else 0.0


LARGE = 2.0 ** 400  # beyond, a column's squares could overflow: its moments are kept on a smaller scale


# the numeric columns' samples together take at most this share of the memory budget (float64
# values): 60 columns of SAMPLE_ROWS are 48 MB, which alone broke a 100 MB budget
SAMPLE_SHARE = 8
MIN_SAMPLE_ROWS = 10_000  # quartiles to about 1 % of the spread even under a tiny budget


def sample_rows(columns: int) -> int:
    """Rows each of `columns` bounded samples keeps: SAMPLE_ROWS, fewer where the budget
    (NNCTL_MEMORY_LIMIT) cannot hold that many for every column."""
    from ..resources import memory_budget

    affordable = memory_budget() // SAMPLE_SHARE // (8 * max(columns, 1))
    return int(min(max(affordable, MIN_SAMPLE_ROWS), SAMPLE_ROWS))


class Reservoir:
    """A uniform sample of at most `size` values of a column seen chunk by chunk (Algorithm R,
    one chunk at a time): what robust and quantile scaling are fit on when the table is streamed.
    Seeded, so the same table gives the same sample."""

    def __init__(self, size: int = SAMPLE_ROWS, seed: int = 0):
        self.size, self.seen = size, 0
        self.values = np.empty(0)
        self.rng = np.random.default_rng(seed)

    def add(self, values: np.ndarray, scratch: Scratch | None = None) -> None:
        """values: (rows,) float64, no NaN."""
        room = self.size - len(self.values)
        if room > 0:
            self.values = np.concatenate([self.values, values[:room]])
            self.seen += min(room, len(values))
            values = values[room:]
        if not len(values):
            return
        # value i is the (seen + i + 1)-th: it replaces a random slot with probability size / that
        # (its draw, uniform below that count, falls below size); later values overwrite earlier
        # ones in the same slot, as one at a time would. The draws scale one uniform array:
        # integers() with a bound per value took 8 times as long, most of the first pass's own work
        scratch = scratch or Scratch()
        n = len(values)
        draws = self.rng.random(out=scratch.get("draws", n))
        # a value can only be kept where its draw times the smallest count is below size: a
        # bound a little above that picks the few candidates in one comparison, and only they
        # are multiplied by their counts (the same products, so the same sample)
        bound = self.size / (self.seen + 1) * (1 + 1e-9)
        candidates = np.flatnonzero(np.less(draws, bound, out=scratch.get("candidates", n, bool)))
        slots = draws[candidates] * (candidates + (self.seen + 1.0))  # below size exactly where its whole part is
        taken = slots < self.size
        self.values[slots[taken].astype(np.int64)] = values[candidates[taken]]
        self.seen += len(values)

    def with_constant(self, value: float, count: int) -> np.ndarray:
        """The sample with `count` rows of `value` (filled-in missing values) in their share."""
        total = self.seen + count
        extra = int(round(len(self.values) * count / self.seen)) if self.seen else min(count, self.size)
        return np.concatenate([self.values, np.full(extra if total else 0, value)])

    def as_trained(self, dtype, fill: float | None = None, missing: int = 0) -> np.ndarray:
        """The sample as training holds the column, what robust and quantile are fit on: its
        `missing` rows filled with `fill` in their share (missing: mean; None: left out), each
        value as `dtype` holds it, in float64."""
        dtype = np.dtype(dtype)
        values = self.values if fill is None else self.with_constant(float(dtype.type(fill)), missing)
        return values.astype(dtype).astype(np.float64)


class DistinctInts:
    """Whether an integer column has a different value in every row so far (an ID), checked
    exactly over its first ID_TRACK_ROWS rows; `seen` is a sorted array of its values."""

    def __init__(self):
        self.seen, self.alive, self.capped = np.empty(0, dtype=np.int64), True, False

    def add(self, column) -> None:
        import pandas as pd

        if not self.alive or self.capped:
            return
        if not pd.api.types.is_integer_dtype(column) or pd.api.types.is_bool_dtype(column):
            self.alive = False
            return
        values = np.unique(column.to_numpy(dtype=np.int64))
        if len(values) < len(column) or np.isin(values, self.seen, assume_unique=True).any():
            self.alive = False
            return
        self.seen = np.union1d(self.seen, values)
        if len(self.seen) >= ID_TRACK_ROWS:
            self.capped, self.seen = True, np.empty(0, dtype=np.int64)


class TargetLabels:
    """The target column's distinct values and how many rows have each (kept rows only), and
    what kind of column it is across chunks: text as soon as one chunk is text, as a whole
    file read at once would be."""

    def __init__(self, target: str, sampled: bool = True, logged: bool = True):
        self.target, self.logged = target, logged
        self.counts: dict = {}
        self.code_of: dict = {}  # label as counted -> its code in the rows this pass writes (first seen first)
        self.text = self.seen_bool = self.seen_numeric = self.overflow = self.infinite = False
        self.whole = True
        self.moments = Moments()  # of the training rows: the regression target's scaler
        self.log_moments = Moments()  # of log1p of them: data.target_transform: log1p (when `logged`)
        # a bounded sample of them, for data.target_transform: quantile (None: not asked for)
        self.sample = Reservoir() if sampled else None
        self.low = math.inf

    def add(self, column, train: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Counts a chunk's kept rows; returns (each row's label code, -1 once there are too many
        labels to be classes; its value as float64, or None for a column that is not numbers):
        what the shards hold until the classes, or the target's scaling, are known."""
        import pandas as pd

        if pd.api.types.is_bool_dtype(column):
            values, self.seen_bool = column.to_numpy(dtype=bool), True
        elif pd.api.types.is_numeric_dtype(column):
            values = column.to_numpy(dtype=np.float64)
            self.seen_numeric = True
            self.infinite = self.infinite or bool(np.isinf(values).any())
            finite = values[np.isfinite(values)]
            self.whole = self.whole and bool(np.all(np.mod(finite, 1) == 0) and np.all(np.abs(finite) < 2**53))
            trained = values[train]
            self.moments.add(trained)
            if self.sample is not None:
                self.sample.add(trained[np.isfinite(trained)])
            if len(values):
                self.low = min(self.low, float(np.min(values)))
            if len(trained) and self.logged:
                with np.errstate(invalid="ignore", divide="ignore"):
                    self.log_moments.add(np.log1p(trained))
        else:
            self.text, values = True, np.array([str(v).strip() for v in column], dtype=object)
        return self._count(values), values if values.dtype == np.float64 else None

    def _count(self, values: np.ndarray) -> np.ndarray:
        if self.overflow or not len(values):
            return np.full(len(values), -1, dtype=np.int64)
        labels, inverse, counts = _distinct(values)
        codes = np.empty(len(labels), dtype=np.int64)
        for j, (label, n) in enumerate(zip(labels.tolist(), counts.tolist())):
            self.counts[label] = self.counts.get(label, 0) + n
            codes[j] = self.code_of.setdefault(label, len(self.code_of))
        if len(self.counts) > TARGET_DISTINCT_CAP:
            self.overflow, self.counts, self.code_of = True, {}, {}
            return np.full(len(values), -1, dtype=np.int64)
        return codes[inverse.reshape(-1)]

    def class_lookup(self, classes: list) -> np.ndarray:
        """(codes,) int64: each label code's index in `classes` (the sorted classes)."""
        kind, index = self.kind(), {c: i for i, c in enumerate(classes)}
        lookup = np.empty(len(self.code_of), dtype=np.int64)
        for label, code in self.code_of.items():
            lookup[code] = index[label_of(label, kind)]
        return lookup

    def kind(self) -> str:
        """How labels are compared: text | bool | int | float (as dataset.encode_labels reads
        the whole column)."""
        if self.text:
            return "text"
        if self.seen_bool and not self.seen_numeric:
            return "bool"
        return "int" if self.whole else "float"

    def label_counts(self) -> dict:
        """{label: rows}, labels in the kind's form (text labels as category names)."""
        kind, out = self.kind(), {}
        for label, n in self.counts.items():
            key = label_of(label, kind)
            out[key] = out.get(key, 0) + n
        return out

    def too_many(self, where: str) -> NnctlError:
        return NnctlError(f"target column '{self.target}' has more than {TARGET_DISTINCT_CAP} distinct values, "
                          "too many to be classes", where, "set model.task: regression (or auto)")


SMALL_RANGE = 4096  # whole-number labels within this range are counted by bincount, not sorted


def _distinct(values: np.ndarray) -> tuple:
    """np.unique(values, return_inverse=True, return_counts=True), with whole numbers of a small
    range (the usual class labels 0..k) counted without sorting."""
    if values.dtype == np.float64 and len(values):
        low, high = values.min(), values.max()
        with np.errstate(over="ignore"):  # values near ±1e308: their span is inf, not a small range
            small = high - low < SMALL_RANGE
        if small:
            ints = values.astype(np.int64)
            if (ints == values).all():
                counts = np.bincount(ints - int(low))
                present = np.flatnonzero(counts)
                position = np.zeros(len(counts), dtype=np.int64)
                position[present] = np.arange(len(present))
                return (present + int(low)).astype(np.float64), position[ints - int(low)], counts[present]
    return np.unique(values.astype(str) if values.dtype == object else values, return_inverse=True,
                     return_counts=True)


def label_of(value, kind: str):
    """One label in the form `kind` compares labels (see TargetLabels.kind)."""
    if kind == "text":
        return value if isinstance(value, str) else category_label(value)
    if kind == "bool":
        return bool(value)
    return int(value) if kind == "int" else float(value)


def labels_as(column, kind: str) -> np.ndarray:
    """A chunk's target values in the form `kind` compares labels, as an array."""
    import pandas as pd

    if kind == "text":
        if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            return np.array([category_label(v) for v in column.to_numpy(dtype=np.float64)], dtype=object)
        return np.array([str(v).strip() for v in column], dtype=object)
    if kind == "bool":
        return column.to_numpy(dtype=bool)
    values = column.to_numpy(dtype=np.float64)
    return values.astype(np.int64) if kind == "int" else values
