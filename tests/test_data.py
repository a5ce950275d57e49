import numpy as np
import pytest

from nnctl.config import load_config
from nnctl.data import load_dataset
from nnctl.data.dataset import stratified_split
from nnctl.errors import NnctlError


def dataset(write_config, csv_path, extra=""):
    cfg = load_config(write_config(f"data:\n  path: {csv_path}\n  target: y\n{extra}"))
    return load_dataset(cfg)


def error_of(write_config, csv_path, extra=""):
    with pytest.raises(NnctlError) as info:
        dataset(write_config, csv_path, extra)
    return str(info.value)


def test_iris_classes_sorted_and_split_stratified(iris_config):
    ds = load_dataset(load_config(iris_config()))
    assert ds.task == "classification"
    assert ds.classes == ["setosa", "versicolor", "virginica"]
    assert ds.X_train.shape == (120, 4) and ds.X_val.shape == (30, 4)
    assert ds.X_train.dtype == np.float32 and ds.X_train.flags.c_contiguous
    assert np.bincount(ds.y_val).tolist() == [10, 10, 10]
    assert ds.encoder.scaler["kind"] == "standard"
    # scaled with the training part's statistics only
    np.testing.assert_allclose(ds.X_train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(ds.X_train.std(axis=0), 1, atol=1e-4)
    assert not np.allclose(ds.X_val.mean(axis=0), 0, atol=1e-5)


def test_split_is_drawn_from_the_seed(iris_config):
    a = load_dataset(load_config(iris_config()))
    b = load_dataset(load_config(iris_config()))
    c = load_dataset(load_config(iris_config("seed: 7\n")))
    np.testing.assert_array_equal(a.X_val, b.X_val)
    assert not np.array_equal(a.X_val, c.X_val)


def test_stratified_split_keeps_proportions():
    y = np.array([0] * 80 + [1] * 20)
    train, val = stratified_split(y, 0.25, np.random.default_rng(0))
    assert len(val) == 25 and np.bincount(y[val]).tolist() == [20, 5]
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(100))


def test_minmax_and_none_scaling(write_config, write_csv):
    path = write_csv("a,b,y\n0,10,1.5\n2,20,2.5\n4,30,3.25\n6,40,4.5\n8,50,5.5\n")
    ds = dataset(write_config, path, "  scale: minmax\n  validation_split: 0\n")
    assert ds.X_train.min() == 0 and ds.X_train.max() == 1
    ds = dataset(write_config, path, "  scale: none\n  validation_split: 0\n")
    assert ds.X_train[:, 1].tolist() == [10, 20, 30, 40, 50]


def test_regression_target_is_standardized(write_config, write_csv):
    path = write_csv("a,y\n" + "".join(f"{i},{i * 2.5 + 0.1}\n" for i in range(30)))
    ds = dataset(write_config, path)
    assert ds.task == "regression" and ds.y_train.shape == (24, 1)
    assert ds.target_scaler["kind"] == "standard"
    np.testing.assert_allclose(ds.y_train.mean(), 0, atol=1e-5)
    ds = dataset(write_config, path, "  scale_target: false\n")
    assert ds.target_scaler is None and ds.y_train.max() > 10


def test_numeric_labels_stay_numeric(write_config, write_csv):
    path = write_csv("a,y\n" + "".join(f"{i},{i % 2}\n" for i in range(10)))
    ds = dataset(write_config, path)
    assert ds.classes == [0, 1] and all(type(c) is int for c in ds.classes)
    assert ds.n_outputs == 1


@pytest.mark.parametrize(
    "text, message",
    [
        ("a,y\nhello,1\nworld,0\n", "column 'a' is not numeric (e.g. 'hello')"),
        ("a,y\n1,1\n,0\n2,1\n", "missing values in column 'a' (first in data row 2, 1 row in all)"),
        ("a,y\n1,1\ninf,0\n2,1\n", "column 'a' has an infinite value"),
        ("a,y\n1,1\n2,1\n3,1\n", "single class"),
        ("", "empty"),
        ("a,y\n", "no data rows"),
        ("a,b\n1,2\n", "target column 'y' not in the file"),
    ],
)
def test_data_errors_name_the_column(write_config, write_csv, text, message):
    assert message in error_of(write_config, write_csv(text))


def test_missing_feature_column_is_named(write_config, write_csv):
    path = write_csv("a,y\n1,0\n2,1\n")
    assert "'b'" in error_of(write_config, path, "  features: [a, b]\n")


def test_missing_policies(write_config, write_csv):
    path = write_csv("a,b,y\n1,2,0\n,4,1\n5,6,0\n7,,1\n9,10,0\n11,12,1\n")
    assert dataset(write_config, path, "  missing: drop\n  validation_split: 0\n").X_train.shape == (4, 2)
    ds = dataset(write_config, path, "  missing: mean\n  validation_split: 0\n  scale: none\n")
    assert ds.X_train.shape == (6, 2)
    assert ds.X_train[1, 0] == pytest.approx((1 + 5 + 7 + 9 + 11) / 5)


def test_missing_file(write_config, tmp_path):
    assert "not found" in error_of(write_config, tmp_path / "nope.csv")


@pytest.mark.parametrize("kind", ["standard", "minmax"])
def test_scaler_stats_over_row_chunks_match_float64_numpy(monkeypatch, kind):
    import nnctl.data.scaling as scaling

    monkeypatch.setattr(scaling, "STATS_ROWS", 7)  # several chunks and a ragged last one
    X = (np.random.default_rng(4).normal(size=(50, 3)) * [1, 1e3, 1e-3] + [0, 5e4, -2]).astype(np.float32)
    offset, scale = scaling._moment_stats(X, kind)
    X64 = X.astype(np.float64)
    if kind == "standard":
        expected = X64.mean(axis=0), X64.std(axis=0)
    else:
        expected = X64.min(axis=0), X64.max(axis=0) - X64.min(axis=0)
    np.testing.assert_allclose(offset, expected[0], rtol=1e-12)
    np.testing.assert_allclose(scale, expected[1], rtol=1e-10)


def test_range_check_finds_overflow_in_float32_but_not_huge_float64(write_config, write_csv):
    rows = "a,y\n" + "".join(f"{v},{i % 2}\n" for i, v in enumerate(["1e308", "1e308", "1", "2"] * 3))
    data = write_csv(rows)
    cfg = write_config(f"data:\n  path: {data}\n  target: y\n  scale: none\n")
    with pytest.raises(NnctlError, match="too large for float32"):
        load_dataset(load_config(cfg))
    # the same values fit float64, though their float64 column sum overflows
    dataset = load_dataset(load_config(cfg, ["training.dtype=float64"]))
    assert np.isfinite(dataset.X_train).all() and dataset.X_train.max() == 1e308


def test_rows_with_more_fields_than_the_header_are_a_clear_error(tmp_path):
    """pandas reads such rows with their first fields as an index and every column shifted; a
    row-number feature then failed on that index as 'a bug in nnctl'."""
    from .cli_helpers import assert_clean_error, cli

    (tmp_path / "t.csv").write_text("y,c\n0,0,0,0\n1,1,1,1\n")
    (tmp_path / "c.yaml").write_text("data:\n  path: t.csv\n  target: y\n")
    assert_clean_error(cli("train", tmp_path / "c.yaml", "--runs-dir", tmp_path / "runs"),
                       "rows have more fields than the header's 2 column names")
