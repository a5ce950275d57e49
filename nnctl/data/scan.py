"""The first pass over a table too large to load: one bounded-memory read of `data.path` in
chunks that learns what `load_dataset` learns from the whole table (the columns' kinds,
categories, fill values and scaler, the target's classes or scaling, every check and warning),
then `encoded_chunks` reads it again, chunk by chunk, as the network's arrays.

The validation part is a hash of each row's number and the seed (`splits.hashed_validation`),
so it is the same however the table is chunked. As in memory, categories and classes come from
every row of `data.path` and fill values and scaling from its training part only; a
`data.validation_path` file's rows are not part of the fit.

    scan = scan_table(cfg)
    for rows, X, y in encoded_chunks(cfg, scan, "train"):
        ...
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Iterator

import numpy as np

from ..errors import NnctlError, did_you_mean
from .columns import auto_task, classes_note, feature_columns, task_note
from .encoding import FeatureEncoder, embedding_widths
from .scanpass import FirstPass, kept_rows, kept_targets
from .scaling import to_training
from .scanstats import labels_as
from .splits import hashed_validation
from .tables import open_table, table_parts
from .targets import MULTI, Target, is_multi, settings, target_names

# cells parsed at a time: a chunk takes about 24 bytes a cell while it is parsed, checked and
# encoded (its float64 values, their float32 copies, the encoded rows), so CHUNK_SHARE of the
# budget, between the bounds: a few hundred KB chunks would pay pandas' per-chunk costs
# on every few rows, and past 8M cells larger chunks gain nothing
CHUNK_SHARE = 8
CELL_BYTES = 24
MIN_CHUNK_CELLS, MAX_CHUNK_CELLS = 250_000, 8_000_000


@dataclass
class Scan:
    encoder: FeatureEncoder  # fitted on the training rows exactly as the in-memory path fits it
    task: str
    target: str
    classes: list | None
    target_scaler: dict | None
    rows: int  # rows of the training table read (before dropping)
    train_rows: int  # rows kept in the training part
    val_rows: int  # rows kept in the validation part (hash split), 0 if none
    rows_dropped: int
    class_counts: dict
    notes: list  # ("note" | "warning", text), as Dataset.notes
    label_kind: str = "int"  # how target labels compare: text | bool | int | float (scanstats.TargetLabels)
    files: list = field(default_factory=list)  # the files of data.path, in the order read
    # several targets (task "multitarget", target the list): one data.targets.Target each, and
    # each one's label kind; y is then (rows, targets) as in memory (data/targets.py)
    targets: list | None = None
    label_kinds: list | None = None

    @property
    def n_inputs(self) -> int:
        return len(self.encoder.inputs)

    @property
    def n_outputs(self) -> int:
        if self.targets is not None:
            return sum(t.n_outputs for t in self.targets)
        if self.task == "regression":
            return len(self.target_scaler["offset"]) if self.target_scaler else 1
        return 1 if len(self.classes) == 2 else len(self.classes)


@dataclass
class SizeEstimate:
    """The training table's size before a first pass: `rows` (exact for Parquet, from its
    metadata; for CSV the text's size over the first lines' length, compressed text counted at
    COMPRESSION_RATIO) and `inputs` (one per used column: one-hot columns count once)."""
    rows: float
    inputs: int
    task: str = "classification"
    n_outputs: int = 1  # values a row holds of its targets beside a class index: several targets, one each


COMPRESSION_RATIO = 5  # CSV text is about this many times larger than its gzip, bz2, xz or zip


def estimate_size(cfg) -> SizeEstimate:
    """What `resources.encoded_bytes_estimate` needs before a first pass, for a file, a folder
    or a glob of files (errors as open_table's)."""
    data = cfg.data
    table = open_table(data.path, data.delimiter)
    used = len(data.features) if data.features else \
        len([h for h in table.header if h]) - len(target_names(data.target)) - len(data.exclude)
    rows = sum(_rows_of(part) for part in table_parts(table))
    fraction = 0.0 if data.validation_path else data.validation_split
    task = "regression" if cfg.model.task == "regression" else "classification"
    if is_multi(data.target):  # y is (rows, targets) in the dtype
        return SizeEstimate(rows * (1 - fraction), max(used, 1), MULTI, len(data.target))
    return SizeEstimate(rows * (1 - fraction), max(used, 1), task)


def _rows_of(part) -> float:
    """A file's data rows: Parquet's metadata says; a CSV's size over its first lines' length."""
    import os

    from .csvfile import HEAD_BYTES, _decompressed_head, _rewound

    if part.kind == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(part.path).metadata.num_rows
    if hasattr(part.source, "getvalue"):  # a stream, read into memory
        size, raw = len(part.source.getvalue()), part.source.getvalue()[:HEAD_BYTES]
    else:
        size = os.stat(part.source).st_size
        with open(part.source, "rb") as fh:
            raw = fh.read(HEAD_BYTES)
    _, head = _decompressed_head(_rewound(part.source), raw, part.where)
    text = size * (COMPRESSION_RATIO if part.compression else 1)
    return max(text * head.count(b"\n") / max(len(head), 1) - 1, 0)


def default_chunk_rows(columns: int) -> int:
    """Rows per chunk for `columns` columns, from the memory budget (NNCTL_MEMORY_LIMIT)."""
    from ..resources import memory_budget

    cells = min(max(memory_budget() // CHUNK_SHARE // CELL_BYTES, MIN_CHUNK_CELLS), MAX_CHUNK_CELLS)
    return max(1000, cells // max(columns, 1))


def _columns(cfg, table, notes: list) -> tuple[list, list]:
    """(features, used columns) of the table's header, with the in-memory path's checks."""
    from .dataset import _other_files

    data, header, where = cfg.data, table.header, table.where
    named = [h for h in header if h]
    names = target_names(data.target)
    for name in names:
        if name not in header:
            raise NnctlError(f"target column '{name}' not in the file{did_you_mean(name, named)}", where,
                             f"set data.target to one of: {', '.join(named[:20])}")
    features = feature_columns(data, header, where, notes)
    if not features:
        raise NnctlError("there are no feature columns besides the target", where)
    if data.categorical != "auto":
        for col in data.categorical:
            if col not in features:
                raise NnctlError(f"data.categorical names '{col}', which is not a feature column"
                                 f"{did_you_mean(col, features)}", where)
    used = list(dict.fromkeys(features + names))
    _other_files(data, used)  # a typo in the validation or test file's columns fails before the long pass
    return features, used


def _chunks(table, used, chunk_rows, decimal, reading=None):
    """(file's name, first row's number in the whole table, chunk indexed by row in its file)."""
    from .reading import Reading, table_chunks

    return table_chunks(table, used, chunk_rows, decimal, reading or Reading(arrow=False))


def scan_table(cfg, chunk_rows: int | None = None) -> Scan:
    """One bounded-memory pass over data.path (validation_path's rows are NOT in the fit)."""
    from .reading import attempts

    data, notes = cfg.data, []
    table = open_table(data.path, data.delimiter)
    features, used = _columns(cfg, table, notes)
    chunk_rows = chunk_rows or default_chunk_rows(len(used))
    fraction = 0.0 if data.validation_path else data.validation_split

    def read(reading) -> FirstPass:
        state = FirstPass(cfg, features, table.where)
        for where, start, chunk in _chunks(table, used, chunk_rows, data.decimal, reading):
            rows = start + np.arange(len(chunk), dtype=np.int64)
            state.add(chunk, rows, hashed_validation(rows, cfg.seed, fraction), where)
        return state

    state = attempts(read)
    if state.rows == 0:
        raise NnctlError("data file has a header but no data rows", table.where)
    return _finish(cfg, state, features, table, notes)


def _finish(cfg, state: FirstPass, features: list, table, notes: list) -> Scan:
    data, where = cfg.data, table.where
    state.settle()  # the moments learned in a thread
    notes += state.column_warnings()
    unused_split = [("note", "data.validation_split is not used: data.validation_path gives the validation rows")] \
        if data.validation_path and data.validation_split else []
    if state.labels is not None:
        targets = _finish_targets(cfg, state, notes, unused_split, where)
        encoder = _encoder(cfg, state, features, where)
        return Scan(encoder, MULTI, list(data.target), None, None, state.rows, state.train_rows, state.val_rows,
                    state.rows - state.train_rows - state.val_rows, {}, notes,
                    files=[p.where for p in table_parts(table)], targets=targets,
                    label_kinds=[labels.kind() for labels in state.labels])
    task, classes, counts, scaler = state.target_result()
    if cfg.model.task == "auto":
        notes += task_note(*state.target_kind(), data.target)
    notes += unused_split
    if classes is not None:
        notes += classes_note(classes, sum(counts.values()), data.target)
        if data.positive_class is not None:
            classes = _positive_last(classes, data.positive_class, data.target, where)
    elif data.positive_class is not None:
        raise NnctlError("data.positive_class is set, but this is a regression", where,
                         "leave data.positive_class out, or set model.task: classification")
    encoder = _encoder(cfg, state, features, where)
    return Scan(encoder, task, data.target, classes, scaler, state.rows, state.train_rows, state.val_rows,
                state.rows - state.train_rows - state.val_rows,
                {str(c): int(counts[c]) for c in classes} if classes is not None else {}, notes,
                label_kind=state.target.kind(), files=[p.where for p in table_parts(table)])


def _finish_targets(cfg, state: FirstPass, notes: list, unused_split: list, where: str) -> list:
    """Each of several targets' Target, as `targets.split_targets` and `encode_targets` make
    them in memory: its task (data.targets.<t>.task, else model.task; auto from the column),
    classes (the positive class last), class counts or target scaler."""
    state.check_rows()
    tasks, targets = [], []
    for labels in state.labels:
        task = settings(cfg, labels.target).get("task") or cfg.model.task
        if task == "auto":
            kind, distinct = labels.kind(), None if labels.overflow else len(labels.counts)
            task = auto_task(kind, distinct)
            notes += task_note(kind, distinct, labels.target)
        tasks.append(task)
    notes += unused_split
    for labels, task in zip(state.labels, tasks):
        name, own = labels.target, settings(cfg, labels.target)
        classes, counts, scaler = state.label_result(labels, task)
        if classes is not None:
            notes += classes_note(classes, sum(counts.values()), name)
            if own.get("positive_class") is not None:
                classes = _positive_last(classes, own["positive_class"], name, where,
                                         f"data.targets.{name}.positive_class")
        else:
            for key in ("positive_class", "class_weight"):
                if own.get(key) is not None:
                    raise NnctlError(f"data.targets.{name}.{key} is set, but '{name}' is a regression", where,
                                     f"leave it out, or set data.targets.{name}.task: classification")
        targets.append(Target(name, task, classes, scaler, own.get("class_weight"),
                              {str(c): int(counts[c]) for c in classes} if classes is not None else {}))
    return targets


def _positive_last(classes: list, positive, target: str, where: str, key: str = "data.positive_class") -> list:
    from .dataset import _positive_last as order

    return order(classes, np.zeros(0, dtype=np.int64), positive, target, where, key)[0]


def _encoder(cfg, state: FirstPass, features: list, where: str) -> FeatureEncoder:
    """The FeatureEncoder that `FeatureEncoder.fit` would make from the same training rows."""
    from .dataset import _check_embedding

    data = cfg.data
    categories = state.categories()
    _check_embedding(data.embedding, SimpleNamespace(categorical=list(categories), features=features, where=where))
    encoder = FeatureEncoder(features, categories, unknown=data.unknown_category, decimal=data.decimal,
                             embedding=embedding_widths(data.embedding or {}, categories))
    encoder.fill = state.fill_values() if data.missing == "mean" else None
    encoder.scaler = state.scaler(encoder, data.scale, np.dtype(cfg.training.dtype), encoder.fill)
    # what fit_ranges finds in memory: each numeric column's training values (its moments' own
    # low and high, before missing values are filled)
    from .ranges import shortest

    dtype = np.dtype(cfg.training.dtype)
    encoder.ranges = {col: [shortest(state.moments[col].low, dtype), shortest(state.moments[col].high, dtype)]
                      for col in features if col not in categories and state.moments[col].n}
    return encoder


# --- reading the parts back, encoded -------------------------------------------------------


def encoded_chunks(cfg, scan: Scan, part: str = "train",
                   chunk_rows: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(row_numbers int64, X (rows, n_inputs) in the config's dtype, y: class indices (rows,) int
    or scaled regression targets (rows, outputs)) for part "train" | "validation" (the hash split
    of data.path, or all of data.validation_path when given) | "test" (data.test_path)."""
    data = cfg.data
    if part not in ("train", "validation", "test"):
        raise ValueError(f"part must be train, validation or test, not {part!r}")
    path, given_as, fraction = data.path, "data.path", 0.0 if data.validation_path else data.validation_split
    if part == "test" or (part == "validation" and data.validation_path):
        path, given_as, fraction = getattr(data, f"{part}_path"), f"data.{part}_path", None
        if not path:
            return
    table = open_table(path, data.delimiter, given_as=given_as)
    names = target_names(scan.target)
    used = list(dict.fromkeys(scan.encoder.features + names))
    # sized by the wider of the text and the encoded rows: one-hot columns widen a row many times
    chunk_rows = chunk_rows or default_chunk_rows(max(len(used), scan.n_inputs))
    for where, start, chunk in _chunks(table, used, chunk_rows, data.decimal):
        rows = start + np.arange(len(chunk), dtype=np.int64)
        if scan.targets is None:
            keep = kept_rows(chunk, used, scan.target, data.missing, where)
        else:
            keep = kept_targets(cfg, chunk, scan.encoder.features, names, where)
        if fraction is not None:
            keep &= hashed_validation(rows, cfg.seed, fraction) == (part == "validation")
        if keep.any():
            chunk = chunk[keep]
            dtype = np.dtype(cfg.training.dtype)
            X = scan.encoder.transform(chunk, dtype, where=where)
            if scan.targets is None:
                y = _targets(scan, chunk[scan.target], dtype, where)
            else:  # (rows, targets): class indices and scaled values side by side, as in memory
                y = np.stack([_targets(one, chunk[one.target], np.float64, where).reshape(len(chunk))
                              for one in _each_target(scan)], axis=1).astype(dtype)
            yield rows[keep], X, y


def _each_target(scan: Scan) -> list:
    """Each of several targets as a Scan of that target alone (what `_targets` reads)."""
    return [SimpleNamespace(task=t.task, target=t.name, classes=t.classes, target_scaler=t.target_scaler,
                            label_kind=kind) for t, kind in zip(scan.targets, scan.label_kinds)]


def _targets(scan: Scan, column, dtype, where: str) -> np.ndarray:
    if scan.task == "regression":
        y = column.to_numpy(dtype=np.float64).reshape(-1, 1)
        return to_training(y, scan.target_scaler).astype(dtype)
    import pandas as pd

    labels = labels_as(column, scan.label_kind)
    codes, distinct = pd.factorize(labels)  # each distinct label looked up once, not each row
    index = {label: i for i, label in enumerate(scan.classes)}
    y = np.array([index.get(v, -1) for v in distinct.tolist()], dtype=np.int64)[codes]
    if (y < 0).any():
        row = int(np.flatnonzero(y < 0)[0])
        raise NnctlError(f"label {labels[row]!r} in column '{scan.target}' is not in the training file "
                         f"(data row {int(column.index[row]) + 1})", where,
                         "the validation and test files may only use labels the training file has")
    return y
