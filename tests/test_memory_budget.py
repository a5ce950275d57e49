"""The memory budget (NNCTL_MEMORY_LIMIT, else half of what is available) and the hashed
validation split and folds that streamed data uses."""
import numpy as np
import pytest

from nnctl import resources
from nnctl.data.splits import hashed_fold, hashed_validation
from nnctl.errors import NnctlError

from .cli_helpers import assert_clean_error, cli


@pytest.mark.parametrize("text, expected", [("500MB", 500 << 20), ("2GB", 2 << 30), ("131072", 128 << 10), ("1.5 gb", 3 << 29),
                                            ("64KB", 64 << 10), ("64TB", 64 << 40)])
def test_the_budget_is_the_variable_when_set(monkeypatch, text, expected):
    monkeypatch.setenv("NNCTL_MEMORY_LIMIT", text)
    assert resources.memory_budget() == expected


@pytest.mark.parametrize("text", ["0", "1", "0.0001KB", "63KB", "65TB", "1" * 400 + "TB"])
def test_a_budget_outside_its_range_is_an_error_saying_the_range(monkeypatch, text):
    monkeypatch.setenv("NNCTL_MEMORY_LIMIT", text)
    with pytest.raises(NnctlError) as info:
        resources.memory_budget()
    assert info.value.where == "NNCTL_MEMORY_LIMIT"
    assert f"got {text!r}" in info.value.message
    assert "between 64KB and 64TB" in info.value.message or "far too large" in info.value.message


def test_by_default_the_budget_is_half_the_smaller_of_available_memory_and_the_cgroup_limit(monkeypatch, tmp_path):
    monkeypatch.delenv("NNCTL_MEMORY_LIMIT", raising=False)
    monkeypatch.setattr(resources, "available_memory", lambda: 8 << 30)
    limit = tmp_path / "memory.max"
    monkeypatch.setattr(resources, "CGROUP_LIMITS", (str(limit),))
    limit.write_text("max\n")  # a cgroup without a limit
    assert resources.memory_budget() == 4 << 30
    limit.write_text(f"{2 << 30}\n")
    assert resources.memory_budget() == 1 << 30
    monkeypatch.setattr(resources, "available_memory", lambda: None)
    limit.unlink()
    assert resources.memory_budget() == resources.FALLBACK_MEMORY // 2


def test_a_bad_budget_is_an_error_naming_the_variable(monkeypatch, iris_config, tmp_path):
    monkeypatch.setenv("NNCTL_MEMORY_LIMIT", "plenty")
    with pytest.raises(NnctlError) as info:
        resources.memory_budget()
    assert info.value.where == "NNCTL_MEMORY_LIMIT" and "got 'plenty'" in info.value.message
    monkeypatch.setenv("NNCTL_CACHE_LIMIT", "lots")  # the cache limit reads sizes the same way
    result = cli("train", iris_config(), "--runs-dir", tmp_path / "runs", "--quiet")
    assert_clean_error(result, "NNCTL_CACHE_LIMIT must be a size such as 500MB or 2GB, got 'lots'")


def test_the_hashed_split_is_near_its_fraction_whatever_the_chunks_and_moves_with_the_seed():
    rows = np.arange(200_000)
    mask = hashed_validation(rows, 42, 0.2)
    assert abs(mask.mean() - 0.2) < 0.005
    chunked = np.concatenate([hashed_validation(rows[i:i + 777], 42, 0.2) for i in range(0, len(rows), 777)])
    np.testing.assert_array_equal(chunked, mask)
    other = hashed_validation(rows, 43, 0.2)
    assert abs(other.mean() - 0.2) < 0.005 and 0.6 < (other == mask).mean() < 0.75  # independent draws agree ~68%
    assert not hashed_validation(rows, 42, 0.0).any() and hashed_validation(rows, 42, 1.0).all()
    assert (hashed_validation(rows, 42, 0.1) <= mask).all()  # a smaller fraction takes a subset: nothing moves


def test_hashed_folds_are_even_chunk_free_and_seeded():
    rows = np.arange(100_000)
    folds = hashed_fold(rows, 1, 5)
    assert folds.dtype == np.int64 and set(np.unique(folds)) == set(range(5))
    assert np.abs(np.bincount(folds) / len(rows) - 0.2).max() < 0.005
    np.testing.assert_array_equal(hashed_fold(rows[5000:6000], 1, 5), folds[5000:6000])
    assert (hashed_fold(rows, 2, 5) != folds).mean() > 0.7
