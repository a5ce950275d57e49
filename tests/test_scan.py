"""The first pass over a table (data/scan.py) learns what the in-memory path learns from the
same training rows, chunk size aside; `encoded_chunks` gives the same arrays."""
import numpy as np
import pandas as pd
import pytest

from nnctl.config import load_config
from nnctl.data.columns import categorical_columns, feature_columns
from nnctl.data.dataset import encode_labels
from nnctl.data.encoding import FeatureEncoder
from nnctl.data.scan import encoded_chunks, scan_table
from nnctl.data.splits import hashed_validation
from nnctl.data.tables import open_table, read_table
from nnctl.errors import NnctlError


def mixed_table(rows=500, seed=0) -> pd.DataFrame:
    """Numbers (one with missing values, one far from zero), an integer, two categorical
    columns (one with missing values and many categories), a three-class text target."""
    rng = np.random.default_rng(seed)
    a = rng.normal(3.0, 2.0, rows)
    a[rng.random(rows) < 0.1] = np.nan
    colour = rng.choice(["red", "green", "blue", "grey"], rows, p=[0.4, 0.3, 0.2, 0.1]).astype(object)
    colour[rng.random(rows) < 0.05] = None
    return pd.DataFrame({"a": a, "big": 1e6 + rng.normal(0, 1e-3, rows), "n": rng.integers(0, 7, rows),
                         "colour": colour, "city": [f"c{i}" for i in rng.integers(0, 30, rows)],
                         "y": rng.choice(["cat", "dog", "eel"], rows)})


def config(write_config, path, extra=""):
    return load_config(write_config(f"seed: 7\ndata:\n  path: {path}\n  target: y\n  categorical: auto\n"
                                    f"  validation_split: 0.25\n{extra}"))


def in_memory_oracle(cfg):
    """The in-memory functions on a DataFrame of the same training rows: the encoder, the
    training matrix, the training rows' numbers and class indices."""
    data = cfg.data
    table = open_table(data.path)
    features = feature_columns(data, table.header, table.where, [])
    df = read_table(table, columns=features + [data.target])
    categorical = categorical_columns(df, features, data.categorical, data.path)
    rows = np.arange(len(df))
    keep = ~(df.isna().any(axis=1) if data.missing == "drop" else df[data.target].isna()).to_numpy()
    df, rows = df[keep], rows[keep]
    train = ~hashed_validation(rows, cfg.seed, data.validation_split)
    encoder = FeatureEncoder(features, unknown=data.unknown_category, decimal=data.decimal)
    X = encoder.fit(df[train], categorical, data.scale, data.missing, np.dtype(cfg.training.dtype),
                    categories_from=df, embedding=data.embedding)
    classes, y = encode_labels(df[data.target], data.target, data.path)
    return encoder, X, rows[train], classes, y[train]


def concatenated(cfg, scan, part="train", chunk_rows=None):
    parts = list(encoded_chunks(cfg, scan, part, chunk_rows=chunk_rows))
    return [np.concatenate([p[i] for p in parts]) for i in range(3)]


@pytest.mark.parametrize("scale, missing, embedding", [("standard", "mean", "{}"), ("minmax", "drop", "auto"),
                                                       ("none", "mean", "{city: 4}")])
