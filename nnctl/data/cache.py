"""A cache of prepared datasets, so training on the same CSV again skips parsing.

An entry holds the arrays `load_dataset` made (as memory-mappable `.npy` files) and the rest of
the Dataset as JSON; a streamed dataset's entry holds its shards instead (see `shards.py`).
Its key is a hash of the CSV's resolved path, size, modification time and content fingerprint
(of every file, for a folder or glob of files), the `data` config, the seed, the task and the
dtype: change any of them and a new entry is made. The fingerprint (`fingerprint`) is a hash of
the whole file when the files together hold up to `WHOLE_HASH_BYTES`; else of `SAMPLES` blocks
spread over them plus each one's inode and ctime, which every write changes and no copy
(`cp -p`, `rsync -a`, `tar x`) sets back.
So a same-size rewrite that keeps the modification time is still a new entry.
Entries are written to a temporary folder and renamed into place; one that cannot be read back
whole (truncated, corrupt, a link, arrays of another dtype, shape or order than meta says, class
indices that are not classes, from another nnctl) is deleted and rebuilt, never trusted.

Location: `$NNCTL_CACHE_DIR`, else `$XDG_CACHE_HOME/nnctl`, else `~/.cache/nnctl`. Files smaller
than `MIN_BYTES` parse in milliseconds and are not cached. The cache holds at most
`$NNCTL_CACHE_LIMIT` (default 2GB): after writing an entry, the least recently used others are
deleted until it fits, and so are half-written entries over an hour old (a killed writer's).
Deleting the folder is always safe.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
import time
from pathlib import Path

import numpy as np

from ..jsonfmt import finite
from ..resources import parse_size

FORMAT = 2  # 2: streamed shards under robust or quantile scaling hold the bent values (1 held them unbent)
MIN_BYTES = 1 << 20
DEFAULT_LIMIT = "2GB"
WHOLE_HASH_BYTES = 64 << 20  # hashed whole at a small share of parsing's time (docs/performance.md)
SAMPLES, SAMPLE_BYTES = 64, 64 << 10  # larger files: this many blocks in all, evenly spread
READ_BYTES = 1 << 20
STALE_SECONDS = 3600  # a half-written entry this old belongs to no running writer
ARRAYS = ("X_train", "y_train", "X_val", "y_val")


def cache_dir() -> Path:
    if os.environ.get("NNCTL_CACHE_DIR"):
        return Path(os.environ["NNCTL_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "nnctl"


def limit_bytes() -> int:
    """The cache's size bound from `$NNCTL_CACHE_LIMIT` ("500MB", "2GB", "0" to keep only the
    newest entry)."""
    text = os.environ.get("NNCTL_CACHE_LIMIT", "").strip() or DEFAULT_LIMIT
    return parse_size(text, "NNCTL_CACHE_LIMIT", DEFAULT_LIMIT)


# how the data is read and shuffled, not what is prepared: the same entry serves every value
NOT_IN_KEY = ("streaming", "shuffle_window")


def cache_key(cfg, fold=None, layout: str = "arrays") -> str | None:
    """The entry's name for this config's data, or None when the file is too small to cache.
    `layout`: "arrays" (a Dataset's four arrays), "shards" (a streamed dataset's shards, always
    keyed: streaming needs them on disk whatever the file's size) or "shards-folds" (cv folds'
    shards that keep missing values for each fold to fill: streamfolds.keeps_missing)."""
    from .. import __version__

    from .multifile import is_many, member_files

    path = cfg.data.path
    files = member_files(path) if is_many(path) else [Path(path)]
    if sum(f.stat().st_size for f in files) < MIN_BYTES and layout == "arrays":
        return None
    files += [Path(p) for p in (cfg.data.validation_path,) if p]
    found = [f.stat() for f in files]
    if not all(stat.S_ISREG(st.st_mode) for st in found):
        return None  # a stream (FIFO, device) is read once as it comes: nothing to key
    # the bound is on all the files together: a folder of a thousand parts is sampled, a few
    # blocks from each, not read whole at every run
    samples = 0 if sum(st.st_size for st in found) <= WHOLE_HASH_BYTES else max(1, SAMPLES // len(files))
    stats = [(str(f.resolve()), st.st_size, st.st_mtime_ns, fingerprint(f, samples)) for f, st in zip(files, found)]
    data = {k: v for k, v in finite(cfg.data).items() if k not in NOT_IN_KEY}
    identity = {"format": FORMAT, "nnctl": __version__, "files": stats, "data": data, "seed": cfg.seed,
                "fold": list(fold) if fold else None,
                "task": cfg.model.task, "dtype": cfg.training.dtype}
    if layout != "arrays":
        identity["layout"] = layout
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]


def fingerprint(path: Path, samples: int = 0) -> str:
    """A digest of a regular file's content: all of it (`samples` 0), else `samples` blocks of
    SAMPLE_BYTES spread evenly from the first byte to the last, with the file's inode and ctime
    (the kernel sets ctime on every write; nothing can set it back)."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        if not samples:
            while block := fh.read(READ_BYTES):
                digest.update(block)
        else:
            st = os.fstat(fh.fileno())
            digest.update(f"{st.st_dev}:{st.st_ino}:{st.st_ctime_ns}".encode())
            for offset in np.linspace(0, max(st.st_size - SAMPLE_BYTES, 0), samples).astype(np.int64):
                fh.seek(int(offset))
                digest.update(fh.read(SAMPLE_BYTES))
    return digest.hexdigest()


