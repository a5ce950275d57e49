"""CSV -> Dataset: features and targets as arrays, the encoder that made them, the split.

`load_dataset(cfg)` reads `data.path`, picks the task, encodes labels (sorted, kept as
`classes`), splits off a validation part from the seed (stratified for classification) and fits
the FeatureEncoder on the training part only.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import NnctlError, did_you_mean, plain
from .columns import (MAX_AUTO_CLASSES, categorical_columns, feature_columns, handle_missing, regression_note,
                      suspicious_columns)
from .columns import classes_note
from .csvfile import require_columns
from .splits import kfold_split, random_split, stratified_split  # noqa: F401 (part of this module's API)
from .tables import open_table, read_table
from .encoding import FeatureEncoder, fit_target_scaler



@dataclass
class Dataset:
    X_train: np.ndarray  # (rows, inputs)
    y_train: np.ndarray  # class indices (rows,) or regression targets (rows, 1), scaled
    X_val: np.ndarray
    y_val: np.ndarray
    task: str
    target: str
    encoder: FeatureEncoder
    classes: list | None = None
    target_scaler: dict | None = None
    rows_read: int = 0
    rows_dropped: int = 0
    class_counts: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)  # ("note" | "warning", text) for the user

    @property
    def n_inputs(self) -> int:
        return self.X_train.shape[1]

    @property
    def n_outputs(self) -> int:
        if self.task == "regression":
            return self.y_train.shape[1]
        return 1 if len(self.classes) == 2 else len(self.classes)


# --- building the dataset --------------------------------------------------------------------


def load_dataset(cfg: dict, cache: bool = True, fold: tuple[int, int] | None = None) -> Dataset:
    """The resolved config's data, ready for training (see module docstring); from the dataset
    cache when this file and config were prepared before (see `nnctl.cache`). `fold` (i, K):
    the validation part is fold i of a K-fold split of the training file (stratified for
    classification, drawn from the seed) instead of `validation_split`."""
    from . import cache as dataset_cache

    key = None
    if cache:
        limit = dataset_cache.limit_bytes()
        try:
            key = dataset_cache.cache_key(cfg, fold)
        except OSError:  # missing or unreadable: _prepare says so properly
            key = None
    if key is not None:
        cached = dataset_cache.load(key)
        if cached is not None:
            return cached
    dataset = _prepare(cfg, fold)
    if key is not None:
        dataset_cache.save(key, dataset, limit)
    return dataset


def _prepare(cfg: dict, fold: tuple[int, int] | None = None) -> Dataset:
    data = cfg["data"]
    path, notes = Path(data["path"]), []
    table = open_table(path, data["delimiter"])
    header, target = table.header, data["target"]
    named = [h for h in header if h]
    if target not in header:
        raise NnctlError(f"target column '{target}' not in the file{did_you_mean(target, named)}", str(path),
                         f"set data.target to one of: {', '.join(named[:20])}")
    features = feature_columns(data, header, str(path), notes)
    if not features:
        raise NnctlError("there are no feature columns besides the target", str(path))
    used = list(dict.fromkeys(features + [target]))
    _check_fits(path, len(header), len(features) + 1, np.dtype(cfg["training"]["dtype"]).itemsize)
    extra = _other_files(data, used)  # checked before the long work: a typo there fails fast
    df = read_table(table, columns=used, decimal=data["decimal"])
    rows_read = len(df)
    categorical = categorical_columns(df, features, data["categorical"], path)
    notes += suspicious_columns(df, features, categorical)
    df = handle_missing(df, features, target, data["missing"], path)
    task = data_task(cfg["model"]["task"], df[target])
    if task == "regression" and cfg["model"]["task"] == "auto":
        notes += regression_note(df[target], target)
    train_rows = len(df)
    if "validation" in extra:
        # a separate validation file: appended after the training rows, and the split is theirs
        where_val = extra["validation"].where
        val_df = read_table(extra["validation"], columns=used, decimal=data["decimal"])
        rows_read += len(val_df)
        val_df = handle_missing(val_df, features, target, data["missing"], where_val)
        df = _concat(df, val_df)
        if data["validation_split"]:
            notes.append(("note", "data.validation_split is not used: data.validation_path gives the validation rows"))
    rng = np.random.default_rng(np.random.SeedSequence(cfg["seed"]).spawn(1)[0])
    if task == "classification":
        classes, y = encode_labels(df[target], target, path)
        notes += classes_note(classes, len(y), target)
        if "validation" in extra:
            train_idx, val_idx = np.arange(train_rows), np.arange(train_rows, len(df))
            _only_known_classes(classes, y, train_idx, val_idx, target, extra["validation"].where)
        else:
            train_idx, val_idx = (kfold_split(y, fold, rng, stratified=True) if fold else
                                  stratified_split(y, data["validation_split"], rng))
    else:
        y = _regression_target(df[target], target, path)
        if "validation" in extra:
            train_idx, val_idx = np.arange(train_rows), np.arange(train_rows, len(df))
        else:
            train_idx, val_idx = (kfold_split(y, fold, rng, stratified=False) if fold else
                                  random_split(len(y), data["validation_split"], rng))
        classes = None
    dtype = np.dtype(cfg["training"]["dtype"])
    encoder = FeatureEncoder(features, unknown=data["unknown_category"], decimal=data["decimal"])
    where = str(path)
    # categories come from the whole training file, so whether a rare one lands in the validation
    # part (the seed's luck) cannot decide if a config is valid; scaling is fit on training rows only
    X_train = encoder.fit(df.iloc[train_idx], categorical, data["scale"], data["missing"], dtype, where,
                          categories_from=df.iloc[:train_rows])
    X_val = encoder.transform(df.iloc[val_idx], dtype,
                              where=extra["validation"].where if "validation" in extra else where)
    dataset = Dataset(X_train, y[train_idx], X_val, y[val_idx], task, target, encoder, classes,
                      rows_read=rows_read, rows_dropped=rows_read - len(df), notes=notes)
    if task == "classification":
        counts = np.bincount(y[train_idx], minlength=len(classes))
        if "validation" not in extra:
            counts = np.bincount(y, minlength=len(classes))
        dataset.class_counts = {str(c): int(n) for c, n in zip(classes, counts)}
    elif data["scale_target"]:
        dataset.target_scaler = fit_target_scaler(dataset.y_train)
        offset = np.asarray(dataset.target_scaler["offset"])
        scale = np.asarray(dataset.target_scaler["scale"])
        dataset.y_train = ((dataset.y_train - offset) / scale).astype(dtype)
        dataset.y_val = ((dataset.y_val - offset) / scale).astype(dtype)
    return dataset


def _other_files(data: dict, used: list[str]) -> dict:
    """The validation and test files, opened, with every used column checked to be there."""
    files = {}
    for part in ("validation", "test"):
        path = data[f"{part}_path"]
        if path:
            table = open_table(Path(path), data["delimiter"], given_as=f"data.{part}_path")
            require_columns(table.header, used, table.where)
            files[part] = table
    return files


def _concat(df, other):
    import pandas as pd

    return pd.concat([df, other], ignore_index=True)


def _only_known_classes(classes, y, train_idx, val_idx, target, where) -> None:
    unseen = sorted(set(np.unique(y[val_idx]).tolist()) - set(np.unique(y[train_idx]).tolist()))
    if unseen:
        raise NnctlError(f"label {plain(classes[unseen[0]])} in column '{target}' is not in the training file", where,
                         "the validation file may only use labels the training file has")


def _check_fits(path: Path, columns: int, used: int, itemsize: int) -> None:
    """Parsing keeps about 8 bytes per used cell (plus strings), and the feature matrix
    `itemsize` more; the file's size over its column count estimates the cells."""
    from ..resources import require_memory

    size = path.stat().st_size
    cells = size / max(columns, 1) * used / 4  # a numeric cell takes about 4 bytes of text or more
    require_memory(cells * (8 + itemsize) + size, f"loading {path.name} ({size / 2**20:.0f} MB)", str(path),
                   "use fewer rows or columns (data.features), or a machine with more memory")


