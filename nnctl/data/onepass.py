"""Streaming's first pass, in one read of the table: `write_shards` parses each chunk once,
learns from it what `load_dataset` learns from the whole table (`scanpass.FirstPass`) and writes
its kept rows at once as raw pieces: the numbers as read, each category and label as a code in
the order first seen, NaN where missing. The categories, classes, fill values and scaler are
known only at the end; the pieces then become the shards (`shards.py`) in one cheap pass over
binary files: codes to one-hot columns or sorted indices, fill values, the scaler applied in the
config's dtype, exactly as `FeatureEncoder.transform` does in memory.

    meta = write_shards(cfg, folder, progress=print)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import NnctlError
from .reading import attempts, mapped, table_chunks
from .scan import Scan, _columns, _finish, default_chunk_rows, encoded_chunks
from .scaling import bend, to_training
from .scanpass import FirstPass
from .shards import ShardWriter
from .splits import hashed_validation
from .tables import open_table

PARTS = ("train", "validation")
RAW = ("rows", "X", "codes", "values")  # a raw piece's arrays (values: a numeric target's, or none)
RAW_SHARE = 8  # the raw pieces held in memory take at most the memory budget / this


def write_shards(cfg, folder: Path, shard_rows_for, progress=None, keep_missing: bool = False) -> dict:
    """One pass over data.path into `folder`'s shards (and data.validation_path's rows, encoded
    as they are read); returns the cache entry's meta. `shard_rows_for(n_inputs, itemsize)`
    sizes the shards; `progress` is told how far the read got (see reading.Reading);
    `keep_missing`: missing numbers stay NaN, not filled (cv folds fill them: streamfolds.py)."""
    data, notes = cfg.data, []
    table = open_table(data.path, data.delimiter)
    features, used = _columns(cfg, table, notes)
    state, pieces = attempts(lambda reading: _read(cfg, table, features, used, RawPieces(folder), reading), progress)
    scan = _finish(cfg, state, features, table, notes)
    dtype = np.dtype(cfg.training.dtype)
    shard_rows = shard_rows_for(scan.n_inputs, dtype.itemsize)
    n_classes = len(scan.classes) if scan.classes is not None else None
    finish = Finisher(cfg, scan, state, keep_missing)
    sizes, counts = {}, {}
    for part in PARTS:
        writer = ShardWriter(folder, part, shard_rows, n_classes)
        if part == "validation" and data.validation_path:  # another file, not part of the fit
            for rows, X, y in encoded_chunks(cfg, scan, part):
                writer.add(np.asarray(rows, dtype=np.int64), X, y)
        else:  # the next pieces are finished in threads while this one is written
            for piece in mapped(lambda k: finish(pieces.take(part, k)), pieces.numbers[part]):
                writer.add(*piece)
        sizes[part], counts[part] = writer.close(), writer.counts.tolist()
    y_width = len(scan.targets) if scan.targets is not None else scan.n_outputs if scan.task == "regression" else 0
    meta = {"streamed": True, "task": scan.task, "target": scan.target, "encoder": scan.encoder.to_meta(),
            "classes": scan.classes, "target_scaler": scan.target_scaler, "rows_read": scan.rows,
            "rows_dropped": scan.rows_dropped, "class_counts": scan.class_counts, "notes": scan.notes,
            "n_inputs": scan.n_inputs, "dtype": dtype.name, "y_width": y_width, "shard_rows": shard_rows,
            "parts": sizes, "counts": counts}
    if scan.targets is not None:  # several: each one's task, classes, class counts or target scaler
        meta["targets"] = [{"name": t.name, "task": t.task, "classes": t.classes, "target_scaler": t.target_scaler,
                            "class_counts": t.class_counts} for t in scan.targets]
    return meta


def _raw_path(folder: Path, part: str, k: int, what: str) -> Path:
    return Path(folder) / f"raw-{part}-{k:05d}.{what}.npy"


class RawPieces:
    """The pass's raw pieces until they are finished: held in memory while they take at most
    an eighth of the memory budget together (a table of a few hundred MB never goes to disk
    and back), the rest as `.npy` files in the shards' folder. A retried pass starts a new
    one, and overwrites the files of the last try."""

    def __init__(self, folder: Path, room: int | None = None):
        from ..resources import memory_budget

        self.folder = Path(folder)
        self.room = memory_budget() // RAW_SHARE if room is None else room
        self.held: dict = {}
        self.numbers: dict = {part: [] for part in PARTS}

    def put(self, part: str, k: int, arrays: dict) -> None:
        size = sum(a.nbytes for a in arrays.values())
        if size <= self.room:
            self.held[part, k], self.room = arrays, self.room - size
        else:
            for what, array in arrays.items():
                np.save(_raw_path(self.folder, part, k, what), array)
        self.numbers[part].append(k)

    def take(self, part: str, k: int) -> dict:
        """Piece k's arrays, let go of here (its files removed)."""
        if (part, k) in self.held:
            return self.held.pop((part, k))
        arrays = {}
        for what in RAW:
            path = _raw_path(self.folder, part, k, what)
            if path.exists():
                arrays[what] = np.load(path, allow_pickle=False)
                path.unlink()
        return arrays


