"""Several files as one table: data.path (or a DATA argument) as a folder or a glob."""
import json

import numpy as np
import pandas as pd
import pytest

from nnctl.config import load_config
from nnctl.data import load_dataset
from nnctl.data.cache import cache_key
from nnctl.data.scan import encoded_chunks, scan_table
from nnctl.errors import NnctlError

from .cli_helpers import assert_clean_error, cli
from .conftest import DATASETS


def write_parts(folder, df, parts=3, suffix=".parquet"):
    folder.mkdir(exist_ok=True)
    for i, part in enumerate(np.array_split(np.arange(len(df)), parts)):
        path = folder / f"part-{i}{suffix}"
        rows = df.iloc[part]
        rows.to_parquet(path, index=False) if suffix == ".parquet" else rows.to_csv(path, index=False)
    return folder


def iris():
    return pd.read_csv(DATASETS / "iris.csv")


@pytest.mark.parametrize("given, suffix", [("parts", ".parquet"), ("parts/part-*.csv", ".csv")])
def test_a_folder_or_glob_is_one_table_in_memory_and_in_a_scan(write_config, tmp_path, given, suffix):
    write_parts(tmp_path / "parts", iris(), suffix=suffix)
    (tmp_path / "parts" / "_SUCCESS").write_text("")  # a writer's marker file is not a part
    cfg = load_config(write_config(f"data:\n  path: {given}\n  target: species\n"))
    whole = load_dataset(load_config(write_config(f"data:\n  path: {DATASETS / 'iris.csv'}\n  target: species\n",
                                                  "whole.yaml")))
    parts = load_dataset(cfg)
    assert parts.rows_read == 150 and parts.classes == whole.classes
    np.testing.assert_array_equal(np.sort(parts.X_train, axis=0), np.sort(whole.X_train, axis=0))
    scan = scan_table(cfg, chunk_rows=20)
    assert scan.rows == 150 and len(scan.files) == 3 and scan.files[0].endswith(f"part-0{suffix}")
    rows = np.concatenate([r for part in ("train", "validation") for r, _, _ in encoded_chunks(cfg, scan, part, 16)])
    assert sorted(rows) == list(range(150))  # row numbers run on through the files, in name order


def test_the_first_file_with_other_columns_is_named_with_the_column(write_config, tmp_path):
    folder = write_parts(tmp_path / "parts", iris())
    iris().drop(columns="petal_width").iloc[:5].to_parquet(folder / "part-5.parquet", index=False)
    iris().iloc[:5].assign(extra=1).to_parquet(folder / "part-7.parquet", index=False)
    result = cli("train", write_config("data:\n  path: parts\n  target: species\n"), "--runs-dir", tmp_path / "runs")
    assert_clean_error(result, "part-5.parquet", "lacks column 'petal_width'", "part-0.parquet")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_pattern_matching_nothing_is_a_clean_error(write_config, tmp_path):
    cfg = load_config(write_config("data:\n  path: nowhere/part-*.parquet\n  target: y\n"))
    with pytest.raises(NnctlError, match="no file matches this pattern"):
        scan_table(cfg)


def test_the_cache_key_covers_every_file(write_config, tmp_path):
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(60_000, 4)), columns=list("abcd")).assign(y=rng.integers(0, 2, 60_000))
    folder = write_parts(tmp_path / "parts", df, suffix=".csv")
    cfg = load_config(write_config("data:\n  path: parts\n  target: y\n"))
    key = cache_key(cfg)
    assert key is not None  # the files together pass the cache's size threshold
    last = folder / "part-2.csv"
    last.write_text(last.read_text() + "0,0,0,0,1\n")
    assert cache_key(cfg) != key


def test_evaluate_reads_a_folder_as_one_table(iris_run, tmp_path):
    write_parts(tmp_path / "parts", iris(), parts=2, suffix=".csv")
    whole = cli("evaluate", iris_run, DATASETS / "iris.csv", "--json")
    parts = cli("evaluate", iris_run, tmp_path / "parts", "--json")
    assert parts.exit_code == 0, parts.stderr
    # two files are two forward passes: BLAS may round a float32 product by its batch's shape
    assert_close(json.loads(parts.stdout), json.loads(whole.stdout))


def assert_close(got, expected, where="evaluate"):
    """Equal, but numbers within 1e-6 relative (nested dicts and lists)."""
    if isinstance(expected, dict):
        assert got.keys() == expected.keys(), where
        for key in expected:
            assert_close(got[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert len(got) == len(expected), where
        for i, (g, e) in enumerate(zip(got, expected)):
            assert_close(g, e, f"{where}[{i}]")
    elif isinstance(expected, float):
        assert got == pytest.approx(expected, rel=1e-6, abs=1e-12), where
    else:
        assert got == expected, where
