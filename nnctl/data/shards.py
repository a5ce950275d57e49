"""Encoded rows on disk: a part of the data (train or validation) as `.npy` shards of a fixed
number of rows, written once and read back a few shards at a time.

Each shard `j` of a part is three files: `<part>-<j:05d>.X.npy` (rows, inputs) in the config's
dtype, `.y.npy` (class indices (rows,) int64, or scaled targets (rows, outputs)) and `.rows.npy`
(each row's 0-based number in its file, int64: what hashed splits and folds are drawn from).
"""
from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import numpy as np

SHARD_FILE = re.compile(r"(train|validation)-\d{5}\.(X|y|rows)\.npy")


def shard_name(part: str, j: int, what: str) -> str:
    return f"{part}-{j:05d}.{what}.npy"


class ShardWriter:
    """Takes encoded chunks of any size and writes them as shards of exactly `shard_rows` rows
    (the last one shorter); counts the classes it wrote when `n_classes` is given."""

    def __init__(self, folder: Path, part: str, shard_rows: int, n_classes: int | None):
        self.folder, self.part, self.shard_rows = Path(folder), part, shard_rows
        self.sizes: list[int] = []
        self.pending: list[tuple] = []
        self.pending_rows = 0
        self.counts = np.zeros(n_classes or 0, dtype=np.int64)

    def add(self, rows: np.ndarray, X: np.ndarray, y: np.ndarray) -> None:
        if self.counts.size:
            self.counts += np.bincount(y, minlength=self.counts.size)
        self.pending.append((rows, X, y))
        self.pending_rows += len(rows)
        while self.pending_rows >= self.shard_rows:
            self._flush(self.shard_rows)

    def close(self) -> list[int]:
        if self.pending_rows:
            self._flush(self.pending_rows)
        return self.sizes

    def _flush(self, n: int) -> None:
        """Writes the pending chunks' first `n` rows as the next shard, piece by piece: joining
        them first would hold a shard's rows twice."""
        j, taken, rest = len(self.sizes), 0, []
        for piece in self.pending:
            take = min(len(piece[0]), n - taken)
            if take < len(piece[0]):
                rest.append(tuple(a[take:] for a in piece))
            taken += take
        for k, what in enumerate(("rows", "X", "y")):
            _write_npy(self.folder / shard_name(self.part, j, what),
                       [piece[k] for piece in self.pending], n)
        self.sizes.append(n)
        self.pending = rest
        self.pending_rows -= n


def _write_npy(path: Path, pieces: list, n: int) -> None:
    """The first `n` rows of the pieces, joined, as one `.npy` file."""
    first = pieces[0]
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": np.lib.format.dtype_to_descr(first.dtype),
                                                  "fortran_order": False, "shape": (n,) + first.shape[1:]})
        for piece in pieces:
            if n <= 0:
                break
            part = np.ascontiguousarray(piece[:n], dtype=first.dtype)
            fh.write(memoryview(part).cast("B"))
            n -= len(part)


def read_npy_into(path: Path, out: np.ndarray) -> np.ndarray:
    """The `.npy` file's array, read straight into `out`'s leading rows (no temporary copy);
    returns that view. ValueError when the file's dtype or row width differ."""
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
            np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(fh)
        if fortran or dtype != out.dtype or tuple(shape[1:]) != out.shape[1:] or shape[0] > len(out):
            raise ValueError(f"{path.name}: {shape} {dtype} does not fit {out.shape} {out.dtype}")
        view = out[:shape[0]]
        if fh.readinto(memoryview(view).cast("B")) != view.nbytes:
            raise ValueError(f"{path.name} is truncated")
    return view


def check_npy(path: Path, shape: tuple, dtype) -> None:
    """ValueError unless `path` is a plain file (not a link) holding a C-order `.npy` array of
    exactly `shape` and `dtype`, whole: what the cache wrote, so that nothing else is trusted."""
    with open(path, "rb", opener=_no_links) as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise ValueError(f"{path.name} is not a plain file")
        version = np.lib.format.read_magic(fh)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
            np.lib.format.read_array_header_2_0
        found = read_header(fh)
        expected = (tuple(shape), False, np.dtype(dtype))
        if found != expected:
            raise ValueError(f"{path.name}: {found} is not {expected}")
        if os.fstat(fh.fileno()).st_size < fh.tell() + int(np.prod(shape)) * np.dtype(dtype).itemsize:
            raise ValueError(f"{path.name} is truncated")


def check_labels(y: np.ndarray, n_classes: int) -> None:
    """ValueError unless every class index in `y` is one of the `n_classes`."""
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= n_classes):
        raise ValueError(f"class indices {int(y.min())}..{int(y.max())} outside 0..{n_classes - 1}")


def _no_links(path, flags):
    return os.open(path, flags | getattr(os, "O_NOFOLLOW", 0))