def _read(cfg, table, features, used, pieces: RawPieces, reading):
    """The pass itself: (FirstPass, the raw pieces it wrote)."""
    fraction = 0.0 if cfg.data.validation_path else cfg.data.validation_split
    state = FirstPass(cfg, features, table.where)
    chunk_rows = default_chunk_rows(len(used))
    k = 0
    for where, start, chunk in table_chunks(table, used, chunk_rows, cfg.data.decimal, reading):
        rows = start + np.arange(len(chunk), dtype=np.int64)
        raw = state.add(chunk, rows, hashed_validation(rows, cfg.seed, fraction), where, raw=True)
        del chunk
        for part, arrays in raw.parts.items():
            pieces.put(part, k, arrays)
        k += 1
    if state.rows == 0:
        raise NnctlError("data file has a header but no data rows", table.where)
    return state, pieces


class Finisher:
    """A raw piece as the shards hold it: (rows, X, y), X encoded and scaled as
    `FeatureEncoder.transform` makes it, y as `scan._targets` makes it."""

    def __init__(self, cfg, scan: Scan, state: FirstPass, keep_missing: bool = False):
        encoder, self.dtype = scan.encoder, np.dtype(cfg.training.dtype)
        self.encoder, self.scan = encoder, scan
        self.categorical = []  # (raw column, first input, width, "onehot" | "code", code -> index)
        self.fills = []  # (place among the numbers, fill value) of numbers that may be missing
        numbers = ([], [])  # raw columns of numbers, and their inputs
        j = 0
        for i, col in enumerate(encoder.features):
            fill = encoder.fill.get(col) if encoder.fill is not None else None
            if col in encoder.categories:
                names = encoder.categories[col]
                index = {name: n for n, name in enumerate(names)}
                lookup = np.empty(len(state.codes[col]) + 1, dtype=np.int64)
                for name, code in state.codes[col].items():
                    lookup[code] = index[name]
                # a missing value: its fill's (none when kept missing: all zeros, or code -1)
                lookup[-1] = index.get(fill, -1) if fill is not None and not keep_missing else -1
                onehot = encoder._onehot_column(col)
                self.categorical.append((i, j, len(names) if onehot else 1, "onehot" if onehot else "code", lookup))
                j += len(names) if onehot else 1
            else:
                numbers[0].append(i)
                numbers[1].append(j)
                if fill is not None and not keep_missing:
                    self.fills.append((len(numbers[0]) - 1, self.dtype.type(fill)))
                j += 1
        self.width, self.keep_missing = j, keep_missing
        self.numbers = tuple(np.array(n, dtype=np.int64) for n in numbers)
        # the numbers' raw rows: a slice when they follow one another (scaled where they lie: a
        # raw piece is let go of once finished), else a copy of them
        first = numbers[0][0] if numbers[0] else 0
        self.block = slice(first, first + len(numbers[0])) if numbers[0] == list(range(first, first + len(numbers[0]))) \
            else self.numbers[0]
        # (first, end) of each run of numbers whose inputs follow one another, and its first input
        self.runs, start = [], 0
        for k in range(1, len(numbers[1]) + 1):
            if k == len(numbers[1]) or numbers[1][k] != numbers[1][k - 1] + 1:
                self.runs.append((start, k, numbers[1][start]))
                start = k
        scaler = encoder.scaler
        self.offset = np.asarray(scaler["offset"], dtype=self.dtype)[self.numbers[1]]
        self.scale = np.asarray(scaler["scale"], dtype=self.dtype)[self.numbers[1]]
        self.where = scan.files[0] if scan.files else cfg.data.path
        self.classes = state.target.class_lookup(scan.classes) if scan.classes is not None else None
        # several targets: each one's code -> class index lookup, or None for a regression
        self.lookups = None if scan.targets is None else \
            [labels.class_lookup(t.classes) if t.classes is not None else None
             for labels, t in zip(state.labels, scan.targets)]

    def __call__(self, arrays: dict):
        return arrays["rows"], self.features(arrays["X"]), self.targets(arrays)

    def features(self, raw: np.ndarray) -> np.ndarray:
        """(rows, inputs) from the raw columns (features, rows), as `FeatureEncoder.transform`
        makes them: the numbers filled and scaled as one block, in the dtype (one-hot and code
        inputs pass the scaler by: x - 0 and x / 1 are x, so they are set, not scaled), then
        turned into rows; categories as one-hot columns or codes."""
        X = np.zeros((raw.shape[1], self.width), dtype=self.dtype)
        sources, inputs = self.numbers
        if len(sources):
            block = raw[self.block]
            for k, fill in self.fills:
                missing = np.isnan(block[k])
                if missing.any():
                    block[k, missing] = fill
            # values beyond the dtype were refused as they were read; scaling can still overflow
            with np.errstate(over="ignore", invalid="ignore"):
                block -= self.offset[:, None]
                block /= self.scale[:, None]
                bad = np.isinf(block).any(axis=1) if self.keep_missing else \
                    ~np.isfinite(block.sum(axis=1, dtype=np.float64))
            if bad.any():  # the encoder's own message, naming the first such input
                probe = np.zeros((1, self.width), dtype=self.dtype)
                probe[0, inputs[bad]] = np.inf
                self.encoder._check_range(probe, self.where)
            bend(block, self.encoder.scaler, inputs)  # robust's clip, quantile's map
            for first, last, at in self.runs:  # by slices: a fancy column index is 10 times slower
                X[:, at:at + last - first] = block[first:last].T
        flat, starts = X.reshape(-1), None
        for i, j, width, kind, lookup in self.categorical:
            column = raw[i]
            missing = np.isnan(column)
            codes = lookup[(np.where(missing, -1, column) if missing.any() else column).astype(np.intp)]
            if kind == "code":
                X[:, j] = codes
                continue
            if starts is None:  # each row's first place in `flat`, shared by the one-hot columns
                starts = np.arange(0, X.size, self.width, dtype=np.intp)
            if missing.any() and (codes < 0).any():
                rows = np.flatnonzero(codes >= 0)
                flat[starts[rows] + (codes[rows] + j)] = 1
            else:
                flat[starts + (codes + j)] = 1
        return X

    def targets(self, arrays: dict) -> np.ndarray:
        if self.lookups is not None:  # (rows, targets), as targets.encode_targets makes them
            y = np.empty(arrays["codes"].shape, dtype=np.float64)
            for j, (lookup, t) in enumerate(zip(self.lookups, self.scan.targets)):
                y[:, j] = lookup[arrays["codes"][:, j]] if lookup is not None else \
                    to_training(arrays["values"][:, j:j + 1], t.target_scaler)[:, 0]
            return y.astype(self.dtype)
        if self.classes is not None:
            return self.classes[arrays["codes"]]
        # through the transform's link (log1p, quantile), as scan._targets and memory make them
        return to_training(arrays["values"].reshape(-1, 1), self.scan.target_scaler).astype(self.dtype)
