"""training.calibration: temperature: fitted on the validation part, kept in model.npz and
metrics.json, used by predict, evaluate and the ONNX graph; labels never change."""
import copy
import csv
import io
import json

import numpy as np
import pytest

from nnctl.commands.predict import evaluate
from nnctl.runs.model import Model, load_model

from .cli_helpers import assert_clean_error, cli, train_run
from .conftest import DATASETS

CENTERS = np.array([[0.0, 0.0], [1.5, 0.0], [0.75, 1.3]])


def blobs(path, rows: int, seed: int, classes: int = 3) -> None:
    """Overlapping Gaussian blobs plus four noise columns: a net trained long on a few hundred
    rows memorizes them and becomes overconfident."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, rows)
    X = np.column_stack([CENTERS[y] + rng.normal(size=(rows, 2)) * 0.9, rng.normal(size=(rows, 4))])
    with open(path, "w") as fh:
        fh.write("a,b,c,d,e,f,label\n")
        for row, label in zip(X, y):
            fh.write(",".join(f"{v:.4f}" for v in row) + f",k{label}\n")


@pytest.fixture
def overfit(tmp_path, write_config):
    """(config, test file) of an overconfident model: long training, no early stopping, no l2."""
    def make(classes: int = 3):
        blobs(tmp_path / "train.csv", 300, 1, classes)
        blobs(tmp_path / "test.csv", 2000, 2, classes)
        config = write_config(
            "seed: 0\n"
            f"data: {{path: {tmp_path / 'train.csv'}, target: label, test_path: {tmp_path / 'test.csv'}, "
            "validation_split: 0.3}\n"
            "model: {layers: [64, 64]}\n"
            "training: {optimizer: adam, learning_rate: 0.01, iterations: 150, batch_size: 32}\n")
        return config, tmp_path / "test.csv"
    return make


def uncalibrated(model: Model) -> Model:
    meta = copy.deepcopy(model.meta)
    del meta["calibration"]
    return Model(model.network, meta, model.path)


def test_temperature_fixes_an_overconfident_model_and_keeps_its_labels(overfit, tmp_path):
    config, test = overfit()
    plain = train_run(config, tmp_path / "runs")
    run = train_run(config, tmp_path / "runs", "training.calibration=temperature")
    metrics = json.loads((run / "metrics.json").read_text())
    t = metrics["calibration"]["temperature"]
    assert t > 1.5
    model = load_model(run)
    assert model.meta["calibration"] == {"temperature": t} and model.temperature == t
    # the same weights, without the temperature: what the plain run saved
    before = uncalibrated(model)
    np.testing.assert_array_equal(before.network.flat_params, load_model(plain).network.flat_params)
    after_report, before_report = evaluate(model, test), evaluate(before, test)
    assert after_report["ece"] < before_report["ece"] / 2
    assert after_report["log_loss"] < before_report["log_loss"]
    assert after_report["accuracy"] == before_report["accuracy"]
    import pandas as pd

    frame = pd.read_csv(test)
    assert (model.predict(frame) == before.predict(frame)).all()
    # scored with the saved model: the run's test metrics are the calibrated ones
    assert metrics["test"]["ece"] == pytest.approx(after_report["ece"])
    assert metrics["reliability"]["part"] == "test" and sum(metrics["reliability"]["bins"]["count"]) == 2000
    # training itself is unchanged: the same history as the plain run
    def history(folder):  # but for the seconds each epoch took
        return [{k: v for k, v in row.items() if k != "seconds"}
                for row in csv.DictReader(open(folder / "history.csv"))]

    assert history(run) == history(plain)
    assert metrics["validation"] == json.loads((plain / "metrics.json").read_text())["validation"]
    assert metrics["calibration"]["val_log_loss_after"] < metrics["calibration"]["val_log_loss_before"]


def test_binary_labels_at_threshold_one_half_do_not_change(tmp_path, write_config):
    config = write_config(f"data: {{path: {DATASETS / 'breast_cancer.csv'}, target: diagnosis}}\n"
                          "model: {layers: [32]}\n"
                          "training: {optimizer: adam, learning_rate: 0.01, iterations: 60, calibration: temperature}\n")
    run = train_run(config, tmp_path / "runs")
    model = load_model(run)
    assert model.temperature != 1.0
    import pandas as pd

    frame = pd.read_csv(DATASETS / "breast_cancer.csv")
    after, before = model.predict_proba(frame), uncalibrated(model).predict_proba(frame)
    assert not np.allclose(after, before)
    np.testing.assert_array_equal(after[:, 1] >= 0.5, before[:, 1] >= 0.5)
    result = cli("predict", run, DATASETS / "breast_cancer.csv", "--threshold", "0.5")
    labels = [r["prediction"] for r in csv.DictReader(io.StringIO(result.stdout))]
    assert labels == list(np.where(before[:, 1] >= 0.5, "malignant", "benign"))


def test_onnx_divides_the_logits_by_the_temperature(overfit, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    config, test = overfit()
    run = train_run(config, tmp_path / "runs", "training.calibration=temperature")
    result = cli("export", run)
    assert result.exit_code == 0, result.stderr
    import pandas as pd

    frame = pd.read_csv(test)
    session = ort.InferenceSession(result.stdout.strip())
    features = json.loads(session.get_modelmeta().custom_metadata_map["features"])
    labels, proba = session.run(None, {"features": frame[features].to_numpy(np.float32)})
    rows = list(csv.DictReader(io.StringIO(cli("predict", run, test, "--proba").stdout)))
    expected = np.array([[float(r[f"p_k{c}"]) for c in range(3)] for r in rows])
    np.testing.assert_allclose(proba, expected, atol=1e-5)
    assert [str(v) for v in labels] == [r["prediction"] for r in rows]
    assert proba.max() < 0.999  # calibrated: the plain model says 1.0 for many rows


def test_without_a_validation_part_it_says_how_to_get_one(iris_config, tmp_path):
    config = iris_config("training: {calibration: temperature}\n")
    result = cli("train", config, "--runs-dir", tmp_path / "runs", "--set", "data.validation_split=0")
    assert_clean_error(result, "training.calibration", "data.validation_split")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.parametrize("task", ["model: {task: regression}\n", ""])
def test_a_regression_is_refused(task, tmp_path, write_config):
    config = write_config(f"data: {{path: {DATASETS / 'diabetes.csv'}, target: progression}}\n{task}"
                          "training: {calibration: temperature, iterations: 2}\n")
    result = cli("train", config, "--runs-dir", tmp_path / "runs")
    assert_clean_error(result, "training.calibration", "regression")


@pytest.mark.parametrize("bad", [{"temperature": -1.0}, {"temperature": 0}, {"temperature": "2"},
                                 {"temperature": float("inf")}, {"t": 2.0}, 3.0])
def test_a_bad_temperature_is_refused_on_load(bad, iris_run, tmp_path):
    from nnctl.npzfile import meta_array

    with np.load(iris_run / "model.npz") as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays.pop("meta")))
    meta["calibration"] = bad
    path = tmp_path / "model.npz"
    np.savez(path, meta=meta_array(meta), **arrays)
    result = cli("predict", path, DATASETS / "iris.csv")
    assert_clean_error(result, "calibration", str(path))


def test_the_report_shows_the_reliability_diagram(iris_run, tmp_path):
    import re
    import shutil
    import xml.etree.ElementTree as ET

    from nnctl.report.write import report_runs

    metrics = json.loads((iris_run / "metrics.json").read_text())
    reliability = metrics["reliability"]
    assert reliability["part"] == "validation" and reliability["n_bins"] == 15
    assert sum(reliability["bins"]["count"]) == reliability["rows"] == metrics["validation"]["rows"]
    run = tmp_path / "run"
    shutil.copytree(iris_run, run)
    html = report_runs([run], tmp_path / "report.html").read_text()
    section = html[html.index("<h2>Calibration</h2>"):]
    section = section[:section.index("</figure>") + len("</figure>")]
    assert f"(ECE) {reliability['ece']:.4f}" in section and "15 equal-width bins" in section
    svg = ET.fromstring(re.search(r"<svg.*?</svg>", section, re.S).group(0))
    bars = [e for e in svg.iter("{http://www.w3.org/2000/svg}rect") if "bar" in e.get("class", "")]
    assert len(bars) == sum(1 for n in reliability["bins"]["count"] if n)
    # a run from before nnctl kept the bins: no section, and no error
    del metrics["reliability"]
    (run / "metrics.json").write_text(json.dumps(metrics))
    assert "<h2>Calibration</h2>" not in report_runs([run], tmp_path / "old.html").read_text()


def test_damaged_reliability_bins_are_named(iris_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(iris_run, run)
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["reliability"]["bins"]["count"][0] = "many"
    (run / "metrics.json").write_text(json.dumps(metrics))
    assert_clean_error(cli("report", run), "reliability.bins", "metrics.json")
