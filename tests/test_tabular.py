"""Real tabular work (issue 15): separate validation and test files, class weights,
thresholds, ID columns, Parquet, fuller metrics — through the command line."""
import csv
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from .cli_helpers import assert_clean_error, cli
from .conftest import CONFIGS, DATASETS, hide_package


def rows_of(text):
    return list(csv.DictReader(io.StringIO(text)))


def train(config, runs, *sets, ok=True):
    args = ["train", config, "--runs-dir", runs, "--quiet"]
    for s in sets:
        args += ["--set", s]
    result = cli(*args)
    if ok:
        assert result.exit_code == 0, result.stderr
    return result.stdout.strip() if ok else result


def write_config(tmp_path, text, name="config.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def imbalanced(tmp_path_factory):
    """3.5% positives, separable only in part: an unweighted model mostly says 'no'."""
    folder = tmp_path_factory.mktemp("imbalanced")
    rng = np.random.default_rng(11)
    n = 3000
    y = (rng.random(n) < 0.035).astype(int)
    X = rng.normal(size=(n, 6)) + y[:, None] * np.array([1.2, 0.8, 0.0, 0.0, 0.5, 0.0])
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(6)])
    frame["label"] = np.where(y == 1, "fraud", "ok")
    frame.insert(0, "id", [f"T{i:05d}" for i in range(n)])
    frame.iloc[:2000].to_csv(folder / "train.csv", index=False)
    frame.iloc[2000:].to_csv(folder / "test.csv", index=False)
    config = write_config(folder, """seed: 4
data:
  path: train.csv
  target: label
  features: [x0, x1, x2, x3, x4, x5]
  test_path: test.csv
model:
  layers: [16]
training:
  optimizer: adam
  learning_rate: 0.005
  iterations: 30
""")
    return folder, config


# --- class weights ---------------------------------------------------------------------------------
def test_balanced_class_weights_raise_minority_recall(imbalanced, tmp_path):
    folder, config = imbalanced
    plain = train(config, tmp_path / "plain")
    weighted = train(config, tmp_path / "weighted", "training.class_weight=balanced")
    recall = {}
    for name, run in (("plain", plain), ("weighted", weighted)):
        report = json.loads(cli("evaluate", run, folder / "test.csv", "--json").stdout)
        recall[name] = report["per_class"]["fraud"]["recall"]
    assert recall["plain"] < 0.3 and recall["weighted"] > recall["plain"] + 0.3, recall


def test_a_mapping_of_class_weights_and_its_errors(imbalanced, tmp_path):
    _, config = imbalanced
    run = train(config, tmp_path, "training.class_weight={fraud: 20}", "training.iterations=2")
    assert Path(run, "model.npz").exists()
    result = cli("validate", config, "--set", "training.class_weight={fruad: 20}")
    assert_clean_error(result, "training.class_weight names 'fruad', which is not a label", "its labels: fraud, ok")
    assert_clean_error(cli("validate", config, "--set", "training.class_weight={fraud: -1}"),
                       "must be a positive number")
    assert_clean_error(cli("validate", CONFIGS / "diabetes.yaml", "--set", "training.class_weight=balanced"),
                       "training.class_weight is for classification")


def test_gradients_with_class_weights_pass_gradcheck():
    for config in ("iris", "breast_cancer"):
        result = cli("gradcheck", CONFIGS / f"{config}.yaml", "--set", "training.class_weight=balanced")
        assert result.exit_code == 0, result.stdout


# --- thresholds ------------------------------------------------------------------------------------
def test_threshold_moves_predictions_as_expected(imbalanced, tmp_path):
    folder, config = imbalanced
    run = train(config, tmp_path)
    test = folder / "test.csv"
    # classes sort as [fraud, ok]: the threshold applies to the second class, 'ok'
    p = np.array([float(r["p_ok"]) for r in rows_of(cli("predict", run, test, "--proba").stdout)])
    for threshold in (0.0, 0.5, 0.9, 0.98, 1.0):
        predicted = [r["prediction"] for r in rows_of(cli("predict", run, test, "--threshold", threshold).stdout)]
        assert predicted == ["ok" if q >= threshold else "fraud" for q in p], threshold
    assert [r["prediction"] for r in rows_of(cli("predict", run, test, "--threshold", 0.0).stdout)] == ["ok"] * 1000
    strict = json.loads(cli("evaluate", run, test, "--json", "--threshold", "0.98").stdout)
    default = json.loads(cli("evaluate", run, test, "--json").stdout)
    assert strict["threshold"] == 0.98
    assert strict["per_class"]["fraud"]["recall"] > default["per_class"]["fraud"]["recall"]
    assert strict["roc_auc"] == default["roc_auc"]  # ranking metrics do not depend on the threshold


