"""Turning table columns into the network's input matrix, the same way at training and predict.

A `FeatureEncoder` is fit on the training rows: it remembers the feature columns in order, the
categories of one-hot encoded and embedded columns (`embedding`: column -> width; such a column
is one input holding its category's code), the fill values for missing numbers (`missing: mean`) and
the scaler. `transform` builds one contiguous (rows, inputs) array and scales it in place.
Everything it knows round-trips through `model.npz`'s meta as plain JSON.
"""
from __future__ import annotations

import numpy as np

from ..errors import NnctlError, plain


def category_strings(column) -> np.ndarray:
    """Category values as strings (object array); missing values stay None."""
    codes, names = _factorized(column)
    return np.append(np.array(names, dtype=object), None)[codes]


def _factorized(column) -> tuple[np.ndarray, list]:
    """(each row's index into `names`, -1 where missing; the distinct values as category
    names). Labelling each distinct value once, not each row, keeps a long column fast."""
    import pandas as pd

    # a text column read from Parquet or as pandas' arrow-backed strings factorizes in arrow,
    # without making a Python object of every row first
    values = column if isinstance(column, pd.Series) and pd.api.types.is_string_dtype(column.dtype) \
        and not pd.api.types.is_object_dtype(column.dtype) else column.to_numpy(dtype=object)
    codes, uniques = pd.factorize(values)
    return codes, [category_label(v) for v in uniques]


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and v != v)


def category_label(v) -> str:
    """A value as a category or class name: 3.0 read from a float column and 3 from an int
    column are the same category."""
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return str(v).strip()


YAML_TRUE, YAML_FALSE = {"true", "yes", "y", "on"}, {"false", "no", "n", "off"}


def label_index(value, labels) -> int | None:
    """Where `value` (from a config or a flag) is among class `labels`, matched as text: 1 and
    '1' are the same label. YAML reads `yes` as true, so a boolean also matches those words."""
    wanted = {category_label(value)}
    if isinstance(value, bool):
        wanted |= YAML_TRUE if value else YAML_FALSE
    names = [category_label(c) for c in labels]
    exact = [i for i, name in enumerate(names) if name in wanted]
    if not exact and isinstance(value, bool):
        exact = [i for i, name in enumerate(names) if name.lower() in wanted]
    return exact[0] if exact else None


