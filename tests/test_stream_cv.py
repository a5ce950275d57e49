"""Streamed cv folds (data/streamfolds.py) scaled by their training folds alone under the scalers
that bend the values (robust, quantile) and a quantile target, as in-memory cv scales its folds;
and the shards under those scalers hold what the model's scaler makes of the raw rows."""
import numpy as np
import pandas as pd
import pytest

from nnctl.config import load_config
from nnctl.data import load_dataset
from nnctl.data.encoding import FeatureEncoder
from nnctl.data.scaling import fit_target, to_training

from .test_streaming import small_shards, write_cfg, write_table  # noqa: F401 (a fixture)


def fold_rows(fold, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, validation rows) of a streamed fold, as file row numbers."""
    held = fold.parts["validation"].head_rows(len(fold.parts["validation"]))
    return np.setdiff1d(np.arange(n), held), held


def in_memory_encoder(raw: pd.DataFrame, rows: np.ndarray, scale: str, missing: str = "error") -> FeatureEncoder:
    """The encoder in-memory cv fits on these training rows (categories from the whole table)."""
    encoder = FeatureEncoder(["a", "b", "c", "colour"])
    encoder.fit(raw.iloc[rows], ["colour"], scale, missing, np.float32, categories_from=raw)
    return encoder


@pytest.mark.parametrize("scale", ["robust", "quantile"])
def test_a_streamed_fold_fits_robust_and_quantile_scaling_on_its_training_rows_alone(tmp_path, small_shards, scale):
    table = write_table(tmp_path)
    fold = load_dataset(load_config(write_cfg(tmp_path, table), [f"data.scale={scale}"]), fold=(1, 3))
    raw = pd.read_csv(table)
    train, held = fold_rows(fold, len(raw))
    expected = in_memory_encoder(raw, train, scale)
    # every value fits the fold's sample: exactly the in-memory fold's scaler, not the table's
    assert fold.encoder.scaler == expected.scaler
    whole = in_memory_encoder(raw, np.arange(len(raw)), scale).scaler
    assert fold.encoder.scaler["offset" if scale == "robust" else "quantiles"] != \
        whole["offset" if scale == "robust" else "quantiles"]
    # both parts read as the fold's model maps their raw rows (what predict gives it)
    for part, rows in (("train", train), ("validation", held)):
        X, _ = fold.parts[part].head(len(rows))
        np.testing.assert_array_equal(X, expected.transform(raw.iloc[rows], np.float32))


def test_a_streamed_fold_fills_then_fits_robust_scaling_on_its_training_rows(tmp_path, small_shards):
    """`missing: mean` under robust: the fill is the training rows' mean and the scaler is fitted
    on the filled values, as in memory (the fill's mean taken over float32 values: 1e-6 apart)."""
    table = write_table(tmp_path)
    lines = table.read_text().splitlines()
    for i in range(1, len(lines), 3):  # column a missing in every 3rd row: the fill moves the quartiles
        lines[i] = "," + lines[i].split(",", 1)[1]
    table.write_text("\n".join(lines) + "\n")
    fold = load_dataset(load_config(write_cfg(tmp_path, table), ["data.scale=robust", "data.missing=mean"]),
                        fold=(2, 3))
    raw = pd.read_csv(table)
    train, held = fold_rows(fold, len(raw))
    expected = in_memory_encoder(raw, train, "robust", "mean")
    assert fold.encoder.fill["a"] == pytest.approx(expected.fill["a"], abs=1e-6)
    np.testing.assert_allclose(fold.encoder.scaler["offset"], expected.scaler["offset"], atol=1e-6)
    np.testing.assert_allclose(fold.encoder.scaler["scale"], expected.scaler["scale"], atol=1e-6)
    X, _ = fold.parts["validation"].head(len(held))
    np.testing.assert_allclose(X, expected.transform(raw.iloc[held], np.float32), atol=1e-5)


def test_a_streamed_fold_fits_a_quantile_target_on_its_training_rows(tmp_path, small_shards):
    table = write_table(tmp_path, regression=True)
    cfg = load_config(write_cfg(tmp_path, table), ["data.target_transform=quantile"])
    fold = load_dataset(cfg, fold=(0, 3))
    raw = pd.read_csv(table)
    train, held = fold_rows(fold, len(raw))
    y = raw["target"].to_numpy()
    expected = fit_target(y[train].reshape(-1, 1), "quantile")
    assert fold.target_scaler["kind"] == "quantile"
    # fitted on the float32 values the shards hold: the knots within float32's rounding
    np.testing.assert_allclose(fold.target_scaler["knots"][0], expected["knots"][0], rtol=1e-6)
    whole = fit_target(y.reshape(-1, 1), "quantile")
    assert len(whole["knots"][0]) != len(expected["knots"][0]) or \
        not np.allclose(whole["knots"][0], expected["knots"][0])
    _, y_val = fold.parts["validation"].head(len(held))
    np.testing.assert_allclose(y_val.reshape(-1), to_training(y[held].reshape(-1, 1), expected)[:, 0], atol=1e-5)


def test_a_streamed_fold_fits_each_quantile_target_of_several_on_its_training_rows(tmp_path, small_shards):
    from .test_streaming_targets import config, write

    train = write(tmp_path, 400, 0, "t.csv")
    fold = load_dataset(load_config(config(tmp_path, train), ["data.target_transform=quantile"]), fold=(1, 3))
    raw = np.loadtxt(train, delimiter=",", skiprows=1, usecols=(4, 5))  # price, days
    rows = fold.parts["train"].head_rows(len(fold.parts["train"]))
    held = fold.parts["validation"].head_rows(len(fold.parts["validation"]))
    _, y_val = fold.parts["validation"].head(len(held))
    for j in (0, 1):
        expected = fit_target(raw[rows, j:j + 1], "quantile")
        np.testing.assert_allclose(fold.targets[j].target_scaler["knots"][0], expected["knots"][0], rtol=1e-6)
        np.testing.assert_allclose(y_val[:, j], to_training(raw[held, j:j + 1], expected)[:, 0], atol=1e-5)
    assert fold.targets[2].target_scaler is None and set(np.unique(y_val[:, 2])) <= {0.0, 1.0, 2.0}


def test_calibration_conformal_scores_and_importance_see_the_class_mix_of_a_sorted_file(tmp_path, small_shards,
                                                                                       monkeypatch):
    """Issue 35: on a file sorted by class, the validation rows the steps after training read are
    a seeded sample whose class mix is the whole validation part's (its first rows: one class)."""
    from nnctl.commands import train as train_command
    from nnctl.commands.train import train_config

    table = write_table(tmp_path)
    lines = table.read_text().splitlines()
    table.write_text("\n".join([lines[0]] + sorted(lines[1:], key=lambda line: line.rsplit(",", 1)[1])) + "\n")
    cfg = load_config(write_cfg(tmp_path, table), ["training.calibration=temperature", "report.importance=true",
                                                   "training.iterations=2"])
    monkeypatch.setattr(train_command, "HELD_OUT_ROWS", 60)
    seen = {}

    def spy(name, real):
        def call(first, held, *args, **kwargs):
            seen[name] = np.asarray(held.y_val)
            return real(first, held, *args, **kwargs)
        monkeypatch.setattr(train_command, name, call)

    for name in ("calibrate", "add_conformal", "run_importance"):
        spy(name, getattr(train_command, name))
    train_config(cfg, tmp_path / "runs", "sorted", plot=False)
    y_all = np.concatenate(list(load_dataset(cfg).parts["validation"].targets()))
    whole = np.bincount(y_all, minlength=3) / len(y_all)
    assert sorted(seen) == ["add_conformal", "calibrate", "run_importance"]
    for name, y in seen.items():
        assert len(y) == 60, name
        np.testing.assert_allclose(np.bincount(y, minlength=3) / 60, whole, atol=0.12, err_msg=name)
    assert np.bincount(y_all[:60], minlength=3).max() == 60  # what the first rows would have been


def test_streamed_cv_folds_of_a_file_sorted_by_class_keep_the_class_mix(tmp_path, small_shards):
    table = write_table(tmp_path, 600)
    lines = table.read_text().splitlines()
    table.write_text("\n".join([lines[0]] + sorted(lines[1:], key=lambda line: line.rsplit(",", 1)[1])) + "\n")
    cfg = load_config(write_cfg(tmp_path, table))
    folds = [load_dataset(cfg, fold=(i, 4)) for i in range(4)]
    per_class = np.array([f.counts["validation"] for f in folds])  # (folds, classes)
    assert per_class.sum() == 600 and (per_class.max(axis=0) - per_class.min(axis=0) <= 1).all()
    for f in folds:  # and each fold's training part keeps the table's mix
        np.testing.assert_array_equal(f.counts["train"] + f.counts["validation"], per_class.sum(axis=0))
