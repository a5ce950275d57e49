"""`data.positive_class` and `--positive`: which of two classes the sigmoid, thresholds, ROC and
PR refer to, named wherever it matters (issue 22, item 26)."""
import csv
import io
import json

import numpy as np
import pandas as pd
import pytest

from nnctl.commands.predict import evaluate_csv
from nnctl.config import load_config
from nnctl.data import load_dataset
from nnctl.errors import NnctlError
from nnctl.runs.model import load_model

from .cli_helpers import assert_clean_error, cli

ROWS = 60


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    folder = tmp_path_factory.mktemp("positive")
    rng = np.random.default_rng(3)
    x = rng.normal(size=ROWS)
    label = np.where(x + rng.normal(scale=0.7, size=ROWS) > 0.3, "yes", "no")
    (folder / "data.csv").write_text("x,z,answer\n" + "".join(
        f"{a:.4f},{b:.4f},{c}\n" for a, b, c in zip(x, rng.normal(size=ROWS), label)))
    return folder


def _config(folder, extra=""):
    path = folder / f"c{abs(hash(extra))}.yaml"
    path.write_text("data:\n  path: data.csv\n  target: answer\n" + extra
                    + "model:\n  layers: [4]\ntraining:\n  iterations: 30\n  learning_rate: 0.1\n")
    return path


def _train(folder, extra=""):
    result = cli("train", _config(folder, extra), "--runs-dir", folder / "runs", "--quiet")
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def runs(table):
    return _train(table), _train(table, "  positive_class: \"no\"\n")


def test_default_is_the_second_sorted_label_as_today(table):
    dataset = load_dataset(load_config(_config(table)))
    assert dataset.classes == ["no", "yes"]


def test_positive_class_is_put_second_with_the_same_split(table):
    default = load_dataset(load_config(_config(table)))
    chosen = load_dataset(load_config(_config(table, "  positive_class: \"no\"\n")))
    assert chosen.classes == ["yes", "no"]
    np.testing.assert_array_equal(chosen.y_train, 1 - default.y_train)
    np.testing.assert_array_equal(chosen.X_train, default.X_train)  # the same rows drawn
    assert chosen.class_counts == {"yes": default.class_counts["yes"], "no": default.class_counts["no"]}


def test_a_label_the_target_lacks_is_an_error(table):
    with pytest.raises(NnctlError, match="data.positive_class 'maybe' is not a label of column 'answer'"):
        load_dataset(load_config(_config(table, "  positive_class: maybe\n")))


def test_a_regression_refuses_a_positive_class(table):
    cfg = load_config(_config(table, "  positive_class: \"no\"\n"), ["data.target=x", "data.features=[z]"])
    with pytest.raises(NnctlError, match="data.positive_class is set, but this is a regression"):
        load_dataset(cfg)


def test_several_classes_refuse_a_positive_class(write_config):
    from .conftest import DATASETS

    cfg = load_config(write_config(f"data:\n  path: {DATASETS / 'iris.csv'}\n  target: species\n"
                                   "  positive_class: setosa\n"))
    with pytest.raises(NnctlError, match="data.positive_class is for two classes; 'species' has 3"):
        load_dataset(cfg)


def test_yaml_booleans_match_yes_and_no_labels(table):
    dataset = load_dataset(load_config(_config(table, "  positive_class: no\n")))  # YAML reads `no` as false
    assert dataset.classes == ["yes", "no"]


def test_the_model_stores_it_and_the_sigmoid_is_its_probability(table, runs):
    default, chosen = runs
    assert load_model(default).meta["positive_class"] == "yes"
    model = load_model(chosen)
    assert model.meta["positive_class"] == "no" and model.classes == ["yes", "no"]
    assert json.loads((table / "runs" / chosen.split("/")[-1] / "metrics.json").read_text())["positive_class"] == "no"
    rows = list(csv.DictReader(io.StringIO(cli("predict", chosen, table / "data.csv", "--proba").stdout)))
    out = model.proba_from_inputs(model.inputs(pd.read_csv(table / "data.csv")))[:, 1]
    np.testing.assert_allclose([float(r["p_no"]) for r in rows], out, rtol=1e-6)


def test_evaluate_names_the_positive_class_and_positive_flag_swaps_it(table, runs):
    default, _ = runs
    own = evaluate_csv(default, table / "data.csv")
    swapped = evaluate_csv(default, table / "data.csv", positive="no")
    assert own["positive_class"] == "yes" and swapped["positive_class"] == "no"
    assert swapped["roc_auc"] == pytest.approx(own["roc_auc"])  # symmetric in the two classes
    assert swapped["average_precision"] != pytest.approx(own["average_precision"])
    assert swapped["accuracy"] == own["accuracy"]
    assert swapped["labels"] == ["yes", "no"] and swapped["per_class"]["no"] == own["per_class"]["no"]
    text = cli("evaluate", default, table / "data.csv", "--positive", "no").stdout
    assert "positive class no" in " ".join(text.split())


def test_threshold_applies_to_the_named_class(table, runs):
    default, _ = runs
    proba = list(csv.DictReader(io.StringIO(cli("predict", default, table / "data.csv", "--proba").stdout)))
    result = cli("predict", default, table / "data.csv", "--threshold", "0.9", "--positive", "no")
    assert result.exit_code == 0, result.stderr
    predicted = [r["prediction"] for r in csv.DictReader(io.StringIO(result.stdout))]
    assert predicted == ["no" if float(r["p_no"]) >= 0.9 else "yes" for r in proba]
    assert "prediction is no where its probability (p_no) is at least 0.9" in result.stderr


def test_an_unknown_positive_label_is_a_clean_error(table, runs, iris_run):
    from .conftest import DATASETS

    assert_clean_error(cli("evaluate", runs[0], table / "data.csv", "--positive", "maybe"),
                       "--positive 'maybe' is not a class of this model", "its classes: no, yes")
    assert_clean_error(cli("predict", iris_run, DATASETS / "iris.csv", "--positive", "setosa"),
                       "--positive applies to two-class models; this one has 3 classes")


def test_onnx_export_agrees_with_predict_for_a_positive_class(table, runs):
    pytest.importorskip("onnxruntime")
    from .test_export import assert_matches_predict

    assert_matches_predict(runs[1], table / "data.csv")
