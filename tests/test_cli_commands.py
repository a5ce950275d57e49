"""predict, evaluate, validate, init, runs, schema through the real command line."""
import csv
import io
import json

import numpy as np
import pytest

from .cli_helpers import assert_clean_error, cli
from .conftest import CONFIGS, DATASETS

IRIS = DATASETS / "iris.csv"


@pytest.fixture(scope="module")
def diabetes_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    return cli("train", CONFIGS / "diabetes.yaml", "--runs-dir", runs, "--quiet").stdout.strip()


@pytest.fixture(scope="module")
def xor_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    return cli("train", CONFIGS / "xor.yaml", "--runs-dir", runs, "--quiet").stdout.strip()


def rows_of(text):
    return list(csv.DictReader(io.StringIO(text)))


# --- predict ---------------------------------------------------------------------------------
def test_predict_writes_labels_to_stdout(iris_run):
    result = cli("predict", iris_run, IRIS)
    assert result.exit_code == 0 and result.stderr == ""
    rows = rows_of(result.stdout)
    assert list(rows[0]) == ["prediction"] and len(rows) == 150
    assert rows[0]["prediction"] == "setosa" and rows[-1]["prediction"] == "virginica"


def test_predict_proba_columns_sum_to_one(iris_run):
    rows = rows_of(cli("predict", iris_run, IRIS, "--proba").stdout)
    assert list(rows[0]) == ["prediction", "p_setosa", "p_versicolor", "p_virginica"]
    total = sum(float(rows[0][k]) for k in ("p_setosa", "p_versicolor", "p_virginica"))
    assert total == pytest.approx(1.0, abs=1e-5)


def test_predict_matches_columns_by_name_and_ignores_extras(iris_run, write_csv):
    path = write_csv("extra,petal_width,petal_length,sepal_width,sepal_length\n"
                     "x,0.2,1.4,3.5,5.1\ny,2.3,5.4,3.0,6.9\n")
    rows = rows_of(cli("predict", iris_run, path).stdout)
    assert [r["prediction"] for r in rows] == ["setosa", "virginica"]


def test_predict_names_missing_columns(iris_run, write_csv):
    path = write_csv("sepal_length,sepal_width\n5.1,3.5\n")
    assert_clean_error(cli("predict", iris_run, path), "'petal_length', 'petal_width'", "not in the CSV")


def test_predict_accepts_the_model_file_and_writes_output_atomically(iris_run, tmp_path):
    out = tmp_path / "p.csv"
    result = cli("predict", f"{iris_run}/model.npz", IRIS, "--output", out)
    assert result.exit_code == 0 and result.stdout == ""
    assert len(rows_of(out.read_text())) == 150
    assert [p.name for p in tmp_path.iterdir()] == ["p.csv"]


def test_predict_numeric_labels_stay_numeric(xor_run):
    rows = rows_of(cli("predict", xor_run, DATASETS / "xor.csv", "--proba").stdout)
    assert [r["prediction"] for r in rows] == ["0", "1", "1", "0"]
    assert list(rows[0]) == ["prediction", "p_0", "p_1"]


def test_predict_regression_in_target_units(diabetes_run):
    rows = rows_of(cli("predict", diabetes_run, DATASETS / "diabetes.csv").stdout)
    values = np.array([float(r["prediction"]) for r in rows])
    assert len(values) == 442 and 50 < values.mean() < 250


def test_predict_in_chunks_gives_the_same_rows(iris_run):
    from nnctl.commands.predict import predict_frames
    from nnctl.runs.model import load_model

    model = load_model(iris_run)
    whole = next(predict_frames(model, IRIS, proba=True))
    chunked = list(predict_frames(model, IRIS, proba=True, chunk_rows=40))
    assert len(chunked) == 4
    import pandas as pd

    pd.testing.assert_frame_equal(pd.concat(chunked, ignore_index=True), whole)


def test_bad_model_path(tmp_path):
    assert_clean_error(cli("predict", tmp_path / "nope", IRIS), "model not found")
    assert_clean_error(cli("predict", tmp_path, IRIS), "no model.npz")


# --- evaluate --------------------------------------------------------------------------------
def test_evaluate_json_has_every_metric(iris_run):
    result = cli("evaluate", iris_run, IRIS, "--json")
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert set(report) == {"task", "rows", "accuracy", "balanced_accuracy", "precision", "recall", "f1", "log_loss",
                           "roc_auc", "brier", "ece", "per_class", "confusion_matrix", "labels"}
    assert report["labels"] == ["setosa", "versicolor", "virginica"]
    assert np.sum(report["confusion_matrix"]) == 150


def test_evaluate_table_on_stdout(iris_run):
    result = cli("evaluate", iris_run, IRIS)
    assert "balanced_accuracy" in result.stdout and "confusion matrix" in result.stdout
    assert "\x1b[" not in result.stdout


def test_thresholds_exit_1_and_name_the_metric(iris_run):
    assert cli("evaluate", iris_run, IRIS, "--fail-under", "accuracy=0.5").exit_code == 0
    result = cli("evaluate", iris_run, IRIS, "--fail-under", "accuracy=1.01", "--fail-over", "log_loss=0.0")
    assert result.exit_code == 1
    assert "failed: accuracy" in result.stderr and "is under 1.01" in result.stderr
    assert "failed: log_loss" in result.stderr


def test_unknown_metric_exits_2_and_lists_the_valid_ones(iris_run):
    result = cli("evaluate", iris_run, IRIS, "--fail-under", "acuracy=0.9")
    assert_clean_error(result, "did you mean 'accuracy'", "balanced_accuracy, precision")
    assert_clean_error(cli("evaluate", iris_run, IRIS, "--fail-under", "accuracy"), "METRIC=NUMBER")


