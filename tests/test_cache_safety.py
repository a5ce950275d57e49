"""Pruning the dataset cache deletes only what nnctl made: $NNCTL_CACHE_DIR may be a folder
that holds other people's things."""
import json
import os
import time

import nnctl.data.cache as cache
from nnctl.config import load_config
from nnctl.data import load_dataset


def test_pruning_leaves_everything_nnctl_did_not_make(write_config, write_csv, monkeypatch):
    monkeypatch.setattr(cache, "MIN_BYTES", 0)
    monkeypatch.setenv("NNCTL_CACHE_LIMIT", "0")  # prune everything it may
    root = cache.cache_dir()
    old = time.time() - 2 * cache.STALE_SECONDS
    theirs = {
        "pip/wheels/a.whl": b"wheel",
        "important_project/thesis.txt": b"chapter 1",
        "0123456789abcdef0123456789abcdef/notes.txt": b"a key-like name, not an entry",
        "fedcba9876543210fedcba9876543210/meta.json": json.dumps({"key": "something else"}).encode(),
        ".tmp-mine/draft.txt": b"a hidden folder of someone else's",
    }
    for name, content in theirs.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    for folder in root.iterdir():
        os.utime(folder, (old, old))
    data = write_csv("a,b,y\n" + "".join(f"{i},{i % 7},{i % 3}\n" for i in range(60)))
    config = write_config(f"data:\n  path: {data}\n  target: y\n")
    for seed in (1, 2, 3):
        load_dataset(load_config(config, [f"seed={seed}"]))
    for name, content in theirs.items():
        assert (root / name).read_bytes() == content, name
    ours = [f for f in root.iterdir() if cache._is_entry(f)]
    assert len(ours) == 1  # nnctl's own older entries were pruned to the limit
