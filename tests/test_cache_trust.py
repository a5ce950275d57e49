"""The dataset cache serves only what it wrote for this very file: a same-size rewrite that keeps
the modification time is a new entry (content fingerprint), and an entry whose arrays or shards
are links, or not of the dtype, shape, order or class indices its meta says, is rebuilt."""
import os
import shutil

import numpy as np
import pytest

import nnctl.data.cache as cache
from nnctl.config import load_config
from nnctl.data import load_dataset

from .test_streaming import write_cfg, write_table

ROWS = "".join(f"{i},{i % 7},{i % 2}\n" for i in range(80))


@pytest.fixture
def cached(write_config, write_csv, monkeypatch):
    monkeypatch.setattr(cache, "MIN_BYTES", 0)
    data = write_csv("a,b,y\n" + ROWS)
    return write_config(f"data:\n  path: {data}\n  target: y\n"), data


def _rewrite_keeping_times(path, text):
    """What `cp -p`, `rsync -a` or `tar x` leave: new content, the same size and mtime."""
    before = os.stat(path)
    path.write_text(text)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


@pytest.mark.parametrize("sampled", [False, True], ids=["hashed-whole", "sampled"])
def test_a_same_size_rewrite_keeping_the_mtime_is_not_served_stale(cached, monkeypatch, sampled):
    if sampled:  # a large file: sampled blocks plus inode and ctime
        monkeypatch.setattr(cache, "WHOLE_HASH_BYTES", 64)
    config, data = cached
    first = load_dataset(load_config(config))
    flipped = "a,b,y\n" + "".join(f"{i},{i % 7},{1 - i % 2}\n" for i in range(80))  # 0/1 labels fixed in place
    _rewrite_keeping_times(data, flipped)
    again = load_dataset(load_config(config))
    assert again.y_train.tolist() != first.y_train.tolist()  # the file's new labels ...
    fresh = load_dataset(load_config(config), cache=False)
    np.testing.assert_array_equal(again.y_train, fresh.y_train)  # ... exactly as parsing gives them
    np.testing.assert_array_equal(again.X_train, fresh.X_train)


def test_the_fingerprint_hashes_small_files_whole_and_samples_large_ones(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_bytes(b"x,y\n" * 1000)
    shutil.copy2(a, b)  # cp -p: the same bytes in another file
    assert cache.fingerprint(a) == cache.fingerprint(b)  # whole: the content alone
    b.write_bytes(b"x,y\n" * 999 + b"x,z\n")
    assert cache.fingerprint(a) != cache.fingerprint(b)  # a change in the last block
    shutil.copy2(a, b)
    assert cache.fingerprint(a, samples=4) != cache.fingerprint(b, samples=4)  # sampled: another inode
    before = cache.fingerprint(a, samples=4)
    with open(a, "r+b") as fh:  # an in-place write between the sampled blocks changes the ctime
        fh.seek(5)
        fh.write(b"q")
    assert cache.fingerprint(a, samples=4) != before


def test_a_folder_of_many_files_is_sampled_a_few_blocks_each(tmp_path, monkeypatch, write_config):
    monkeypatch.setattr(cache, "MIN_BYTES", 0)
    monkeypatch.setattr(cache, "WHOLE_HASH_BYTES", 1000)  # the parts together are larger
    parts = tmp_path / "parts"
    parts.mkdir()
    for i in range(4):
        (parts / f"part-{i}.csv").write_text("a,b,y\n" + ROWS)
    seen = []
    real = cache.fingerprint
    monkeypatch.setattr(cache, "fingerprint", lambda path, samples=0: seen.append(samples) or real(path, samples))
    load_dataset(load_config(write_config(f"data:\n  path: {parts}\n  target: y\n")))
    assert seen == [cache.SAMPLES // 4] * 4


def _entry():
    [entry] = [p for p in cache.cache_dir().iterdir() if not p.name.startswith(".")]
    return entry


def _tamper(path, how):
    """Replace an entry's `.npy` file with what its meta does not say (or with a link)."""
    array = np.load(path)
    if how == "labels 7":
        array[0] = 7
    elif how == "labels -1":
        array[-1] = -1
    elif how == "float64":
        array = array.astype(np.float64)
    elif how == "fortran":
        array = np.asfortranarray(array)
    elif how == "shape":
        array = array[:-1]
    if how == "symlink":
        outside = path.parent.parent.parent / "elsewhere.npy"
        np.save(outside, array)
        path.unlink()
        path.symlink_to(outside)
    else:
        np.save(path, array)


TAMPERINGS = ["labels 7", "labels -1", "float64", "fortran", "shape", "symlink"]


@pytest.mark.parametrize("how", TAMPERINGS)
def test_an_entry_not_as_its_meta_says_is_rebuilt(cached, how):
    config, _ = cached
    first = load_dataset(load_config(config))
    _tamper(_entry() / ("y_train.npy" if how.startswith("labels") else "X_train.npy"), how)
    again = load_dataset(load_config(config))
    np.testing.assert_array_equal(again.X_train, first.X_train)
    np.testing.assert_array_equal(again.y_train, first.y_train)
    assert again.X_train.dtype == np.float32 and again.X_train.flags.c_contiguous
    assert not any(f.is_symlink() for f in _entry().iterdir())  # written anew


def test_an_entry_folder_that_is_a_link_is_replaced_not_followed(cached, tmp_path):
    config, _ = cached
    first = load_dataset(load_config(config))
    entry = _entry()
    elsewhere = tmp_path / "elsewhere"
    shutil.move(entry, elsewhere)
    entry.symlink_to(elsewhere, target_is_directory=True)
    again = load_dataset(load_config(config))
    np.testing.assert_array_equal(again.X_train, first.X_train)
    assert not entry.is_symlink() and entry.is_dir()
    assert (elsewhere / "meta.json").exists()  # what the link pointed at is left alone


@pytest.mark.parametrize("how", TAMPERINGS)
def test_a_shard_not_as_its_meta_says_is_rebuilt(tmp_path, how):
    config = load_config(write_cfg(tmp_path, write_table(tmp_path, rows=300)))
    first = load_dataset(config)
    X, y = first.parts["train"].head(300)
    _tamper(_entry() / f"train-00000.{'y' if how.startswith('labels') else 'X'}.npy", how)
    again = load_dataset(config)
    np.testing.assert_array_equal(again.parts["train"].head(300)[0], X)
    np.testing.assert_array_equal(again.parts["train"].head(300)[1], y)
    assert not any(f.is_symlink() for f in _entry().iterdir())
