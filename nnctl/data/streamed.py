"""Training data that stays on disk: `data.streaming`.

`streaming_reason(cfg)` says whether (and why) a config streams: `true`, or `auto` when the
encoded training data would exceed the memory budget (`NNCTL_MEMORY_LIMIT`). `load_streamed`
then returns a `StreamedDataset`: the first run makes one pass over the table (`onepass.py`: each
chunk parsed once, learned from and written, then finished into shards once the scaling is known)
and writes the encoded training and validation rows as shards into the dataset cache (the
same keys, atomic temp-folder-then-rename and size limit as `cache.py`); later runs on the same
file and settings open those shards without reading the table. Training reads a window of a few
shards at a time through `source.py`'s protocol (`training/loop.py`).

cv folds (i, K) on streamed data share one entry written without a validation split: fold i's
rows are picked shard by shard as they are read, stratified by class for a classification, and
rescaled by its training folds' own statistics (`streamfolds.py`): the inputs' scaler (robust
and quantile fitted anew on the raw numbers such an entry holds), the `missing: mean` fills (the
entry keeps missing numbers as NaN) and a regression target's scaler.
"""
from __future__ import annotations

import atexit
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import NnctlError
from ..resources import human_bytes
from .shards import ShardPart
from .streamfolds import InFold, class_offsets, fold_scaling, fold_source, keeps_missing

SHARD_BYTES = 8 << 20  # a shard holds about this much of X
MIN_SHARD_ROWS = 1024
WINDOW_SHARDS = 8  # shuffle_window: auto reads this many shards into one buffer...
WINDOW_SHARE = 8  # ...unless that buffer (held twice: as read and permuted) would pass budget / this


