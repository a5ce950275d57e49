"""A cache of prepared datasets, so training on the same CSV again skips parsing.

An entry holds the arrays `load_dataset` made (as memory-mappable `.npy` files) and the rest of
the Dataset as JSON; a streamed dataset's entry holds its shards instead (see `shards.py`).
Its key is a hash of the CSV's resolved path, size and modification time (of every file, for a
folder or glob of files), the `data` config, the seed, the task and the dtype: change any of
them and a new entry is made.
Entries are written to a temporary folder and renamed into place; one that cannot be read back
whole (truncated, corrupt, from another nnctl) is deleted and rebuilt, never trusted.

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
import tempfile
import time
from pathlib import Path

import numpy as np

from ..jsonfmt import finite
from ..resources import parse_size

FORMAT = 1
MIN_BYTES = 1 << 20
DEFAULT_LIMIT = "2GB"
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
    `layout`: "arrays" (a Dataset's four arrays) or "shards" (a streamed dataset's shards, always
    keyed: streaming needs them on disk whatever the file's size)."""
    from .. import __version__

    from .multifile import is_many, member_files

    path = cfg.data.path
    files = member_files(path) if is_many(path) else [Path(path)]
    if sum(f.stat().st_size for f in files) < MIN_BYTES and layout == "arrays":
        return None
    files += [Path(p) for p in (cfg.data.validation_path,) if p]
    stats = [(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    data = {k: v for k, v in finite(cfg.data).items() if k not in NOT_IN_KEY}
    identity = {"format": FORMAT, "nnctl": __version__, "files": stats, "data": data, "seed": cfg.seed,
                "fold": list(fold) if fold else None,
                "task": cfg.model.task, "dtype": cfg.training.dtype}
    if layout != "arrays":
        identity["layout"] = layout
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]


def load(key: str):
    """The cached Dataset, or None (a damaged entry is removed)."""
    from .dataset import Dataset
    from .encoding import FeatureEncoder

    found = entry_meta(key)  # marked used: pruned last
    if found is None:
        return None
    folder, meta = found
    try:
        arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False) for name in ARRAYS}
        for name, shape in meta["shapes"].items():
            if list(arrays[name].shape) != shape:
                raise ValueError(f"{name} shape")
        rows = folder / "val_rows.npy"  # absent in an entry from before validation.csv had row numbers
        val_rows = np.load(rows, allow_pickle=False) if rows.is_file() else None
        if val_rows is not None and (val_rows.dtype != np.int64 or val_rows.shape != (len(arrays["X_val"]),)):
            raise ValueError("val_rows shape")
        return Dataset(**arrays, val_rows=val_rows, task=meta["task"], target=meta["target"],
                       encoder=FeatureEncoder.from_meta(meta["encoder"], saved=False), classes=meta["classes"],
                       target_scaler=meta["target_scaler"], rows_read=meta["rows_read"],
                       rows_dropped=meta["rows_dropped"], class_counts=meta["class_counts"],
                       notes=[tuple(n) for n in meta["notes"]])
    except (OSError, ValueError, KeyError, TypeError):
        shutil.rmtree(folder, ignore_errors=True)
        return None


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
                "shapes": {name: list(getattr(dataset, name).shape) for name in ARRAYS}}

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
    if not folder.is_dir():
        return None
    try:
        meta = json.loads((folder / "meta.json").read_text())
        if meta.get("key") != key:
            raise ValueError("key mismatch")
    except (OSError, ValueError):
        shutil.rmtree(folder, ignore_errors=True)
        return None
    _touch(folder / "meta.json")
    return folder, meta


def drop(key: str) -> None:
    """Remove a damaged entry."""
    shutil.rmtree(cache_dir() / key, ignore_errors=True)


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