def load(key: str, dtype: str):
    """The cached Dataset of X arrays in `dtype`, or None (a damaged entry is removed)."""
    from .dataset import Dataset
    from .encoding import FeatureEncoder

    found = entry_meta(key)  # marked used: pruned last
    if found is None:
        return None
    folder, meta = found
    try:
        arrays = _checked_arrays(folder, meta, dtype)
        return Dataset(**arrays, val_rows=_val_rows(folder, len(arrays["X_val"])), task=meta["task"],
                       target=meta["target"],
                       encoder=FeatureEncoder.from_meta(meta["encoder"], saved=False), classes=meta["classes"],
                       target_scaler=meta["target_scaler"], rows_read=meta["rows_read"],
                       rows_dropped=meta["rows_dropped"], class_counts=meta["class_counts"],
                       notes=[tuple(n) for n in meta["notes"]])
    except (OSError, ValueError, KeyError, TypeError):
        drop(key)
        return None


def _checked_arrays(folder: Path, meta: dict, dtype: str) -> dict:
    """The entry's four arrays, memory-mapped, each checked to be what meta says and what this
    config makes (X in `dtype`; class indices int64 and each a class); ValueError otherwise."""
    from .shards import check_labels, check_npy

    classes = meta["classes"]
    arrays = {}
    for name in ARRAYS:
        path = folder / f"{name}.npy"
        kind = dtype if name.startswith("X") else "int64" if classes is not None else meta["dtypes"][name]
        if kind not in (dtype, "int64" if classes is not None else "float64"):
            raise ValueError(f"{name} in {kind}")
        check_npy(path, tuple(meta["shapes"][name]), kind)
        arrays[name] = np.load(path, mmap_mode="r", allow_pickle=False)
        if classes is not None and name.startswith("y"):
            check_labels(arrays[name], len(classes))
    if arrays["X_train"].shape[1:] != arrays["X_val"].shape[1:] or \
            any(len(arrays["X" + part]) != len(arrays["y" + part]) for part in ("_train", "_val")):
        raise ValueError("the arrays' shapes disagree")
    return arrays


def _val_rows(folder: Path, rows: int) -> np.ndarray | None:
    """The validation rows' places in their file (validation.csv's `row`), checked as the arrays
    are; None in an entry from before nnctl kept them."""
    from .shards import check_npy

    path = folder / "val_rows.npy"
    if not path.exists() and not path.is_symlink():
        return None
    check_npy(path, (rows,), "int64")
    return np.load(path, allow_pickle=False)


def save(key: str, dataset, limit: int) -> None:
    """Store the dataset under `key`, then prune the cache to `limit` bytes; a cache that cannot
    be written is skipped silently (training does not depend on it)."""
    def fill(tmp: Path) -> dict:
        for name in ARRAYS:
            np.save(tmp / f"{name}.npy", np.ascontiguousarray(getattr(dataset, name)), allow_pickle=False)
        if dataset.val_rows is not None:
            np.save(tmp / "val_rows.npy", np.asarray(dataset.val_rows, dtype=np.int64), allow_pickle=False)
        return {"task": dataset.task, "target": dataset.target, "encoder": dataset.encoder.to_meta(),
                "classes": dataset.classes, "target_scaler": dataset.target_scaler, "rows_read": dataset.rows_read,
                "rows_dropped": dataset.rows_dropped, "class_counts": dataset.class_counts, "notes": dataset.notes,
                "shapes": {name: list(getattr(dataset, name).shape) for name in ARRAYS},
                "dtypes": {name: np.dtype(getattr(dataset, name).dtype).name for name in ARRAYS}}

    write_entry(key, fill, limit)


