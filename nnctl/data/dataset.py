"""CSV -> Dataset: features and targets as arrays, the encoder that made them, the split.

`load_dataset(cfg)` reads `data.path`, picks the task, encodes labels (sorted, kept as
`classes`), splits off a validation part from the seed (stratified for classification) and fits
the FeatureEncoder on the training part only.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import NnctlError, did_you_mean, plain
from .columns import (auto_task, categorical_columns, feature_columns, handle_missing, suspicious_columns,
                      task_note)
from .columns import classes_note
from .csvfile import require_columns
from .splits import kfold_split, random_split, stratified_split  # noqa: F401 (part of this module's API)
from .multifile import total_size
from .tables import open_table, read_table, require_rereadable
from .encoding import FeatureEncoder, label_index
from .scaling import check_log1p, fit_target, target_setting, to_training
from .targets import MULTI, drop_missing_targets, encode_targets, is_multi, split_targets, target_names, \
    target_tasks



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
    # each validation row's place in its file (0-based data row: of data.path, or of
    # data.validation_path when it gives the validation rows); None from an older cache entry
    val_rows: np.ndarray | None = None
    # several targets (data.target a list): one data.targets.Target each, in order; y is then
    # (rows, targets), see data/targets.py. None for one target.
    targets: list | None = None

    # what training, scoring, checkpoints and the steps after training read of a dataset, the
    # same for one held in memory (here) and one streamed from shards (streamed.StreamedDataset):
    # `parts` (data.source's protocol: here each part is one shard), `window`, `chunks`,
    # `held_out`, `preview`, `fingerprint`
    resident = True  # its rows are arrays in memory: they may be stacked with other datasets'

    @property
    def parts(self) -> dict:
        from .source import MemoryPart

        return {"train": MemoryPart(self.X_train, self.y_train), "validation": MemoryPart(self.X_val, self.y_val)}

    @property
    def window(self) -> int:
        """Rows shuffled together: all the training rows."""
        return max(len(self.X_train), 1)

    @property
    def n_inputs(self) -> int:
        return self.X_train.shape[1]

    def validation_rows(self, n: int) -> np.ndarray | None:
        """The file row numbers (0-based) of the first `n` validation rows, or None when unknown."""
        return None if self.val_rows is None else np.asarray(self.val_rows[:n])

    @property
    def n_outputs(self) -> int:
        if self.targets is not None:
            return sum(t.n_outputs for t in self.targets)
        if self.task == "regression":
            return self.y_train.shape[1]
        return 1 if len(self.classes) == 2 else len(self.classes)

    def chunks(self, part: str):
        """(X, y) of the part ("train" | "validation") in pieces: here, the whole part at once."""
        return self.parts[part].chunks()

    def held_out(self, rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """The validation rows the steps after training use (calibration, conformal scores,
        importance): in memory, all of them."""
        return self.X_val, self.y_val

    def preview(self, rows: int) -> tuple:
        """(X, y, row numbers or None) of the validation rows validation.csv holds: in memory,
        all of them."""
        return self.X_val, self.y_val, self.validation_rows(len(self.X_val))

    def fingerprint(self):
        """Pieces of bytes that identify these rows for resuming (training.checkpoint.data_digest): their
        shapes, every target, each input column's float64 sum and every FINGERPRINT_STRIDE-th
        input row. Changed values move a column sum, reordered rows move the targets or the
        sampled rows; and it reads the inputs once, where hashing every byte would add a
        noticeable pause to starting a run on a large table."""
        for name in ("X_train", "y_train", "X_val", "y_val"):
            array = np.ascontiguousarray(getattr(self, name))
            yield str(array.shape).encode()
            if name.startswith("y"):
                yield array.tobytes()
            elif array.size:
                yield array.sum(axis=0, dtype=np.float64).tobytes()
                yield np.ascontiguousarray(array[::FINGERPRINT_STRIDE]).tobytes()


FINGERPRINT_STRIDE = 97  # every this-many-th row of the inputs goes into the fingerprint whole


# --- building the dataset --------------------------------------------------------------------


def load_dataset(cfg, cache: bool = True, fold: tuple[int, int] | None = None, progress=None) -> Dataset:
    """The resolved config's data, ready for training (see module docstring); from the dataset
    cache when this file and config were prepared before (see `nnctl.cache`). `fold` (i, K):
    the validation part is fold i of a K-fold split of the training file (stratified for
    classification, drawn from the seed) instead of `validation_split`. A config that streams
    (`data.streaming`) gives a `streamed.StreamedDataset` instead, its folds drawn shard by shard;
    `progress` is then told how far its first pass has read (see `reading.Reading`)."""
    from .streamed import load_streamed, streaming_reason

    reason = streaming_reason(cfg)
    if reason is not None:  # shards keep several targets too (their entry's meta names them)
        return load_streamed(cfg, reason, cache=cache, fold=fold, progress=progress)
    if is_multi(cfg.data.target):  # the dataset cache keeps one target's arrays
        cache = False
    return _through_cache(cfg, fold, cache, lambda: _prepare(cfg, fold))


def load_seeds(cfgs: list, cache: bool = True) -> list[Dataset]:
    """`load_dataset` of each of `cfgs`, configs that differ only in their seed (so in their
    split and what is fitted on it): the table is read once for all of them."""
    from .streamed import streaming_reason

    if streaming_reason(cfgs[0]) is not None:
        return [load_dataset(cfg, cache) for cfg in cfgs]
    rows = []  # read when the first dataset is not in the cache

    def prepare(cfg):
        if not rows:
            rows.append(_read(cfg))
        mine = replace(rows[0], notes=list(rows[0].notes))  # each split adds its own notes
        return _encode(cfg, mine, _split(cfg, mine, None))

    return [_through_cache(cfg, None, cache, lambda cfg=cfg: prepare(cfg)) for cfg in cfgs]


def _through_cache(cfg, fold, cache: bool, prepare) -> Dataset:
    """The dataset cache's copy of `cfg`'s data, else `prepare()`'s, saved to the cache."""
    from . import cache as dataset_cache

    key = None
    if cache:
        limit = dataset_cache.limit_bytes()
        try:
            key = dataset_cache.cache_key(cfg, fold)
        except (OSError, NnctlError):  # missing or unreadable: _prepare says so properly
            key = None
    if key is not None:
        cached = dataset_cache.load(key, cfg.training.dtype)
        if cached is not None:
            return cached
    dataset = prepare()
    if key is not None:
        dataset_cache.save(key, dataset, limit)
    return dataset


