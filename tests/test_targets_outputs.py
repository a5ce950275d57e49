"""Several targets beyond predict and evaluate (issue 34): serve, export, MLflow, the report,
explain, calibration and conformal, each answering per target as predict does."""
import json

import numpy as np
import pandas as pd
import pytest

from tests.cli_helpers import cli, train_run
from tests.test_targets import table

CONFIG = ("data:\n  path: {data}\n  target: [price, days, cond]\n"
          "model:\n  layers: [8]\ntraining:\n  iterations: 6\n  optimizer: adam\n  checkpoint_every: null\n")


@pytest.fixture(scope="module")
def multi_run(tmp_path_factory):
    """One trained run of two regression targets and a three-class one, and its table."""
    folder = tmp_path_factory.mktemp("targets")
    data = folder / "data.csv"
    data.write_text(table())
    config = folder / "config.yaml"
    config.write_text(CONFIG.format(data=data))
    return train_run(config, folder / "runs"), data


def predicted(run, data, **options) -> pd.DataFrame:
    from nnctl.commands.predict import predict_csv

    return predict_csv(run, data, **options)


# --- serve -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_serve_answers_each_row_with_every_target(multi_run, tmp_path):
    httpx = pytest.importorskip("httpx")
    from tests.test_serve import serving

    run, data = multi_run
    frame = pd.read_csv(data).head(5)
    expected = predicted(run, data, proba=True).head(5)
    with serving(run, log=tmp_path / "serve.log") as (url, _):
        rows = frame[["a", "b", "c", "d"]].to_dict("records")
        answer = httpx.post(f"{url}/predict", json={"rows": rows, "proba": True, "keep": ["a"]}).json()
        text = frame.to_csv(index=False)
        as_csv = httpx.post(f"{url}/predict?proba=true", content=text,
                            headers={"Content-Type": "text/csv"}).json()
        info = httpx.get(f"{url}/model").json()
    assert answer == as_csv | {"kept": [{"a": a} for a in frame["a"]]}
    assert [set(r) for r in answer["predictions"]] == [{"price", "days", "cond"}] * 5
    np.testing.assert_allclose([r["price"] for r in answer["predictions"]], expected["price"], rtol=1e-6)
    np.testing.assert_allclose([r["days"] for r in answer["predictions"]], expected["days"], rtol=1e-6)
    assert [r["cond"] for r in answer["predictions"]] == list(expected["cond"])
    assert [set(r) for r in answer["probabilities"]] == [{"cond"}] * 5
    np.testing.assert_allclose([r["cond"]["good"] for r in answer["probabilities"]], expected["p_cond_good"],
                               rtol=1e-6)
    assert info["task"] == "multitarget"
    assert info["targets"] == [{"name": "price", "task": "regression"}, {"name": "days", "task": "regression"},
                               {"name": "cond", "task": "classification", "classes": ["fair", "good", "poor"]}]


def test_served_rows_are_objects_of_targets_in_process(multi_run):
    """The app's answer, without a server: what a client reads for each option."""
    from nnctl.runs.model import load_model
    from nnctl.serving.app import predictions
    from nnctl.serving.bodies import Refusal, request_options

    run, data = multi_run
    model = load_model(run)
    frame = pd.read_csv(data).head(3)
    plain = predictions(model, frame, request_options(False, None, None, []))
    assert set(plain) == {"predictions"} and list(plain["predictions"][0]) == ["price", "days", "cond"]
    with pytest.raises(Refusal, match="--spread does not support several targets yet"):
        predictions(model, frame, request_options(False, None, None, [], spread=True))
