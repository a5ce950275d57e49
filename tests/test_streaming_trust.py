"""A streamed run gets the steps after training too (temperature calibration, conformal scores,
reliability bins, importance), computed on its validation part's first rows."""
import numpy as np
import pandas as pd

from nnctl.commands import train as train_command
from nnctl.commands.predict import predict_csv
from nnctl.commands.train import train_config
from nnctl.config import load_config
from nnctl.runs.model import load_model

from .test_streaming import metrics, small_shards, write_cfg, write_table  # noqa: F401 (a fixture)


def test_a_streamed_run_is_calibrated_has_conformal_sets_and_importance(tmp_path, small_shards, monkeypatch):
    monkeypatch.setattr(train_command, "HELD_OUT_ROWS", 100)  # fewer than the validation part's rows
    table = write_table(tmp_path)
    config = write_cfg(tmp_path, table, "  calibration: temperature\nreport:\n  importance: true\n")
    run = train_config(load_config(config), tmp_path / "runs", "s", plot=False).run
    m = metrics(run)
    assert m["validation"]["rows"] > 100
    assert m["calibration"]["temperature"] > 0 and m["reliability"]["rows"] == 100
    assert m["importance"]["rows"] == 100 and (run / "importance.csv").exists()
    model = load_model(run)
    assert model.temperature == m["calibration"]["temperature"] and len(model.conformal_scores) == 100
    sets = predict_csv(run, table, sets=0.9)["prediction_set"]
    assert len(sets) == 1200 and sets.str.len().gt(0).mean() > 0.5


def test_a_streamed_regression_has_intervals(tmp_path, small_shards):
    table = write_table(tmp_path, regression=True)
    run = train_config(load_config(write_cfg(tmp_path, table)), tmp_path / "runs", "r", plot=False).run
    frame = predict_csv(run, table, interval=0.9)
    truth = pd.read_csv(table)["target"].to_numpy()
    inside = np.mean((frame["lower"] <= truth) & (truth <= frame["upper"]))
    assert 0.8 < inside <= 1.0
