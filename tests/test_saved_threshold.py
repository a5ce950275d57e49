"""A two-class model's headline f1 is its positive class's (as val_f1), and a threshold chosen by
`evaluate --choose-threshold RULE --save` is stored in model.npz and used by evaluate, predict,
serve and ONNX export unless --threshold is given."""
import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from nnctl.nn.metrics import classification_report

from .cli_helpers import assert_clean_error, cli, train_run
from .conftest import CONFIGS, DATASETS

CANCER = DATASETS / "breast_cancer.csv"


def test_two_classes_report_the_positive_class_scores():
    y = np.array([0, 0, 0, 0, 1, 1])
    predicted = np.array([0, 0, 0, 1, 1, 0])
    proba = np.eye(2)[predicted] * 0.8 + 0.1
    report = classification_report(y, predicted, proba, 2, ["a", "b"])
    # class b: tp 1, fp 1, fn 1 -> precision 1/2, recall 1/2, f1 1/2; the macro mean would be 0.625
    assert report["precision"] == report["recall"] == report["f1"] == pytest.approx(0.5)
    assert report["per_class"]["a"]["f1"] == pytest.approx(0.75)


def test_against_scikit_learn_with_two_classes():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    proba = rng.dirichlet(np.ones(2), size=300)
    predicted = proba.argmax(axis=1)
    ours = classification_report(y, predicted, proba, 2)
    assert ours["f1"] == pytest.approx(sk.f1_score(y, predicted))
    assert ours["precision"] == pytest.approx(sk.precision_score(y, predicted))
    assert ours["recall"] == pytest.approx(sk.recall_score(y, predicted))


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return train_run(CONFIGS / "breast_cancer.yaml", tmp_path_factory.mktemp("runs"), "training.iterations=5")


@pytest.fixture
def run(source, tmp_path) -> Path:
    copy = tmp_path / source.name
    shutil.copytree(source, copy)
    return copy


def _json(*args):
    result = cli(*args)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout), result


def _labels(run, *args):
    result = cli("predict", run, CANCER, *args)
    assert result.exit_code == 0, result.stderr
    return [r["prediction"] for r in csv.DictReader(io.StringIO(result.stdout))], result


def test_choosing_f1_raises_the_headline_f1(run):
    plain, _ = _json("evaluate", run, CANCER, "--json")
    chosen, _ = _json("evaluate", run, CANCER, "--choose-threshold", "f1", "--json")
    assert plain["f1"] == pytest.approx(plain["per_class"]["malignant"]["f1"])
    assert chosen["f1"] == pytest.approx(chosen["per_class"]["malignant"]["f1"])
    assert chosen["f1"] >= plain["f1"]


def test_save_stores_the_threshold_and_every_command_uses_it(run):
    before, _ = _labels(run)
    report, result = _json("evaluate", run, CANCER, "--choose-threshold", "recall=0.999", "--save", "--json")
    t = report["threshold"]
    assert report["saved"] == str(run / "model.npz") and "saved in" in result.stderr
    with np.load(run / "model.npz", allow_pickle=False) as npz:
        assert json.loads(str(npz["meta"].item()))["threshold"] == t
        assert "layers.0.W" in npz.files
    assert not [p for p in run.iterdir() if p.name.startswith(".model.npz")]  # no temporary file left
    # predict: the saved threshold, exactly as --threshold with it; --threshold still wins
    saved, result = _labels(run)
    assert "threshold saved in the model" in result.stderr
    assert saved == _labels(run, "--threshold", repr(t))[0] != before
    assert _labels(run, "--threshold", "0.5")[0] == before
    # evaluate scores at it, and says so
    scored, result = _json("evaluate", run, CANCER, "--json")
    assert scored["threshold"] == t and scored["per_class"]["malignant"]["recall"] >= 0.999
    assert "threshold saved in the model" in result.stderr
    assert _json("evaluate", run, CANCER, "--json", "--threshold", "0.5")[0]["threshold"] == 0.5


def test_serve_uses_the_saved_threshold(run):
    pytest.importorskip("fastapi")
    from nnctl.runs.model import load_model

    from .test_serve_fast_paths import client as serve_client

    _json("evaluate", run, CANCER, "--choose-threshold", "recall=0.999", "--save", "--json")
    body = CANCER.read_text()
    client = serve_client(load_model(run))
    answer = client.post("/predict", content=body, headers={"content-type": "text/csv"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == _labels(run)[0]
    answer = client.post("/predict?threshold=0.5", content=body, headers={"content-type": "text/csv"})
    assert answer.json()["predictions"] == _labels(run, "--threshold", "0.5")[0]


def test_onnx_uses_the_saved_threshold(run, tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    import pandas as pd

    _json("evaluate", run, CANCER, "--choose-threshold", "recall=0.999", "--save", "--json")
    frame = pd.read_csv(CANCER)
    for args, expected in (((), _labels(run)[0]), (("--threshold", "0.5"), _labels(run, "--threshold", "0.5")[0])):
        result = cli("export", run, "--output", tmp_path / "m.onnx", *args)
        assert result.exit_code == 0, result.stderr
        session = ort.InferenceSession(str(tmp_path / "m.onnx"))
        features = json.loads(session.get_modelmeta().custom_metadata_map["features"])
        labels, _ = session.run(None, {"features": frame[features].to_numpy(np.float32)})
        assert [v.decode() if isinstance(v, bytes) else str(v) for v in labels] == expected


@pytest.mark.parametrize("args, fragments", [
    (["--save"], ["--save", "--choose-threshold"]),
    (["--choose-threshold", "f1", "--save", "--positive", "benign"], ["--save", "malignant"]),
])
def test_bad_save_requests(run, args, fragments):
    assert_clean_error(cli("evaluate", run, CANCER, *args), *fragments)
    with np.load(run / "model.npz", allow_pickle=False) as npz:
        assert "threshold" not in json.loads(str(npz["meta"].item()))


def test_a_regression_or_several_classes_cannot_save_one(iris_run, tmp_path):
    copy = tmp_path / "iris"
    shutil.copytree(iris_run, copy)
    assert_clean_error(cli("evaluate", copy, DATASETS / "iris.csv", "--choose-threshold", "f1", "--save"),
                       "two-class models")
