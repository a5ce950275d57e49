"""Issue 34, the second round: what the first build of several targets refused: the seeds
summary's names, predict's and serve's --spread, explain per target, --threshold per target."""
import json

import numpy as np
import pytest

from nnctl.sweep.cv import score_column
from nnctl.sweep.seeds import final_scores, main_metric, train_seeds
from tests.cli_helpers import assert_clean_error, cli, train_run
from tests.test_targets import multi, table  # noqa: F401  (the fixture and its table)


# --- seeds and cv summaries: the history's val_<target>_<metric> -------------------------------
def test_score_columns_are_historys_names():
    assert score_column("val", "accuracy") == "val_accuracy"
    assert score_column("val", "price.r2") == "val_price_r2"
    assert score_column("test", "a.b.rmse") == "test_a.b_rmse"  # a target's name may hold a dot
    scores = final_scores({"validation": {"loss": 0.5, "price.r2": 0.9, "cond.accuracy": 0.8, "cond.per_class": {}}})
    assert scores == {"val_loss": 0.5, "val_price_r2": 0.9, "val_cond_accuracy": 0.8}
    assert main_metric(list(scores), "price.r2") == "val_price_r2"


def test_a_seeds_summary_of_several_targets_uses_historys_names(multi, tmp_path):
    result = train_seeds(multi(), 2, [], runs_dir=tmp_path, workers=1)
    summary = json.loads((result["folder"] / "summary.json").read_text())
    assert summary["metric"] == "val_price_r2"
    assert {"val_price_r2", "val_days_r2", "val_cond_accuracy"} <= set(summary)
    assert not [k for k in summary if "." in k]
    header = (result["folder"] / "seeds.csv").read_text().splitlines()[0].split(",")
    assert "val_price_r2" in header and "val_cond_accuracy" in header
