"""STAND-IN for scan's module (issue #27, the reading side): the same names and signatures, built
on the in-memory path (the whole table is loaded, split by a row-number hash and fit as
`load_dataset` fits it). The lead replaces this file with scan's bounded-memory one at merge;
`memory_budget` and `hashed_validation`/`hashed_fold` are patched into `resources` and `splits`
here only until scan's real ones live there.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import resources as _resources
from . import splits as _splits
from .encoding import FeatureEncoder


def _mix(row_numbers: np.ndarray, seed: int) -> np.ndarray:
    """splitmix64 of (row number, seed): uint64."""
    with np.errstate(over="ignore"):
        z = np.asarray(row_numbers, dtype=np.uint64) + np.uint64((seed * 0x9E3779B97F4A7C15) & (2**64 - 1))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def hashed_validation(row_numbers, seed: int, fraction: float) -> np.ndarray:
    return (_mix(row_numbers, seed) >> np.uint64(11)).astype(np.float64) / float(1 << 53) < fraction


def hashed_fold(row_numbers, seed: int, k: int) -> np.ndarray:
    return (_mix(row_numbers, seed + 1) % np.uint64(k)).astype(np.int64)


def memory_budget() -> int:
    text = os.environ.get("NNCTL_MEMORY_LIMIT", "").strip()
    if text:
        m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]?)b?", text, re.IGNORECASE)
        units = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
        return int(float(m.group(1)) * units[m.group(2).lower()])
    return (_resources.available_memory() or 8 << 30) // 2


def encoded_bytes_estimate(cfg, estimate) -> int:
    itemsize = np.dtype(cfg.training.dtype).itemsize
    rows = getattr(estimate, "train_rows", None) or estimate.rows
    inputs = estimate.n_inputs if hasattr(estimate, "n_inputs") else estimate.inputs
    return int(rows * (inputs * itemsize + 8))


@dataclass
class SizeEstimate:
    rows: float
    inputs: int
    task: str


def estimate_size(cfg) -> SizeEstimate:
    from .tables import is_parquet, open_table

    path, data = Path(cfg.data.path), cfg.data
    table = open_table(path, data.delimiter)
    used = len(data.features) if data.features else len([h for h in table.header if h]) - 1 - len(data.exclude)
    if is_parquet(path):
        import pyarrow.parquet as pq

        rows = pq.ParquetFile(path).metadata.num_rows
    else:
        with open(path, "rb") as fh:
            head = fh.read(1 << 16)
        rows = path.stat().st_size * head.count(b"\n") / max(len(head), 1)
    fraction = 0.0 if data.validation_path else data.validation_split
    return SizeEstimate(rows * (1 - fraction), max(used, 1), "classification")


for _module, _name, _value in ((_resources, "memory_budget", memory_budget),
                               (_resources, "encoded_bytes_estimate", encoded_bytes_estimate),
                               (_splits, "hashed_validation", hashed_validation),
                               (_splits, "hashed_fold", hashed_fold)):
    if not hasattr(_module, _name):
        setattr(_module, _name, _value)


@dataclass
class Scan:
    encoder: FeatureEncoder
    task: str
    target: str
    classes: list | None
    target_scaler: dict | None
    rows: int
    train_rows: int
    val_rows: int
    rows_dropped: int
    class_counts: dict
    notes: list
    _parts: dict = field(default_factory=dict, repr=False)

    @property
    def n_inputs(self) -> int:
        return len(self.encoder.inputs)


def scan_table(cfg, chunk_rows=None) -> Scan:
    from .dataset import _read, _regression_target, encode_labels
    from .encoding import fit_target_scaler

    rows = _read(cfg)
    df, target, dtype = rows.df, cfg.data.target, np.dtype(cfg.training.dtype)
    if rows.task == "classification":
        classes, y = encode_labels(df[target], target, rows.where)
    else:
        classes, y = None, _regression_target(df[target], target, rows.where)
    numbers = np.arange(rows.train_rows, dtype=np.int64)
    if rows.val_where is None:
        val = hashed_validation(numbers, cfg.seed, cfg.data.validation_split)
        train_idx, val_idx = np.flatnonzero(~val), np.flatnonzero(val)
    else:
        train_idx, val_idx = numbers, np.arange(rows.train_rows, len(df))
    encoder = FeatureEncoder(rows.features, unknown=cfg.data.unknown_category, decimal=cfg.data.decimal)
    X_train = encoder.fit(df.iloc[train_idx], rows.categorical, cfg.data.scale, cfg.data.missing, dtype, rows.where,
                          categories_from=df.iloc[:rows.train_rows], embedding=cfg.data.embedding)
    X_val = encoder.transform(df.iloc[val_idx], dtype, where=rows.val_where or rows.where)
    scaler, counts = None, {}
    if rows.task == "classification":
        counts = {str(c): int(n) for c, n in zip(classes, np.bincount(y[train_idx], minlength=len(classes)))}
    elif cfg.data.scale_target:
        scaler = fit_target_scaler(y[train_idx])
        y = ((y - np.asarray(scaler["offset"])) / np.asarray(scaler["scale"]))
    y = y.astype(np.int64 if classes else dtype)
    parts = {"train": (train_idx, X_train, y[train_idx]),
             "validation": (val_idx - (rows.train_rows if rows.val_where else 0), X_val, y[val_idx])}
    return Scan(encoder, rows.task, target, classes, scaler, rows.rows_read, len(train_idx), len(val_idx),
                rows.rows_read - len(df), counts, rows.notes, parts)


def encoded_chunks(cfg, scan: Scan, part="train", chunk_rows=None):
    if part == "test":
        from .dataset import encode_labels  # noqa: F401
        from .tables import open_table, read_table

        if not cfg.data.test_path:
            return
        table = open_table(Path(cfg.data.test_path), cfg.data.delimiter, given_as="data.test_path")
        df = read_table(table, decimal=cfg.data.decimal)
        X = scan.encoder.transform(df, np.dtype(cfg.training.dtype), where=table.where)
        column = df[scan.target]
        if scan.classes is not None:
            from .encoding import label_index

            y = np.array([label_index(v, scan.classes) for v in column], dtype=np.int64)
        else:
            y = column.to_numpy(dtype=np.float64).reshape(-1, 1)
            if scan.target_scaler:
                y = (y - np.asarray(scan.target_scaler["offset"])) / np.asarray(scan.target_scaler["scale"])
            y = y.astype(cfg.training.dtype)
        numbers = np.arange(len(df), dtype=np.int64)
    else:
        numbers, X, y = scan._parts[part]
    step = chunk_rows or 50_000
    for start in range(0, len(X), step):
        yield numbers[start:start + step], X[start:start + step], y[start:start + step]