def _prepare(cfg, fold: tuple[int, int] | None = None) -> Dataset:
    """Read, then split, then encode: each stage returns what the next one needs."""
    rows = _read(cfg)
    split = _split(cfg, rows, fold)
    return _encode(cfg, rows, split)


@dataclass
class _Rows:
    """The rows read for training: the training file's rows first, then a validation file's."""
    df: object  # DataFrame of the used columns, missing values handled
    train_rows: int  # rows of the training file in `df`
    features: list
    categorical: list
    task: str
    where: str  # the training file
    val_where: str | None  # the validation file, when data.validation_path gives one
    rows_read: int
    notes: list
    numbers: np.ndarray  # each row's place in its file (0-based data row)
    tasks: list | None = None  # several targets: each one's task


@dataclass
class _Split:
    y: np.ndarray  # every row's class index (rows,) or regression target (rows, 1)
    classes: list | None
    train_idx: np.ndarray
    val_idx: np.ndarray
    targets: list | None = None  # several targets: their data.targets.Target, in order


def _read(cfg) -> _Rows:
    data = cfg.data
    path, notes = Path(data.path), []
    table = open_table(path, data.delimiter)
    header, target, names = table.header, data.target, target_names(data.target)
    named = [h for h in header if h]
    for name in names:
        if name not in header:
            raise NnctlError(f"target column '{name}' not in the file{did_you_mean(name, named)}", str(path),
                             f"set data.target to one of: {', '.join(named[:20])}")
    features = feature_columns(data, header, str(path), notes)
    if not features:
        raise NnctlError("there are no feature columns besides the target", str(path))
    used = list(dict.fromkeys(features + names))
    _check_fits(path, len(header), len(features) + len(names), np.dtype(cfg.training.dtype).itemsize)
    extra = _other_files(data, used)  # checked before the long work: a typo there fails fast
    df = read_table(table, columns=used, decimal=data.decimal)
    rows_read = len(df)
    categorical = categorical_columns(df, features, data.categorical, path)
    notes += suspicious_columns(df, features, categorical, cfg.data.embedding)
    if is_multi(target):
        df = drop_missing_targets(df, cfg, names, str(path))
    df = handle_missing(df, features, target, data.missing, path, keep_index=True)
    numbers, df = df.index.to_numpy(dtype=np.int64), df.reset_index(drop=True)
    task, tasks = cfg.model.task, None
    if is_multi(target):
        task, tasks = MULTI, target_tasks(cfg, df, names, notes)
    elif task == "auto":
        kind, distinct = target_kind(df[target])
        task = auto_task(kind, distinct)
        notes += task_note(kind, distinct, target)
    train_rows, val_where = len(df), None
    if "validation" in extra:
        # a separate validation file: appended after the training rows, and the split is theirs
        val_where = extra["validation"].where
        val_df = read_table(extra["validation"], columns=used, decimal=data.decimal)
        rows_read += len(val_df)
        if is_multi(target):
            val_df = drop_missing_targets(val_df, cfg, names, val_where)
        val_df = handle_missing(val_df, features, target, data.missing, val_where, keep_index=True)
        numbers = np.concatenate([numbers, val_df.index.to_numpy(dtype=np.int64)])
        df = _concat(df, val_df)
        if data.validation_split:
            notes.append(("note", "data.validation_split is not used: data.validation_path gives the validation rows"))
    return _Rows(df, train_rows, features, categorical, task, str(path), val_where, rows_read, notes, numbers, tasks)