class FeatureEncoder:
    def __init__(self, features, categories=None, fill=None, scaler=None, unknown="error", decimal=".",
                 saved=False, embedding=None, ranges=None):
        self.features = list(features)
        self.categories = dict(categories or {})  # column -> list of category strings
        self.fill = fill  # column -> value, or None (missing values are an error)
        self.scaler = scaler  # {"kind", "offset", "scale"} over the encoded inputs
        self.unknown = unknown  # error | ignore
        self.decimal = decimal  # the decimal mark of the files it was fit on
        # read back from a saved model: hints then speak of the model and the CSV, not a config
        self.saved = saved
        # column -> width of its learned embedding: the column is one input, its category's code
        self.embedding = dict(embedding or {})
        # numeric column -> [min, max] of the training part, for the range warnings (`ranges.py`);
        # empty for a model from before nnctl stored them
        self.ranges = dict(ranges or {})

    @property
    def inputs(self) -> list[str]:
        """Names of the encoded input columns: a categorical column becomes `col=category`."""
        names = []
        for f in self.features:
            names += [f"{f}={c}" for c in self.categories[f]] if self._onehot_column(f) else [f]
        return names

    def _onehot_column(self, column) -> bool:
        return column in self.categories and column not in self.embedding

    def code_columns(self) -> list[tuple[int, str]]:
        """(input index, column) of each embedded column's code input."""
        return [(j, name) for j, name in enumerate(self.inputs) if name in self.embedding]

    def fit(self, df, categorical, scale: str, missing: str, dtype, where: str = "data",
            categories_from=None, embedding=None) -> np.ndarray:
        """Learn fill values and scaler from the training rows `df`, and the categories from
        `categories_from` (by default `df` too); `embedding` ({column: width} or auto) picks the
        categorical columns to embed. Returns the encoded, scaled training matrix."""
        for col in categorical:
            source = df if categories_from is None else categories_from
            seen = {v for v in category_strings(source[col]) if v is not None}
            self.categories[col] = sorted(seen)
        self.embedding = embedding_widths(embedding or {}, self.categories)
        if missing == "mean":
            self.fill = {}
            for col in self.features:
                if col in self.categories:
                    strings = [v for v in category_strings(df[col]) if v is not None]
                    self.fill[col] = max(set(strings), key=strings.count) if strings else None
                else:
                    mean = float(np.nanmean(df[col].to_numpy(dtype=np.float64))) if df[col].notna().any() else 0.0
                    self.fill[col] = mean
        X = self.transform(df, dtype, scaled=False, where=where)
        from .ranges import fit_ranges

        self.ranges = fit_ranges(X, self)
        self.scaler = _fit_scaler(X, scale, self._onehot_mask())
        _apply_scaler(X, self.scaler)
        self._check_range(X, where)
        return X

    def _onehot_mask(self) -> np.ndarray:
        mask = []
        for f in self.features:
            # one-hot and code columns pass the scaler by: offset 0, scale 1
            mask += [True] * len(self.categories[f]) if self._onehot_column(f) else [f in self.embedding]
        return np.array(mask, dtype=bool)

    def transform(self, df, dtype=np.float32, scaled=True, where="data") -> np.ndarray:
        """(rows, inputs) array of `df`'s feature columns, encoded and (by default) scaled."""
        X = np.empty((len(df), len(self.inputs)), dtype=dtype)
        j = 0
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported below, by column
            numbers = self._finite_numbers(df)
            if numbers is not None:
                X[:] = numbers
            for col in self.features if numbers is None else ():
                if col in self.embedding:
                    X[:, j] = self._codes(df[col], col, where)
                    j += 1
                elif col in self.categories:
                    width = len(self.categories[col])
                    X[:, j:j + width] = self._onehot(df[col], col, where, dtype)
                    j += width
                else:
                    X[:, j] = self._numeric(df[col], col, where)
                    j += 1
            self._check_range(X, where)
            if scaled:
                _apply_scaler(X, self.scaler)
                self._check_range(X, where)
        return X

    def _finite_numbers(self, df) -> np.ndarray | None:
        """The whole table as one float64 array when it is just the features, all numeric
        columns of finite numbers (predict's and serve's usual case), else None. The same values
        as `_numeric` per column, which costs a pandas Series per column: more than the model
        takes on a one-row request. Anything else (missing, text, categories) goes by column."""
        if self.categories or list(df.columns) != self.features:
            return None
        values = df.to_numpy()
        if values.dtype.kind not in "fiu":
            return None
        values = values.astype(np.float64, copy=False)
        return values if np.isfinite(values).all() else None

    def _numeric(self, column, col, where) -> np.ndarray:
        try:
            values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError):
            odd = [not _missing(v) and not is_number(v) for v in column]
            example = column.iloc[odd.index(True)] if True in odd else None
            hint = ("the model takes it as a number: fix the values in the CSV" if self.saved else
                    "list it in data.categorical to one-hot encode it, or fix the values")
            if isinstance(example, str) and "," in example and is_number(example.replace(",", ".")):
                hint = ("the model was trained on decimal points: write 25.24, not 25,24" if self.saved else
                        "set data.decimal: \",\" to read decimal commas")
            raise NnctlError(f"column '{col}' is not numeric (e.g. {plain(example)})", where, hint, column=col,
                             row=_row_of(column, odd))
        bad = ~np.isfinite(values)
        if bad.any():
            nan = np.isnan(values)
            if (bad & ~nan).any():
                row = int(np.flatnonzero(bad & ~nan)[0])
                raise NnctlError(f"column '{col}' has an infinite value (data row {row + 1})", where,
                                 "replace it with a finite number or leave the cell empty", column=col,
                                 row=int(column.index[row]))
            if self.fill is None or self.fill.get(col) is None:
                raise NnctlError(f"column '{col}' has {int(nan.sum())} missing value(s)"
                                 f"{_first_row(column, nan)}", where,
                                 "fill them in, or train with data.missing: mean (the model then fills them itself)",
                                 column=col, row=_row_of(column, nan))
            values = np.where(nan, self.fill[col], values)
        return values

    def _check_range(self, X: np.ndarray, where: str) -> None:
        """Numbers beyond the dtype's range (1e300 in float32) would turn into inf silently."""
        limit = np.finfo(X.dtype).max
        if X.dtype.itemsize < 8:
            # a float64 sum of float32 values cannot overflow, so it is finite exactly when every
            # value is, and it needs no boolean copy of X
            bad = ~np.isfinite(X.sum(axis=0, dtype=np.float64))
        else:
            bad = ~np.isfinite(X).all(axis=0)
        if bad.any():
            col = self.inputs[int(np.flatnonzero(bad)[0])]
            raise NnctlError(f"column '{col}' has values too large for {X.dtype} (beyond ±{limit:.3g})", where,
                             "rescale that column, or set training.dtype: float64", column=col)

    def _onehot(self, column, col, where, dtype) -> np.ndarray:
        codes = self._codes(column, col, where)
        onehot = np.zeros((len(codes), len(self.categories[col])), dtype=dtype)
        rows = np.flatnonzero(codes < len(self.categories[col]))
        onehot[rows, codes[rows]] = 1
        return onehot

    def _codes(self, column, col, where) -> np.ndarray:
        """Each row's category index; n (the number of categories) for one training never saw,
        under `unknown_category: ignore`."""
        cats = self.categories[col]
        index = {c: i for i, c in enumerate(cats)}
        rows_of, names = _factorized(column)
        fill = self.fill.get(col) if self.fill is not None else None
        # the last entry is a missing value's: its fill's category, or unknown (-1) without one
        per_name = np.array([index.get(v, -1) for v in names] + [index.get(fill, -1) if fill is not None else -1],
                            dtype=np.int64)
        codes = per_name[rows_of]
        unknown = codes < 0
        if unknown.any():
            missing = rows_of < 0
            if missing.any() and fill is None:
                raise NnctlError(f"column '{col}' has {int(missing.sum())} missing value(s)"
                                 f"{_first_row(column, missing)}", where,
                                 "fill them in, or train with data.missing: mean (the model then fills them itself)",
                                 column=col, row=_row_of(column, missing))
            if self.unknown == "error":
                row = int(np.flatnonzero(unknown)[0])
                first = names[rows_of[row]] if rows_of[row] >= 0 else fill
                raise NnctlError(f"column '{col}' has the category '{first}' that training never saw "
                                 f"(data row {int(column.index[row]) + 1})", where,
                                 f"known: {', '.join(cats[:10])}{' ...' if len(cats) > 10 else ''}; "
                                 "or train with data.unknown_category: ignore", column=col, row=int(column.index[row]))
            codes[unknown] = len(cats)
        return codes

    def to_meta(self) -> dict:
        return {"features": self.features, "categories": self.categories, "fill": self.fill,
                "scaler": self.scaler, "unknown_category": self.unknown, "decimal": self.decimal,
                "embedding": self.embedding, **({"ranges": self.ranges} if self.ranges else {})}

    @classmethod
    def from_meta(cls, meta: dict, saved: bool = True) -> "FeatureEncoder":
        return cls(meta["features"], meta.get("categories") or {}, meta.get("fill"), meta["scaler"],
                   meta.get("unknown_category", "error"), meta.get("decimal", "."), saved=saved,
                   embedding=meta.get("embedding"), ranges=meta.get("ranges"))