@pytest.mark.parametrize("args, fragment", [
    (["--threshold", "1.5"], "between 0 and 1"),
    (["--threshold", "-0.1"], "between 0 and 1"),
])
def test_bad_thresholds(imbalanced, tmp_path, args, fragment):
    folder, config = imbalanced
    run = train(config, tmp_path, "training.iterations=1")
    assert_clean_error(cli("predict", run, folder / "test.csv", *args), fragment)
    assert_clean_error(cli("evaluate", run, folder / "test.csv", *args), fragment)


def test_threshold_is_for_two_classes(iris_run):
    assert_clean_error(cli("predict", iris_run, DATASETS / "iris.csv", "--threshold", "0.5"),
                       "--threshold applies to two-class models; this one has 3 classes")


# --- --keep ----------------------------------------------------------------------------------------
def test_keep_round_trips_ids_exactly(tmp_path, iris_run):
    frame = pd.read_csv(DATASETS / "iris.csv")
    ids = ['007', 'a,b', 'say "hi"', 'NA', '', '1.50', 'x y ', 'ü-ß'] * 19  # spaces after a delimiter are not kept
    frame.insert(0, "id", ids[:150])
    frame.insert(1, "note", [f"row {i}, \"{i}\"" for i in range(150)])
    data = tmp_path / "with_ids.csv"
    frame.to_csv(data, index=False)
    out = cli("predict", iris_run, data, "--keep", "id", "--keep", "note", "--proba")
    assert out.exit_code == 0, out.stderr
    header = out.stdout.splitlines()[0]
    assert header.startswith("id,note,prediction,p_setosa")
    got = list(csv.reader(io.StringIO(out.stdout)))[1:]
    original = list(csv.reader(io.StringIO(data.read_text())))[1:]
    assert [r[:2] for r in got] == [r[:2] for r in original]
    assert [r[2] for r in got] == [r["prediction"] for r in rows_of(cli("predict", iris_run, DATASETS / "iris.csv").stdout)]


def test_keep_in_chunks_gives_the_same_rows(tmp_path, iris_run):
    from nnctl.commands.predict import predict_frames
    from nnctl.runs.model import load_model

    frame = pd.read_csv(DATASETS / "iris.csv")
    frame.insert(0, "id", [f"{i:03d}" for i in range(150)])
    data = tmp_path / "ids.csv"
    frame.to_csv(data, index=False)
    model = load_model(iris_run)
    chunked = pd.concat(list(predict_frames(model, data, keep=["id"], chunk_rows=7)), ignore_index=True)
    whole = pd.concat(list(predict_frames(model, data, keep=["id"])), ignore_index=True)
    assert chunked.equals(whole) and chunked["id"].tolist()[:3] == ["000", "001", "002"]


def test_keep_of_a_missing_column_is_named(iris_run):
    assert_clean_error(cli("predict", iris_run, DATASETS / "iris.csv", "--keep", "passenger"), "'passenger'",
                       "not in the CSV")


# --- validation and test files ----------------------------------------------------------------------
def test_test_metrics_equal_evaluate_on_the_same_file(imbalanced, tmp_path):
    folder, config = imbalanced
    result = cli("train", config, "--runs-dir", tmp_path)
    assert result.exit_code == 0, result.stderr
    run = result.stdout.strip().splitlines()[-1]
    assert " · test accuracy " in result.stderr and "(1000 rows)" in result.stderr
    saved = json.loads(Path(run, "metrics.json").read_text())["test"]
    evaluated = json.loads(cli("evaluate", run, folder / "test.csv", "--json").stdout)
    assert saved == evaluated


def test_a_separate_validation_file(tmp_path):
    frame = pd.read_csv(DATASETS / "iris.csv").sample(frac=1.0, random_state=0)
    frame.iloc[:120].to_csv(tmp_path / "train.csv", index=False)
    frame.iloc[120:].to_csv(tmp_path / "val.csv", index=False)
    config = write_config(tmp_path, "data:\n  path: train.csv\n  target: species\n  validation_path: val.csv\n")
    result = cli("validate", config)
    assert result.exit_code == 0, result.stderr
    assert "note: data.validation_split is not used" in result.stderr
    assert "120 train, 30 validation" in result.stderr
    quiet = cli("validate", config, "--set", "data.validation_split=0")
    assert "note:" not in quiet.stderr
    run = train(config, tmp_path / "runs", "training.iterations=5")
    assert json.loads(Path(run, "metrics.json").read_text())["validation"]["rows"] == 30