def write_entry(key: str, fill, limit: int) -> Path | None:
    """An entry written by `fill(folder)` (its files; it returns meta.json's content) into a
    temporary folder, renamed into place as `key`, then the cache pruned to `limit` bytes. The
    entry's folder, or None when the cache cannot be written (or `fill` raised OSError)."""
    root = cache_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    except OSError:
        return None
    try:
        meta = {"key": key, **fill(tmp)}
        (tmp / "meta.json").write_text(json.dumps(meta))
        _touch(tmp / "meta.json")
        try:
            os.rename(tmp, root / key)
        except OSError:
            if not (root / key).is_dir():  # else another process wrote the same entry first
                raise
    except OSError:
        return None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    prune(limit, keep=key)
    return root / key


def entry_meta(key: str) -> tuple[Path, dict] | None:
    """(folder, meta.json's content) of the entry `key`, marked used; None when there is none
    or its meta.json is unreadable (the entry is then removed)."""
    folder = cache_dir() / key
    if folder.is_symlink():
        drop(key)
        return None
    if not folder.is_dir():
        return None
    try:
        if not all(stat.S_ISREG(f.lstat().st_mode) for f in folder.iterdir()):
            raise ValueError("a link or another kind of file in the entry")
        meta = json.loads((folder / "meta.json").read_text())
        if meta.get("key") != key:
            raise ValueError("key mismatch")
    except (OSError, ValueError):
        drop(key)
        return None
    _touch(folder / "meta.json")
    return folder, meta


def drop(key: str) -> None:
    """Remove a damaged entry (a link in its place included, not what it points to)."""
    folder = cache_dir() / key
    if folder.is_symlink():
        folder.unlink(missing_ok=True)
    else:
        shutil.rmtree(folder, ignore_errors=True)


def prune(limit: int, keep: str | None = None) -> None:
    """Delete the least recently used entries (never `keep`) until the cache holds at most
    `limit` bytes. A process still reading a deleted entry keeps its memory-mapped files.
    Only nnctl's own entries are ever deleted: `$NNCTL_CACHE_DIR` may point at a folder that
    holds other things too."""
    entries = []
    try:
        for folder in cache_dir().iterdir():
            if _stale_temporary(folder):
                shutil.rmtree(folder, ignore_errors=True)  # left by a writer that was killed
            elif _is_entry(folder):
                size = sum(f.stat().st_size for f in folder.iterdir())
                used = (folder / "meta.json").stat().st_mtime_ns
                entries.append((folder.name == keep, used, size, folder))
    except OSError:
        return
    total = sum(size for _, _, size, _ in entries)
    for kept, _, size, folder in sorted(entries, key=lambda e: (e[0], e[1])):
        if total <= limit or kept:
            break
        shutil.rmtree(folder, ignore_errors=True)
        total -= size


ENTRY_FILES = {"meta.json", "val_rows.npy"} | {f"{name}.npy" for name in ARRAYS}


def _own_files(folder: Path) -> bool:
    """Whether every file in `folder` is one nnctl writes into an entry (arrays or shards)."""
    from .shards import SHARD_FILE

    return all(f.name in ENTRY_FILES or SHARD_FILE.fullmatch(f.name) for f in folder.iterdir())


def _is_entry(folder: Path) -> bool:
    """An entry nnctl wrote: named by its key (32 hex digits), holding nnctl's files only, and a
    meta.json that names the same key."""
    if not re.fullmatch(r"[0-9a-f]{32}", folder.name) or not folder.is_dir():
        return False
    if not _own_files(folder):
        return False
    try:
        return json.loads((folder / "meta.json").read_text()).get("key") == folder.name
    except (OSError, ValueError, AttributeError):
        return False


def _stale_temporary(folder: Path) -> bool:
    """A half-written entry (`.tmp-*` from mkdtemp, nothing but nnctl's files in it) whose
    writer is long gone."""
    if not re.fullmatch(r"\.tmp-[A-Za-z0-9_]+", folder.name) or not folder.is_dir():
        return False
    if not _own_files(folder):
        return False
    return time.time() - folder.stat().st_mtime > STALE_SECONDS


def _touch(path: Path) -> None:
    """Mark an entry used now. The time is given explicitly: the kernel's own file times come
    from a clock that ticks only every few milliseconds, too coarse to order uses."""
    try:
        now = time.time_ns()
        os.utime(path, ns=(now, now))
    except OSError:  # a read-only cache still serves
        pass