AUTO_EMBEDDING_MIN = 10  # `embedding: auto` embeds categorical columns of more categories than this


def auto_width(categories: int) -> int:
    """fastai's rule of thumb for an embedding's width (`emb_sz_rule`): min(600, round(1.6 · n^0.56))."""
    return int(min(600, round(1.6 * categories ** 0.56)))


def embedding_widths(setting, categories: dict) -> dict:
    """{column: width} for the encoder: the config's mapping, or under `auto` every categorical
    column of more than AUTO_EMBEDDING_MIN categories at fastai's width rule."""
    if setting == "auto":
        return {col: auto_width(len(cats)) for col, cats in categories.items() if len(cats) > AUTO_EMBEDDING_MIN}
    return dict(setting)


def _first_row(column, mask: np.ndarray) -> str:
    """' (first in data row R)': the row as the file counts them (chunks keep their place, so
    the column's index is the row's position in the whole table)."""
    return f" (first in data row {int(column.index[int(np.flatnonzero(mask)[0])]) + 1})"


def _row_of(column, mask) -> int | None:
    """The table row (0-based, as the column's index counts) of the first True in `mask`."""
    hits = np.flatnonzero(np.asarray(mask, dtype=bool))
    return int(column.index[int(hits[0])]) if len(hits) else None


def is_number(v) -> bool:
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return False


def _fit_scaler(X: np.ndarray, kind: str, passthrough: np.ndarray) -> dict:
    """offset/scale per column so that (x - offset) / scale is standardized or in [0, 1];
    one-hot columns and constant columns pass through unscaled."""
    with np.errstate(over="ignore", invalid="ignore"):
        offset, scale = _scaler_stats(X, kind)
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
    offset = np.where(passthrough | ~np.isfinite(offset), 0.0, offset)
    scale = np.where(passthrough, 1.0, scale)
    return {"kind": kind, "offset": offset.tolist(), "scale": scale.tolist()}


STATS_ROWS = 4096  # rows per float64 chunk when computing the standard deviation


def _scaler_stats(X: np.ndarray, kind: str):
    """Per-column (offset, scale) in float64, without a float64 copy of X: the mean is a
    float64-accumulated sum, the standard deviation two passes over row chunks: as accurate as
    `X.astype(float64).std(axis=0)`, at the cost of one chunk of memory instead of a copy."""
    if kind == "standard" and len(X):
        mean = X.sum(axis=0, dtype=np.float64) / len(X)
        squares = np.zeros(X.shape[1])
        for start in range(0, len(X), STATS_ROWS):
            d = X[start:start + STATS_ROWS].astype(np.float64) - mean
            squares += np.einsum("ij,ij->j", d, d)
        return mean, np.sqrt(squares / len(X))
    if kind == "minmax" and len(X):
        low, high = X.min(axis=0).astype(np.float64), X.max(axis=0).astype(np.float64)
        return low, high - low
    return np.zeros(X.shape[1]), np.ones(X.shape[1])


def _apply_scaler(X: np.ndarray, scaler: dict) -> None:
    X -= np.asarray(scaler["offset"], dtype=X.dtype)
    X /= np.asarray(scaler["scale"], dtype=X.dtype)


def fit_target_scaler(y: np.ndarray) -> dict:
    """Standardize a regression target: (y - offset) / scale; the network's output maps back as
    o * scale + offset."""
    offset, scale = y.astype(np.float64).mean(axis=0), y.astype(np.float64).std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    return {"kind": "standard", "offset": offset.tolist(), "scale": scale.tolist()}
