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
from .scaling import apply_scaler, fit_scaler


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


FLOAT64_MAX = float(np.finfo(np.float64).max)
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

    def numeric_inputs(self) -> list[int]:
        """Input indices of the numeric columns (neither one-hot nor category codes)."""
        return np.flatnonzero(~self._onehot_mask()).tolist()

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
        self.scaler = fit_scaler(X, scale, self._onehot_mask())
        apply_scaler(X, self.scaler)
        self._check_range(X, where)
        return X

    def _onehot_mask(self) -> np.ndarray:
        mask = []
        for f in self.features:
            # one-hot and code columns pass the scaler by: offset 0, scale 1
            mask += [True] * len(self.categories[f]) if self._onehot_column(f) else [f in self.embedding]
        return np.array(mask, dtype=bool)

    def transform(self, df, dtype=np.float32, scaled=True, where="data", unknown: str | None = None) -> np.ndarray:
        """(rows, inputs) array of `df`'s feature columns, encoded and (by default) scaled.
        `unknown` (error | ignore) overrides the model's `unknown_category` for these rows:
        predict's --unknown-category."""
        unknown = unknown or self.unknown
        X = np.empty((len(df), len(self.inputs)), dtype=dtype)
        j = 0
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported below, by column
            numbers = self._finite_numbers(df)
            if numbers is not None:
                X[:] = numbers
            for col in self.features if numbers is None else ():
                if col in self.embedding:
                    X[:, j] = self._codes(df[col], col, where, unknown)
                    j += 1
                elif col in self.categories:
                    width = len(self.categories[col])
                    X[:, j:j + width] = self._onehot(df[col], col, where, dtype, unknown)
                    j += width
                else:
                    X[:, j] = self._numeric(df[col], col, where)
                    j += 1
            self._check_range(X, where)
            if scaled:
                apply_scaler(X, self.scaler)
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
        except OverflowError:  # an integer of hundreds of digits, from JSON or a CSV
            huge = [isinstance(v, int) and abs(v) > FLOAT64_MAX for v in column]  # a Python float: no overflow
            raise NnctlError(f"column '{col}' has a number beyond ±1.8e308, too large to read"
                             f"{_first_row(column, np.array(huge))}", where,
                             "fix that value, or leave the cell empty", column=col, row=_row_of(column, huge))
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
            if X.dtype.itemsize < 8:
                raise NnctlError(f"column '{col}' has values too large for {X.dtype} (beyond ±{limit:.3g})", where,
                                 "rescale that column, or set training.dtype: float64", column=col)
            # float64 read them all (an inf is refused as read): their scaling overflowed, as
            # minmax's (x - min) does for a column spanning -1e308 to 1e308
            raise NnctlError(f"column '{col}' has values too large for {X.dtype} once scaled (beyond ±{limit:.3g})",
                             where, "rescale that column, or set data.scale: standard or robust", column=col)

    def _onehot(self, column, col, where, dtype, unknown: str) -> np.ndarray:
        codes = self._codes(column, col, where, unknown)
        onehot = np.zeros((len(codes), len(self.categories[col])), dtype=dtype)
        rows = np.flatnonzero(codes < len(self.categories[col]))
        onehot[rows, codes[rows]] = 1
        return onehot

    def _codes(self, column, col, where, unknown_as: str | None = None) -> np.ndarray:
        """Each row's category index; n (the number of categories) for one training never saw,
        under `unknown_as` (default `unknown_category`) ignore: the all-zero one-hot row, the
        embedding table's last row, which is zero (nothing at training moves it)."""
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
            if (unknown_as or self.unknown) == "error":
                row = int(np.flatnonzero(unknown)[0])
                first = names[rows_of[row]] if rows_of[row] >= 0 else fill
                way = ("predict with --unknown-category ignore (serve: unknown_category \"ignore\")" if self.saved
                       else "train with data.unknown_category: ignore")
                raise NnctlError(f"column '{col}' has the category {plain(first)} that training never saw "
                                 f"(data row {int(column.index[row]) + 1})", where,
                                 f"known: {', '.join(cats[:10])}{' ...' if len(cats) > 10 else ''}; or {way}",
                                 column=col, row=int(column.index[row]))
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