def test_a_label_only_in_the_validation_file_is_an_error(tmp_path):
    frame = pd.read_csv(DATASETS / "iris.csv")
    frame[frame.species != "virginica"].to_csv(tmp_path / "train.csv", index=False)
    frame.to_csv(tmp_path / "val.csv", index=False)
    config = write_config(tmp_path, "data:\n  path: train.csv\n  target: species\n  validation_path: val.csv\n")
    assert_clean_error(cli("validate", config), "label 'virginica' in column 'species' is not in the training file",
                       "val.csv")


def test_a_test_file_with_other_columns_fails_before_training(tmp_path):
    frame = pd.read_csv(DATASETS / "iris.csv")
    frame.drop(columns=["petal_width"]).to_csv(tmp_path / "test.csv", index=False)
    config = write_config(tmp_path, f"data:\n  path: {DATASETS / 'iris.csv'}\n  target: species\n  test_path: test.csv\n")
    result = cli("train", config, "--runs-dir", tmp_path / "runs")
    assert_clean_error(result, "'petal_width' not in the CSV", "test.csv")
    assert "epoch" not in result.stderr
    assert not (tmp_path / "runs").exists() or list((tmp_path / "runs").iterdir()) == []


# --- Parquet ----------------------------------------------------------------------------------------
def test_parquet_and_csv_of_the_same_data_give_identical_weights(tmp_path):
    pytest.importorskip("pyarrow")
    frame = pd.read_csv(DATASETS / "iris.csv")
    frame.to_parquet(tmp_path / "iris.parquet", index=False)
    csv_run = train(CONFIGS / "iris.yaml", tmp_path / "a", "training.iterations=20")
    pq_run = train(CONFIGS / "iris.yaml", tmp_path / "b", "training.iterations=20",
                   f"data.path={tmp_path / 'iris.parquet'}")
    with np.load(f"{csv_run}/model.npz") as a, np.load(f"{pq_run}/model.npz") as b:
        for key in a.files:
            if key != "meta":
                assert a[key].tobytes() == b[key].tobytes(), key
    assert cli("predict", csv_run, tmp_path / "iris.parquet").stdout == cli("predict", csv_run, DATASETS / "iris.csv").stdout
    assert json.loads(cli("evaluate", csv_run, tmp_path / "iris.parquet", "--json").stdout) == \
        json.loads(cli("evaluate", csv_run, DATASETS / "iris.csv", "--json").stdout)


def test_parquet_predict_reads_in_batches_and_keeps_ids(tmp_path, iris_run):
    pytest.importorskip("pyarrow")
    from nnctl.commands.predict import predict_frames
    from nnctl.runs.model import load_model

    frame = pd.read_csv(DATASETS / "iris.csv")
    frame.insert(0, "id", [f"{i:03d}" for i in range(150)])
    frame.to_parquet(tmp_path / "ids.parquet", index=False)
    parts = list(predict_frames(load_model(iris_run), tmp_path / "ids.parquet", keep=["id"], chunk_rows=40))
    assert [len(p) for p in parts] == [40, 40, 40, 30]
    assert pd.concat(parts)["id"].tolist() == frame["id"].tolist()


def test_without_pyarrow_parquet_says_how_to_install(tmp_path, iris_run, monkeypatch):
    data = tmp_path / "x.parquet"
    data.write_bytes(b"PAR1")
    hide_package(monkeypatch, "pyarrow")
    assert_clean_error(cli("predict", iris_run, data), "needs pyarrow", "pip install 'nnctl[parquet]'")


def test_the_evaluation_table_has_a_row_per_class(iris_run):
    text = cli("evaluate", iris_run, DATASETS / "iris.csv").stdout
    report = json.loads(cli("evaluate", iris_run, DATASETS / "iris.csv", "--json").stdout)
    rows = [line.replace("│", " ").split() for line in text.splitlines() if line.startswith("│ virginica ")]
    scores = report["per_class"]["virginica"]
    assert [f"{scores[k]:.4f}" for k in ("precision", "recall", "f1")] + ["50"] == rows[0][1:5]
    assert any(line.replace("│", " ").split()[:2] == ["roc_auc", f"{report['roc_auc']:.4f}"]
               for line in text.splitlines() if "roc_auc" in line)