def test_evaluate_regression(diabetes_run):
    report = json.loads(cli("evaluate", diabetes_run, DATASETS / "diabetes.csv", "--json").stdout)
    assert set(report) == {"task", "rows", "mse", "rmse", "mae", "r2"}
    assert report["rmse"] == pytest.approx(np.sqrt(report["mse"]))
    assert 0.3 < report["r2"] < 0.9


def test_evaluate_unknown_label(iris_run, write_csv):
    path = write_csv("sepal_length,sepal_width,petal_length,petal_width,species\n5.1,3.5,1.4,0.2,rose\n")
    assert_clean_error(cli("evaluate", iris_run, path), "label 'rose'", "species")


def test_evaluate_needs_the_target_column(iris_run, write_csv):
    path = write_csv("sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n")
    assert_clean_error(cli("evaluate", iris_run, path), "'species'")


# --- validate --------------------------------------------------------------------------------
def test_validate_prints_resolved_yaml_and_summary():
    import yaml

    result = cli("validate", CONFIGS / "iris.yaml", "--set", "model.layers=[32,8]")
    assert result.exit_code == 0
    cfg = yaml.safe_load(result.stdout)
    assert cfg["model"]["layers"] == [32, 8] and cfg["training"]["l2"] == 0.0
    assert "4 → 32 → 8 → 3" in result.stderr
    assert "setosa (50)" in result.stderr and "120 train, 30 validation" in result.stderr
    assert "451 parameters" in result.stderr  # (4*32+32) + (32*8+8) + (8*3+3)


def test_validate_reports_data_errors(write_config, write_csv):
    data = write_csv("a,y\nx,1\ny,0\n")
    path = write_config(f"data:\n  path: {data}\n  target: y\n")
    assert_clean_error(cli("validate", path), "column 'a' is not numeric", "data.categorical")


# --- init ------------------------------------------------------------------------------------
@pytest.mark.new_defaults
def test_init_writes_a_config_that_trains(tmp_path):
    path = tmp_path / "starter.yaml"
    assert cli("init", path).exit_code == 0
    text = path.read_text()
    assert text.count("#") > 15 and "# Adam with decoupled weight decay" in text  # commented, with reasons
    result = cli("train", path, "--runs-dir", tmp_path / "runs", "--quiet", "--set", "training.iterations=3")
    assert result.exit_code == 0, result.stderr


def test_init_refuses_to_overwrite_without_force(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("mine")
    assert_clean_error(cli("init", path), "exists", "--force")
    assert path.read_text() == "mine"
    assert cli("init", path, "--force").exit_code == 0 and path.read_text() != "mine"


def test_bundled_iris_copy_is_the_dataset():
    from pathlib import Path

    import nnctl

    copy = Path(nnctl.__file__).parent / "examples" / "iris.csv"
    assert copy.read_bytes() == IRIS.read_bytes()


# --- runs ------------------------------------------------------------------------------------
def test_runs_lists_newest_first(tmp_path):
    for name in ("first", "second"):
        cli("train", CONFIGS / "xor.yaml", "--runs-dir", tmp_path, "--quiet", "--name", name,
            "--set", "training.iterations=2")
    listed = json.loads(cli("runs", tmp_path, "--json").stdout)
    assert [r["name"].split("-")[0] for r in listed] == ["second", "first"]
    assert listed[0]["architecture"] == "2 → 4 → 1" and listed[0]["status"] == "completed"
    table = cli("runs", tmp_path).stdout
    assert "second" in table and "2 → 4 → 1" in table


def test_runs_in_an_empty_folder_says_so(tmp_path):
    result = cli("runs", tmp_path)
    assert result.exit_code == 0 and "no runs" in result.stderr and result.stdout == ""
    assert json.loads(cli("runs", tmp_path, "--json").stdout) == []


# --- schema and help -------------------------------------------------------------------------
def test_schema_is_json_schema_of_the_config():
    schema = json.loads(cli("schema").stdout)
    assert schema["properties"]["training"]["properties"]["optimizer"]["enum"] == [
        "sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop"]
    assert schema["properties"]["data"]["required"] == ["path", "target"]
    assert schema["properties"]["model"]["additionalProperties"] is False


def test_schema_accepts_the_bundled_configs():
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    schema = json.loads(cli("schema").stdout)
    sweep_schema = json.loads(cli("schema", "--sweep").stdout)
    for path in CONFIGS.glob("*.yaml"):
        jsonschema.validate(yaml.safe_load(path.read_text()), sweep_schema if "sweep" in path.stem else schema)


@pytest.mark.parametrize("command", ["train", "predict", "evaluate", "validate", "gradcheck", "trace", "plot",
                                     "schema", "init", "runs", "sweep", "cv", "report", "export"])
def test_every_command_has_help_with_an_example(command):
    result = cli(command, "--help")
    assert result.exit_code == 0 and "Example:" in result.stdout


@pytest.mark.new_defaults  # the file holds the key table's own defaults
def test_the_committed_schema_file_is_current():
    from .conftest import ROOT

    assert (ROOT / "nnctl.schema.json").read_text() == cli("schema").stdout


def test_predict_csv_api_equals_the_command_line(iris_run):
    from nnctl import predict_csv

    frame = predict_csv(iris_run, IRIS, proba=True)
    printed = rows_of(cli("predict", iris_run, IRIS, "--proba").stdout)
    assert list(frame.columns) == ["prediction", "p_setosa", "p_versicolor", "p_virginica"]
    assert len(frame) == len(printed) == 150
    assert frame["prediction"].tolist() == [r["prediction"] for r in printed]
    np.testing.assert_allclose(frame["p_virginica"].to_numpy(), [float(r["p_virginica"]) for r in printed], rtol=1e-6)
