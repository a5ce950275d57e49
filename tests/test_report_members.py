"""An ensemble run's members on its validation part (metrics.json `members`) and the report's
"The members" section: each member's score alone against the ensemble's, and the per-row spread."""
import json

import numpy as np
import pytest

from nnctl.commands.train import train_config
from nnctl.config import load_config
from nnctl.data import load_dataset
from nnctl.report.page import run_page
from nnctl.report.rundata import read_run
from nnctl.runs.model import load_model

from .conftest import CONFIGS

SETS = ["training.iterations=15", "training.dtype=float64", "training.early_stopping=null"]


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory):
    cfg = load_config(CONFIGS / "iris.yaml", SETS + ["model.ensemble=3"])
    run = train_config(cfg, runs_dir=tmp_path_factory.mktemp("members"), plot=False).run
    return cfg, run


def test_each_members_score_is_the_member_alone_and_the_ensembles_the_mean(ensemble):
    cfg, run = ensemble
    metrics = json.loads((run / "metrics.json").read_text())
    found, dataset, model = metrics["members"], load_dataset(cfg), load_model(run)
    assert found["rows"] == len(dataset.y_val) == 30 and len(found["scores"]) == 3
    y = dataset.y_val.astype(int)
    for k, scores in enumerate(found["scores"]):
        proba = model.network.member(k).predict_output(dataset.X_val)
        assert scores["accuracy"] == pytest.approx(np.mean(proba.argmax(axis=1) == y))
        assert scores["log_loss"] == pytest.approx(-np.mean(np.log(proba[np.arange(30), y])), rel=1e-9)
    # no temperature: the ensemble's log loss is the validation loss metrics.json has
    assert found["ensemble"]["log_loss"] == pytest.approx(metrics["validation"]["loss"], rel=1e-9)
    assert found["ensemble"]["accuracy"] == metrics["validation"]["accuracy"]
    spread = found["row_spread"]
    assert sum(spread["histogram"]["counts"]) == 30
    members = model.member_outputs(dataset.X_val)
    predicted = members.mean(axis=0).argmax(axis=1)
    per_row = members[:, np.arange(30), predicted].std(axis=0)
    assert spread["quantiles"]["0.5"] == pytest.approx(np.median(per_row))
    assert spread["mean"] == pytest.approx(per_row.mean())


def test_the_report_shows_the_members_and_a_single_run_does_not(ensemble, tmp_path):
    _, run = ensemble
    page = run_page(read_run(run))
    assert "<h2>The members</h2>" in page and "member 2" in page and "ensemble (the mean)" in page
    assert "members&#x27; disagreement per row" in page or "members' disagreement per row" in page
    single = train_config(load_config(CONFIGS / "iris.yaml", SETS), runs_dir=tmp_path, plot=False).run
    assert "members" not in json.loads((single / "metrics.json").read_text())
    assert "The members" not in run_page(read_run(single))


def test_a_regression_ensemble_scores_its_members_in_the_targets_units(tmp_path):
    cfg = load_config(CONFIGS / "diabetes.yaml", SETS + ["model.ensemble=2"])
    run = train_config(cfg, runs_dir=tmp_path, plot=False).run
    metrics = json.loads((run / "metrics.json").read_text())
    found = metrics["members"]
    assert set(found["ensemble"]) == {"r2", "rmse"}
    assert found["ensemble"]["rmse"] == pytest.approx(metrics["validation"]["rmse"], rel=1e-6)
    assert found["row_spread"]["of"] == "the prediction"