def test_the_scan_fits_what_memory_fits_on_the_same_training_rows(write_config, tmp_path, scale, missing, embedding):
    mixed_table().to_csv(tmp_path / "t.csv", index=False)
    cfg = config(write_config, tmp_path / "t.csv", f"  scale: {scale}\n  missing: {missing}\n  embedding: {embedding}\n")
    encoder, X, rows, classes, y = in_memory_oracle(cfg)
    scan = scan_table(cfg, chunk_rows=37)  # chunks that split the table unevenly
    assert scan.encoder.categories == encoder.categories and scan.encoder.embedding == encoder.embedding
    assert scan.encoder.inputs == encoder.inputs
    if missing == "mean":
        assert scan.encoder.fill.keys() == encoder.fill.keys()
        for col, value in encoder.fill.items():
            assert scan.encoder.fill[col] == (value if isinstance(value, str) else pytest.approx(value, abs=1e-9))
    np.testing.assert_allclose(scan.encoder.scaler["offset"], encoder.scaler["offset"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(scan.encoder.scaler["scale"], encoder.scaler["scale"], rtol=1e-12, atol=1e-9)
    assert scan.classes == classes and scan.train_rows == len(rows)
    assert scan.rows == 500 and scan.train_rows + scan.val_rows + scan.rows_dropped == 500
    got_rows, got_X, got_y = concatenated(cfg, scan, chunk_rows=50)
    np.testing.assert_array_equal(got_rows, rows)
    np.testing.assert_allclose(got_X, X, rtol=1e-6, atol=1e-6)
    assert got_X.dtype == np.float32
    np.testing.assert_array_equal(got_y, y)


def test_validation_rows_are_the_hashed_rest_and_chunking_does_not_change_them(write_config, tmp_path):
    mixed_table().to_csv(tmp_path / "t.csv", index=False)
    cfg = config(write_config, tmp_path / "t.csv", "  missing: mean\n")
    scan = scan_table(cfg, chunk_rows=64)
    train, _, _ = concatenated(cfg, scan, "train", chunk_rows=13)
    val, X_val, y_val = concatenated(cfg, scan, "validation", chunk_rows=101)
    assert len(val) == scan.val_rows and not set(train) & set(val)
    assert sorted(np.concatenate([train, val])) == list(range(500))
    assert abs(len(val) / 500 - 0.25) < 0.06
    assert X_val.shape == (len(val), scan.n_inputs)
    whole = scan_table(cfg, chunk_rows=500).encoder.scaler
    np.testing.assert_allclose(whole["offset"], scan.encoder.scaler["offset"], rtol=1e-13)
    np.testing.assert_allclose(whole["scale"], scan.encoder.scaler["scale"], rtol=1e-13)


def test_a_regression_targets_scaler_is_the_training_rows_mean_and_std(write_config, tmp_path):
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"x": rng.normal(size=300), "y": rng.normal(50.0, 4.0, 300)})
    df.to_csv(tmp_path / "r.csv", index=False)
    cfg = config(write_config, tmp_path / "r.csv")
    scan = scan_table(cfg, chunk_rows=29)
    train = ~hashed_validation(np.arange(300), 7, 0.25)
    assert scan.task == "regression" and scan.classes is None
    assert scan.target_scaler["offset"][0] == pytest.approx(df.y[train].mean(), abs=1e-9)
    assert scan.target_scaler["scale"][0] == pytest.approx(df.y[train].std(ddof=0), abs=1e-9)
    rows, _, y = concatenated(cfg, scan, chunk_rows=40)
    assert y.shape == (train.sum(), 1) and y.dtype == np.float32
    np.testing.assert_allclose(y[:, 0], (df.y[train] - df.y[train].mean()) / df.y[train].std(ddof=0), atol=1e-5)


def test_the_scan_gives_the_in_memory_warnings(write_config, tmp_path):
    rng = np.random.default_rng(2)
    df = pd.DataFrame({"id": np.arange(100, 200), "x": rng.normal(size=100), "y": rng.integers(0, 2, 100)})
    df.to_csv(tmp_path / "w.csv")  # pandas' unnamed index column first
    scan = scan_table(config(write_config, tmp_path / "w.csv"), chunk_rows=30)
    texts = [text for _, text in scan.notes]
    assert any("first column has no name" in t for t in texts)
    assert any("column 'id' has a different whole number in every row (an ID?)" in t for t in texts)
    assert scan.task == "classification" and scan.classes == [0, 1]


def test_missing_and_infinite_values_are_errors_naming_their_row(write_config, tmp_path):
    df = mixed_table(rows=120).assign(a=1.0)
    df.loc[97, "a"] = np.nan
    df.to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(NnctlError) as info:
        scan_table(config(write_config, tmp_path / "m.csv", "  missing: error\n  features: [a, n]\n"), chunk_rows=25)
    assert "missing values in column 'a' (first in data row 98)" in str(info.value)
    df.loc[97, "a"] = np.inf
    df.to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(NnctlError) as info:
        scan_table(config(write_config, tmp_path / "m.csv", "  features: [a, n]\n"), chunk_rows=25)
    assert "column 'a' has an infinite value (data row 98)" in str(info.value)


def test_decimal_commas_and_late_text_in_a_numeric_column_are_errors(write_config, tmp_path):
    (tmp_path / "d.csv").write_text("x;y\n" + "".join(f"{i},5;{i % 2}\n" for i in range(40)))
    with pytest.raises(NnctlError, match="decimal comma"):
        scan_table(config(write_config, tmp_path / "d.csv"), chunk_rows=10)
    (tmp_path / "t.csv").write_text("x,y\n" + "".join(f"{i},{i % 2}\n" for i in range(40)) + "oops,1\n")
    with pytest.raises(NnctlError) as info:
        scan_table(config(write_config, tmp_path / "t.csv"), chunk_rows=10)
    assert "column 'x' holds numbers, but data row 41 has 'oops'" in str(info.value)


def test_a_validation_file_with_an_unknown_label_is_an_error_naming_its_row(write_config, tmp_path):
    mixed_table(rows=100).to_csv(tmp_path / "t.csv", index=False)
    mixed_table(rows=30, seed=3).assign(y=["cat"] * 29 + ["yak"]).to_csv(tmp_path / "v.csv", index=False)
    cfg = config(write_config, tmp_path / "t.csv", f"  validation_path: {tmp_path / 'v.csv'}\n  missing: mean\n")
    scan = scan_table(cfg, chunk_rows=16)
    assert scan.val_rows == 0 and scan.train_rows == 100
    assert any("validation_split is not used" in text for _, text in scan.notes)
    with pytest.raises(NnctlError) as info:
        list(encoded_chunks(cfg, scan, "validation", chunk_rows=8))
    assert "label 'yak' in column 'y' is not in the training file (data row 30)" in str(info.value)