@dataclass
class StreamedDataset:
    """What training, scoring and `build_meta` read of a `Dataset`, with the rows left on disk:
    the parts are `parts[name]` (`shards.ShardPart`), read through data.source's protocol as a
    Dataset's are; no arrays of the whole part stand in for `X_train` and the like."""

    parts: dict
    task: str
    target: str
    encoder: object
    classes: list | None = None
    target_scaler: dict | None = None
    rows_read: int = 0
    rows_dropped: int = 0
    class_counts: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    counts: dict = field(default_factory=dict)  # part -> rows per class (np.ndarray), classification
    window: int = 0  # rows shuffled together (data.shuffle_window, in whole shards)
    digest: str = ""  # the entry's key: the same file, settings and fold give the same one
    # several targets (Dataset.targets): one data.targets.Target each, in order; y is then
    # (rows, targets) in the config's dtype, as in memory (data/targets.py). None for one target.
    targets: list | None = None
    streamed = True
    resident = False  # its rows stay on disk: never stacked with other datasets' in memory

    @property
    def n_inputs(self) -> int:
        return self.parts["train"].n_inputs

    # the protocol data.dataset.Dataset keeps in memory, here read from the shards
    def chunks(self, part: str):
        """(X, y) of the part ("train" | "validation"), a shard at a time."""
        return self.parts[part].chunks()

    def held_out(self, rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """`rows` of the validation rows drawn at random from `seed` (the part may not fit in
        memory, and the first rows of a sorted file would not stand for the rest)."""
        return self.parts["validation"].sample(min(rows, len(self.parts["validation"])), seed)

    def preview(self, rows: int) -> tuple:
        """(X, y, row numbers) of the validation part's first `rows` rows (validation.csv: a
        report's charts need no more)."""
        return (*self.parts["validation"].head(rows), self.validation_rows(rows))

    def fingerprint(self):
        """The shards' cache key: the file, its size and time, the settings (and the fold)."""
        yield self.digest.encode()

    def validation_rows(self, n: int) -> np.ndarray:
        """The file row numbers (0-based) of the first `n` validation rows."""
        return self.parts["validation"].head_rows(n)

    @property
    def n_outputs(self) -> int:
        if self.targets is not None:
            return sum(t.n_outputs for t in self.targets)
        if self.task == "regression":
            return self.parts["train"].y_width
        return 1 if len(self.classes) == 2 else len(self.classes)


def streaming_reason(cfg) -> str | None:
    """Why this config streams (the `note:` train prints), or None to load it whole."""
    setting = cfg.data.streaming
    if setting is False:
        return None
    if setting is True:
        return "data.streaming is true"
    from ..resources import encoded_bytes_estimate, memory_budget
    from .cache import MIN_BYTES
    from .scan import estimate_size

    path = Path(cfg.data.path)
    if path.exists() and not path.is_file() and not path.is_dir():
        return None  # a FIFO or a device can be read only once, as it comes: never sized ahead
    try:
        if path.is_file() and path.stat().st_size < MIN_BYTES:
            return None  # parsed in milliseconds whatever the budget: not worth a look
        estimate = encoded_bytes_estimate(cfg, estimate_size(cfg))
    except (OSError, NnctlError):
        return None  # loading says what is wrong with the file
    budget = memory_budget()
    if estimate <= budget:
        return None
    return (f"the encoded training data (about {human_bytes(estimate)}) would exceed the memory budget "
            f"({human_bytes(budget)}; NNCTL_MEMORY_LIMIT)")


def load_streamed(cfg, reason: str, cache: bool = True, fold: tuple[int, int] | None = None,
                  progress=None) -> StreamedDataset:
    """The config's data as shards on disk (see module docstring); `cache=False` writes them
    again, into a private folder removed at exit. `progress` is told how far the first pass has
    read (reading.Reading)."""
    from . import cache as dataset_cache
    from .tables import require_rereadable

    for given_as in ("data.path", "data.validation_path", "data.test_path"):
        path = getattr(cfg.data, given_as.split(".")[1])
        if path:
            require_rereadable(path, given_as, "streaming reads it more than once (its first lines, then its rows)")
    # a fold's shards come from the whole table, raw where each fold fits its own scaler
    source = fold_source(cfg) if fold else cfg
    keep_missing = bool(fold) and keeps_missing(source.data)  # each fold fills them with its own training means
    key = dataset_cache.cache_key(source, layout="shards-folds" if keep_missing else "shards")
    found = dataset_cache.entry_meta(key) if cache else None
    if found is not None:
        try:
            return _opened(cfg, *found, reason, fold)
        except (OSError, ValueError, KeyError, TypeError):
            dataset_cache.drop(key)  # damaged: written again below
    fill = _writer(source, progress, keep_missing)
    folder = dataset_cache.write_entry(key, fill, dataset_cache.limit_bytes()) if cache else None
    if folder is None:  # no cache, or one that cannot be written: the shards still need a home
        folder = Path(tempfile.mkdtemp(prefix="nnctl-shards-"))
        atexit.register(shutil.rmtree, folder, True)
        meta = {"key": key, **fill(folder)}
    else:
        meta = dataset_cache.entry_meta(key)[1]
    return _opened(cfg, folder, meta, reason, fold)


def shard_rows_for(n_inputs: int, itemsize: int) -> int:
    return max(MIN_SHARD_ROWS, SHARD_BYTES // max(n_inputs * itemsize, 1))


def _writer(cfg, progress=None, keep_missing: bool = False):
    """fill(folder) for `cache.write_entry`: one pass over the table (`onepass.write_shards`);
    returns the entry's meta."""
    from .onepass import write_shards

    def fill(folder: Path) -> dict:
        return write_shards(cfg, folder, shard_rows_for, progress, keep_missing)
    return fill


def _opened(cfg, folder: Path, meta: dict, reason: str, fold) -> StreamedDataset:
    """The StreamedDataset of an entry's meta; ValueError when a shard is missing or short."""
    from .encoding import FeatureEncoder

    if not meta.get("streamed") or meta["dtype"] != cfg.training.dtype:
        raise ValueError("not a streamed entry of this dtype")
    n_inputs, dtype = meta["n_inputs"], np.dtype(meta["dtype"])
    y_dtype = np.int64 if meta["task"] == "classification" else dtype

    def part(name, keep=None, source=None):
        sizes = meta["parts"].get(source or name, [])
        _check_files(folder, source or name, sizes, n_inputs, dtype, y_dtype, meta["y_width"],
                     len(meta["classes"]) if meta["classes"] is not None else None,
                     [len(t["classes"]) if t["classes"] else None for t in meta.get("targets") or []])
        return ShardPart(folder, source or name, sizes, meta["shard_rows"], n_inputs, dtype, y_dtype, meta["y_width"],
                         keep)

    encoder = FeatureEncoder.from_meta(meta["encoder"], saved=False)
    target_scaler, targets = meta["target_scaler"], _targets(cfg, meta)
    if fold:
        i, k = fold
        before = None
        if meta["classes"] is not None:  # stratified: each class dealt to the folds in turn
            before = class_offsets(part("train").targets(), len(meta["classes"]))
        parts = {"train": part("train", InFold(cfg.seed, k, i, False, before)),
                 "validation": part("validation", InFold(cfg.seed, k, i, True, before), source="train")}
        # sets encoder.scaler (and fill): the training folds'; the target scaler(s) too
        scalers = target_scaler if targets is None else [t.target_scaler for t in targets]
        regression = None if targets is None else [c for c, t in enumerate(targets) if t.task == "regression"]
        rescale, scalers = fold_scaling(parts["train"], encoder, dtype, scalers, cfg.data, regression)
        if targets is None:
            target_scaler = scalers
        else:
            for t, scaler in zip(targets, scalers):
                t.target_scaler = scaler
        for p in parts.values():
            p.rescale = rescale
    else:
        parts = {"train": part("train"), "validation": part("validation")}
    counts = {}
    if meta["classes"] is not None:
        n = len(meta["classes"])
        counts = {name: (np.asarray(meta["counts"][name]) if not fold else
                         sum((np.bincount(y, minlength=n) for y in p.targets()), np.zeros(n, dtype=np.int64)))
                  for name, p in parts.items()}
    train = parts["train"]
    window = _window_rows(cfg, train.shard_rows, n_inputs * dtype.itemsize)
    notes = [tuple(n) for n in meta["notes"]]
    notes.append(("note", f"streaming from encoded shards on disk, because {reason}: {len(train):,} training rows "
                          f"in {train.n_shards} shard{'s' if train.n_shards != 1 else ''} of up to {train.shard_rows:,} rows, "
                          f"shuffled within windows of {min(window, len(train)):,} rows (data.shuffle_window)"))
    return StreamedDataset(parts, meta["task"], meta["target"], encoder, meta["classes"], target_scaler, meta["rows_read"], meta["rows_dropped"],
                           meta["class_counts"], notes, counts, window,
                           digest=f"{meta['key']}:{fold[0]}/{fold[1]}" if fold else meta["key"], targets=targets)


def _targets(cfg, meta: dict) -> list | None:
    """Several targets' Target from the entry's meta, with their class weights from the config
    (data.targets.<t>.class_weight); None for one target."""
    from .targets import Target, settings

    if "targets" not in meta:
        return None
    return [Target(t["name"], t["task"], t["classes"], t["target_scaler"], settings(cfg, t["name"]).get("class_weight"),
                   t["class_counts"]) for t in meta["targets"]]


def _window_rows(cfg, shard_rows: int, row_bytes: int) -> int:
    """data.shuffle_window in whole shards (at least one): auto is WINDOW_SHARDS shards, fewer
    when their buffers would take more than 1/WINDOW_SHARE of the memory budget."""
    setting = cfg.data.shuffle_window
    if setting == "auto":
        from ..resources import memory_budget

        affordable = memory_budget() // WINDOW_SHARE // max(row_bytes * 2, 1)
        setting = min(WINDOW_SHARDS * shard_rows, affordable)
    return max(1, int(setting) // shard_rows) * shard_rows


def _check_files(folder: Path, part: str, sizes: list[int], n_inputs: int, dtype, y_dtype, y_width: int,
                 n_classes: int | None, each_classes: list = ()) -> None:
    """ValueError unless each shard of the part is what meta says: plain files of the rows,
    dtype and C order written, and class indices that are classes (`each_classes`: several
    targets' numbers of classes, None for a regression). Anything else (a link, a file replaced
    by hand) is rebuilt, never trained on."""
    from .shards import check_labels, check_npy, shard_name

    for j, n in enumerate(sizes):
        check_npy(folder / shard_name(part, j, "X"), (n, n_inputs), dtype)
        check_npy(folder / shard_name(part, j, "y"), (n, y_width) if y_width else (n,), y_dtype)
        check_npy(folder / shard_name(part, j, "rows"), (n,), np.int64)
        if n_classes is not None:
            check_labels(np.load(folder / shard_name(part, j, "y"), mmap_mode="r", allow_pickle=False), n_classes)
        if any(k is not None for k in each_classes):
            y = np.load(folder / shard_name(part, j, "y"), mmap_mode="r", allow_pickle=False)
            for column, k in enumerate(each_classes):
                if k is not None:
                    labels = y[:, column]
                    if not np.array_equal(labels, np.round(labels)):
                        raise ValueError(f"target {column}: class indices that are not whole numbers")
                    check_labels(labels.astype(np.int64), k)
