import numpy as np
import pytest

import nnctl.data.cache as cache
from nnctl.config import load_config
from nnctl.data import load_dataset

from .cli_helpers import cli
from .conftest import CONFIGS


@pytest.fixture
def cached_config(write_config, write_csv, monkeypatch):
    monkeypatch.setattr(cache, "MIN_BYTES", 0)
    data = write_csv("a,b,y\n" + "".join(f"{i},{i % 7},{i % 3}\n" for i in range(60)))
    return write_config(f"data:\n  path: {data}\n  target: y\n"), data


def _parse_fails(monkeypatch):
    import nnctl.data.dataset

    def fail(cfg):
        raise AssertionError("parsed the CSV again")

    monkeypatch.setattr(nnctl.data.dataset, "_prepare", fail)


def test_second_load_comes_from_the_cache_and_is_identical(cached_config, monkeypatch):
    path, _ = cached_config
    first = load_dataset(load_config(path))
    _parse_fails(monkeypatch)
    second = load_dataset(load_config(path))
    np.testing.assert_array_equal(first.X_train, second.X_train)
    np.testing.assert_array_equal(first.y_val, second.y_val)
    assert second.classes == first.classes and second.encoder.scaler == first.encoder.scaler
    assert isinstance(second.X_train, np.memmap)


def test_a_changed_file_or_config_is_not_served_stale(cached_config):
    path, data = cached_config
    first = load_dataset(load_config(path))
    assert load_dataset(load_config(path, ["seed=7"])).X_val.tolist() != first.X_val.tolist()
    data.write_text(data.read_text().replace("a,b,y\n0,0,0", "a,b,y\n500,0,0"))
    assert load_dataset(load_config(path)).X_train.max() > first.X_train.max()


def test_a_corrupt_entry_is_rebuilt(cached_config):
    path, _ = cached_config
    first = load_dataset(load_config(path))
    entry = next(p for p in cache.cache_dir().iterdir() if not p.name.startswith("."))
    (entry / "X_train.npy").write_bytes(b"\x93NUMPY garbage")
    again = load_dataset(load_config(path))
    np.testing.assert_array_equal(first.X_train, again.X_train)
    assert (entry / "X_train.npy").stat().st_size > 100  # written anew


def test_no_cache_flag_and_small_files(cached_config, monkeypatch, tmp_path):
    path, _ = cached_config
    result = cli("train", path, "--runs-dir", tmp_path / "runs", "--quiet", "--no-cache")
    assert result.exit_code == 0
    assert [p for p in cache.cache_dir().iterdir()] == []
    monkeypatch.setattr(cache, "MIN_BYTES", 1 << 20)
    cli("train", CONFIGS / "iris.yaml", "--runs-dir", tmp_path / "runs", "--quiet", "--set", "training.iterations=1")
    assert [p for p in cache.cache_dir().iterdir()] == []  # iris is too small to be worth caching


def _entries():
    return sorted(p.name for p in cache.cache_dir().iterdir() if not p.name.startswith("."))


def _load(path, seed):
    return load_dataset(load_config(path, [f"seed={seed}"]))


def test_the_cache_keeps_to_its_limit_dropping_the_least_recently_used(cached_config, monkeypatch):
    path, _ = cached_config
    _load(path, 1)
    (first,) = _entries()
    entry_bytes = sum(f.stat().st_size for f in (cache.cache_dir() / first).iterdir())
    monkeypatch.setenv("NNCTL_CACHE_LIMIT", str(int(2.5 * entry_bytes)))  # room for two entries
    _load(path, 2)
    assert len(_entries()) == 2
    _load(path, 1)  # used again: now the most recent
    _load(path, 3)
    remaining = _entries()
    assert len(remaining) == 2 and first in remaining  # seed 2's entry went
    _parse_fails(monkeypatch)
    _load(path, 1), _load(path, 3)  # both still served from the cache


def test_a_zero_limit_keeps_only_the_newest_entry(cached_config, monkeypatch):
    path, _ = cached_config
    monkeypatch.setenv("NNCTL_CACHE_LIMIT", "0")
    for seed in (1, 2, 3):
        _load(path, seed)
    assert len(_entries()) == 1
    _parse_fails(monkeypatch)
    _load(path, 3)


@pytest.mark.parametrize("text, expected", [("2GB", 2 << 30), ("500 mb", 500 << 20), ("1.5G", 3 << 29), ("123", 123)])
def test_cache_limit_sizes(monkeypatch, text, expected):
    monkeypatch.setenv("NNCTL_CACHE_LIMIT", text)
    assert cache.limit_bytes() == expected


def test_a_bad_cache_limit_is_a_clean_error(cached_config, monkeypatch, tmp_path):
    from .cli_helpers import assert_clean_error

    path, _ = cached_config
    monkeypatch.setenv("NNCTL_CACHE_LIMIT", "lots")
    result = cli("train", path, "--runs-dir", tmp_path / "runs", "--quiet")
    assert_clean_error(result, "NNCTL_CACHE_LIMIT must be a size such as 500MB or 2GB, got 'lots'", "NNCTL_CACHE_LIMIT=2GB")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_pruning_clears_half_written_entries_left_by_killed_writers(cached_config):
    import os
    import time

    path, _ = cached_config
    stale, fresh = cache.cache_dir() / ".tmp-stale", cache.cache_dir() / ".tmp-fresh"
    for folder in (stale, fresh):
        folder.mkdir(parents=True)
        (folder / "X_train.npy").write_bytes(b"half")
    old = time.time() - 2 * cache.STALE_SECONDS
    os.utime(stale, (old, old))
    _load(path, 1)
    assert not stale.exists()
    assert fresh.exists()  # may belong to a writer still at work