def data_task(setting: str, column) -> str:
    """`auto`: strings, booleans and integers with few distinct values are classes;
    other numbers are a regression target."""
    import pandas as pd

    if setting != "auto":
        return setting
    if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return "classification"
    values = column.to_numpy(dtype=np.float64)
    if np.all(np.mod(values, 1) == 0) and len(np.unique(values)) <= MAX_AUTO_CLASSES:
        return "classification"
    return "regression"


def encode_labels(column, target, path) -> tuple[list, np.ndarray]:
    """Sorted class labels (numbers stay numbers: 0/1, not '0.0') and each row's class index."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(column):
        values = column.to_numpy(dtype=bool)
    elif pd.api.types.is_numeric_dtype(column):
        values = column.to_numpy(dtype=np.float64)
        if np.all(np.mod(values, 1) == 0) and np.all(np.abs(values) < 2**53):  # exact as integers
            values = values.astype(np.int64)
    else:
        values = np.array([str(v).strip() for v in column], dtype=object)
    classes, y = np.unique(values, return_inverse=True)
    if len(classes) < 2:
        raise NnctlError(f"target column '{target}' has a single class ({plain(classes[0])}); "
                         "classification needs two or more",
                         str(path), "check data.target, or set model.task: regression")
    return [c.item() if hasattr(c, "item") else c for c in classes], y.astype(np.int64).ravel()


def _regression_target(column, target, path) -> np.ndarray:
    import pandas as pd

    if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        raise NnctlError(f"target column '{target}' is not numeric, so it cannot be a regression target", str(path),
                         "set model.task: classification (or auto)")
    y = column.to_numpy(dtype=np.float64).reshape(-1, 1)
    if not np.all(np.isfinite(y)):
        raise NnctlError(f"target column '{target}' has an infinite value", str(path))
    return y