class ShardPart:
    """One part's shards, read without holding them: `len()`, `shape`, a few shards into a
    buffer (`load`), one shard at a time (`chunks`), the first rows (`head`), or a seeded sample
    of rows (`sample`). `keep(j, rows, y)`, when given, picks the rows of shard j that belong to
    this part (a cv fold) by row number and class; `rescale(X, y)`, when set, rescales what is read
    in place (a cv fold's own scaling: streamfolds.py)."""

    def __init__(self, folder: Path, part: str, sizes: list[int], shard_rows: int, n_inputs: int, dtype, y_dtype,
                 y_width: int, keep=None):
        self.folder, self.part, self.n_inputs, self.keep = Path(folder), part, n_inputs, keep
        self.dtype, self.y_dtype, self.y_width = np.dtype(dtype), np.dtype(y_dtype), y_width
        self.full_sizes = list(sizes)
        self.sizes = list(sizes) if keep is None else [int(self._kept(j).sum()) for j in range(len(sizes))]
        self.shard_rows = shard_rows
        self.rescale = None

    def _kept(self, j: int) -> np.ndarray:
        return self.keep(j, self._array(j, "rows"), self._array(j, "y"))

    def __len__(self) -> int:
        return sum(self.sizes)

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self), self.n_inputs)

    @property
    def n_shards(self) -> int:
        return len(self.sizes)

    def buffers(self, shards: int) -> tuple[np.ndarray, np.ndarray]:
        """Empty (X, y) arrays for `shards` full shards."""
        rows = min(shards * self.shard_rows, max(sum(self.full_sizes), 1))  # a small table needs less
        return (np.empty((rows, self.n_inputs), dtype=self.dtype),
                np.empty((rows,) + ((self.y_width,) if self.y_width else ()), dtype=self.y_dtype))

    def load(self, shards, X: np.ndarray, y: np.ndarray) -> int:
        """Shards `shards`, in that order, into the leading rows of X and y; the rows filled."""
        n = 0
        for j in shards:
            if self.keep is None:
                size = len(read_npy_into(self._path(j, "X"), X[n:]))
                read_npy_into(self._path(j, "y"), y[n:])
            else:
                mask = self._kept(j)
                size = int(mask.sum())
                X[n:n + size] = self._array(j, "X")[mask]
                y[n:n + size] = self._array(j, "y")[mask]
            n += size
        if self.rescale is not None and n:
            self.rescale(X[:n], y[:n])
        return n

    def window_buffers(self, shards: int) -> tuple[np.ndarray, np.ndarray]:
        """What `read` fills: room for `shards` full shards (data.source's protocol)."""
        return self.buffers(shards)

    def read(self, shards, buffers) -> tuple[np.ndarray, np.ndarray]:
        """(X, y) of shards `shards`, in that order, read into `buffers` (data.source's protocol)."""
        n = self.load(shards, *buffers)
        return buffers[0][:n], buffers[1][:n]

    def chunks(self):
        """(X, y) of each shard in order, each a new array."""
        for j in range(self.n_shards):
            X, y = self.buffers(1)
            n = self.load([j], X, y)
            yield X[:n], y[:n]

    def head(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The first `n` rows (fewer when the part has fewer) as (X, y), read straight into
        arrays of the shards they come from."""
        covered, k = 0, 0
        while k < self.n_shards and covered < n:
            covered, k = covered + self.sizes[k], k + 1
        X = np.empty((covered, self.n_inputs), dtype=self.dtype)
        y = np.empty((covered,) + ((self.y_width,) if self.y_width else ()), dtype=self.y_dtype)
        self.load(range(k), X, y)
        return X[:n], y[:n]

    def head_rows(self, n: int) -> np.ndarray:
        """The row numbers (0-based, in their file) of the first `n` rows, as `head` reads them."""
        out, got = [], 0
        for j in range(self.n_shards):
            if got >= n:
                break
            rows = self._array(j, "rows")
            if self.keep is not None:
                rows = rows[self._kept(j)]
            out.append(rows[:n - got])
            got += len(out[-1])
        return np.concatenate(out).astype(np.int64) if out else np.zeros(0, dtype=np.int64)

    def targets(self):
        """Every row's y, shard by shard (what class counts are made from)."""
        for j in range(self.n_shards):
            y = self._array(j, "y")
            yield y if self.keep is None else y[self._kept(j)]

    def sample(self, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """(X, y) of `n` rows drawn at random (without replacement, from `seed`) from the whole
        part, in file order, read shard by shard: a sorted file's first rows are not a sample."""
        total = len(self)
        if n >= total:
            return self.head(total)
        chosen = np.sort(np.random.default_rng(seed).choice(total, n, replace=False))
        X = np.empty((n, self.n_inputs), dtype=self.dtype)
        y = np.empty((n,) + ((self.y_width,) if self.y_width else ()), dtype=self.y_dtype)
        starts = np.concatenate([[0], np.cumsum(self.sizes)])
        buffer_X, buffer_y = self.buffers(1)
        filled = 0
        for j in range(self.n_shards):
            lo, hi = np.searchsorted(chosen, [starts[j], starts[j + 1]])
            if hi > lo:
                self.load([j], buffer_X, buffer_y)
                picked = chosen[lo:hi] - starts[j]
                X[filled:filled + len(picked)] = buffer_X[picked]
                y[filled:filled + len(picked)] = buffer_y[picked]
                filled += len(picked)
        return X, y

    def _path(self, j: int, what: str) -> Path:
        return self.folder / shard_name(self.part, j, what)

    def _array(self, j: int, what: str) -> np.ndarray:
        return np.load(self._path(j, what), allow_pickle=False)