def _split(cfg, rows: _Rows, fold: tuple[int, int] | None) -> _Split:
    """Targets and the train/validation rows: a validation file's rows, fold i of K, or a
    (stratified) fraction drawn from the seed."""
    target, fraction = cfg.data.target, cfg.data.validation_split
    if rows.tasks is not None:
        y, targets, train_idx, val_idx = split_targets(cfg, rows, fold)
        return _Split(y, None, train_idx, val_idx, targets)
    rng = np.random.default_rng(np.random.SeedSequence(cfg.seed).spawn(1)[0])
    classes, positive = None, cfg.data.positive_class
    if rows.task == "classification":
        classes, y = encode_labels(rows.df[target], target, rows.where)
        rows.notes.extend(classes_note(classes, len(y), target))
    else:
        if positive is not None:
            raise NnctlError("data.positive_class is set, but this is a regression", rows.where,
                             "leave data.positive_class out, or set model.task: classification")
        y = _regression_target(rows.df[target], target, rows.where)
    stratified = rows.task == "classification"
    if rows.val_where is not None:
        train_idx, val_idx = np.arange(rows.train_rows), np.arange(rows.train_rows, len(rows.df))
        if stratified:
            _only_known_classes(classes, y, train_idx, val_idx, target, rows.val_where)
    elif fold:
        train_idx, val_idx = kfold_split(y, fold, rng, stratified=stratified)
    elif stratified:
        train_idx, val_idx = stratified_split(y, fraction, rng)
    else:
        train_idx, val_idx = random_split(len(y), fraction, rng)
    if positive is not None and classes is not None:
        # after the split, so that naming the positive class draws the same rows
        classes, y = _positive_last(classes, y, positive, target, rows.where)
    return _Split(y, classes, train_idx, val_idx)


def _check_embedding(setting, rows: _Rows) -> None:
    """data.embedding names categorical feature columns only."""
    if setting == "auto":
        return
    for col in setting:
        if col not in rows.categorical:
            what = "a categorical column" if col in rows.features else "a feature column"
            raise NnctlError(f"data.embedding names '{col}', which is not {what}"
                             f"{did_you_mean(col, rows.categorical or rows.features)}", rows.where,
                             "list it in data.categorical (or categorical: auto) to embed it" if col in rows.features
                             else "embed one of the categorical columns")


def _encode(cfg, rows: _Rows, split: _Split) -> Dataset:
    """The encoder fit on the training rows, the arrays it makes, and the target's scaling."""
    data, df = cfg.data, rows.df
    dtype = np.dtype(cfg.training.dtype)
    encoder = FeatureEncoder(rows.features, unknown=data.unknown_category, decimal=data.decimal)
    # categories come from the whole training file, so whether a rare one lands in the validation
    # part (the seed's luck) cannot decide if a config is valid; scaling is fit on training rows only
    _check_embedding(data.embedding, rows)
    X_train = encoder.fit(df.iloc[split.train_idx], rows.categorical, data.scale, data.missing, dtype,
                          rows.where, categories_from=df.iloc[:rows.train_rows], embedding=data.embedding)
    X_val = encoder.transform(df.iloc[split.val_idx], dtype, where=rows.val_where or rows.where)
    y_train, y_val = split.y[split.train_idx], split.y[split.val_idx]
    class_counts, target_scaler = {}, None
    if split.targets is not None:
        counted = y_train if rows.val_where is not None else split.y
        y_train, y_val = encode_targets(cfg, split.targets, y_train, y_val, counted, rows.where, dtype)
        return Dataset(X_train, y_train, X_val, y_val, MULTI, list(data.target), encoder, None,
                       rows_read=rows.rows_read, rows_dropped=rows.rows_read - len(df), notes=rows.notes,
                       val_rows=rows.numbers[split.val_idx], targets=split.targets)
    if rows.task == "classification":
        # with a validation file, the counts are the training file's; otherwise the whole file's
        counted = y_train if rows.val_where is not None else split.y
        counts = np.bincount(counted, minlength=len(split.classes))
        class_counts = {str(c): int(n) for c, n in zip(split.classes, counts)}
    else:
        kind = target_setting(data)
        if kind == "log1p":
            check_log1p(np.concatenate([np.ravel(y_train), np.ravel(y_val)]), data.target, rows.where)
        target_scaler = fit_target(y_train, kind)
        if target_scaler:
            y_train = to_training(y_train, target_scaler).astype(dtype)
            y_val = to_training(y_val, target_scaler).astype(dtype)
    return Dataset(X_train, y_train, X_val, y_val, rows.task, data.target, encoder, split.classes,
                   target_scaler=target_scaler, rows_read=rows.rows_read, rows_dropped=rows.rows_read - len(df),
                   class_counts=class_counts, notes=rows.notes, val_rows=rows.numbers[split.val_idx])


def _other_files(data: dict, used: list[str]) -> dict:
    """The validation and test files, opened, with every used column checked to be there."""
    files = {}
    for part in ("validation", "test"):
        path = getattr(data, f"{part}_path")
        if path:
            if part == "test":
                require_rereadable(path, "data.test_path", "it is read again after training, to score the final model")
            table = open_table(Path(path), data.delimiter, given_as=f"data.{part}_path")
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

    size = total_size(path)
    cells = size / max(columns, 1) * used / 4  # a numeric cell takes about 4 bytes of text or more
    require_memory(cells * (8 + itemsize) + size, f"loading {path.name} ({size / 2**20:.0f} MB)", str(path),
                   "use fewer rows or columns (data.features), or a machine with more memory")


def target_kind(column) -> tuple[str, int]:
    """(text | bool | int | float, its number of distinct values): what model.task auto decides by
    (`columns.auto_task`)."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(column):
        kind = "bool"
    elif not pd.api.types.is_numeric_dtype(column):
        kind = "text"
    else:
        kind = "int" if np.all(np.mod(column.to_numpy(dtype=np.float64), 1) == 0) else "float"
    return kind, int(column.nunique(dropna=True))


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


def _positive_last(classes: list, y: np.ndarray, positive, target: str, where: str,
                   key: str = "data.positive_class") -> tuple[list, np.ndarray]:
    """Two classes ordered so that the positive one is second: the sigmoid's output, thresholds,
    ROC and PR all refer to classes[1]."""
    if len(classes) != 2:
        raise NnctlError(f"{key} is for two classes; '{target}' has {len(classes)}", where,
                         f"leave {key} out")
    index = label_index(positive, classes)
    if index is None:
        raise NnctlError(f"{key} {plain(positive)} is not a label of column '{target}'", where,
                         f"its labels: {', '.join(map(str, classes))}")
    if index == 1:
        return classes, y
    return classes[::-1], 1 - y


def _regression_target(column, target, path) -> np.ndarray:
    import pandas as pd

    if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        raise NnctlError(f"target column '{target}' is not numeric, so it cannot be a regression target", str(path),
                         "set model.task: classification (or auto)")
    y = column.to_numpy(dtype=np.float64).reshape(-1, 1)
    if not np.all(np.isfinite(y)):
        raise NnctlError(f"target column '{target}' has an infinite value", str(path))
    return y


