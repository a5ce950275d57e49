"""`nnctl explain` on the command line, and report.importance through train and report."""
import csv
import json
from pathlib import Path

import pytest

from .cli_helpers import assert_clean_error, cli, train_run
from .conftest import CONFIGS, DATASETS

IRIS = DATASETS / "iris.csv"
FEATURES = {"sepal_length", "sepal_width", "petal_length", "petal_width"}


def test_the_table_goes_to_stdout_most_important_first(iris_run):
    result = cli("explain", iris_run, IRIS)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    assert "permutation importance: drop in accuracy" in result.stdout and "5 repeats · seed 0" in result.stdout
    shown = [line.split("│")[1].strip() for line in result.stdout.splitlines() if line.startswith("│")]
    as_json = json.loads(cli("explain", iris_run, IRIS, "--json").stdout)
    assert shown == [c["column"] for c in as_json["columns"]]


def test_json_is_the_contracts_shape_sorted_by_importance(iris_run):
    result = cli("explain", iris_run, IRIS, "--json", "--repeats", "3", "--seed", "7", "--metric", "log_loss")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert (out["method"], out["metric"], out["repeats"], out["seed"], out["rows"]) == ("permutation", "log_loss", 3, 7,
                                                                                        150)
    assert {c["column"] for c in out["columns"]} == FEATURES
    assert all(set(c) == {"column", "importance", "std"} for c in out["columns"])
    importance = [c["importance"] for c in out["columns"]]
    assert importance == sorted(importance, reverse=True) and importance[0] > 0.1  # log loss rises by that much
    gradient = json.loads(cli("explain", iris_run, IRIS, "--method", "gradient", "--json").stdout)
    assert (gradient["method"], gradient["metric"]) == ("gradient", "gradient_x_input")
    assert {c["column"] for c in gradient["columns"]} == FEATURES


def test_output_writes_the_same_numbers_as_csv(iris_run, tmp_path):
    target = tmp_path / "importance.csv"
    result = cli("explain", iris_run, IRIS, "--json", "--output", target)
    assert result.exit_code == 0, result.stderr
    assert f"importance written to {target}" in result.stderr
    with open(target, newline="") as fh:
        rows = list(csv.DictReader(fh))
    expected = json.loads(result.stdout)["columns"]
    assert [r["column"] for r in rows] == [c["column"] for c in expected]
    assert [float(r["importance"]) for r in rows] == [c["importance"] for c in expected]
    assert list(rows[0]) == ["column", "importance", "std"]


def test_a_missing_column_is_named(iris_run, tmp_path):
    data = tmp_path / "no-petal-width.csv"
    lines = IRIS.read_text().splitlines()
    data.write_text("\n".join(",".join(c for i, c in enumerate(line.split(",")) if i != 3) for line in lines) + "\n")
    assert_clean_error(cli("explain", iris_run, data), "petal_width")
    # the target is needed to measure a drop in a metric, but not for the gradient
    no_target = tmp_path / "no-target.csv"
    no_target.write_text("\n".join(line.rsplit(",", 1)[0] for line in lines) + "\n")
    assert_clean_error(cli("explain", iris_run, no_target), "species")
    assert cli("explain", iris_run, no_target, "--method", "gradient").exit_code == 0


def test_bad_options_are_one_error_line(iris_run):
    assert_clean_error(cli("explain", iris_run, IRIS, "--metric", "acuracy"), "--metric", "did you mean 'accuracy'")
    assert_clean_error(cli("explain", iris_run, IRIS, "--metric", "r2"), "--metric")
    assert_clean_error(cli("explain", iris_run, IRIS, "--repeats", "0"), "--repeats")
    assert_clean_error(cli("explain", iris_run, IRIS, "--method", "shap"), "--method")
    assert_clean_error(cli("explain", iris_run, IRIS, "--method", "gradient", "--repeats", "3"), "--repeats")


def test_train_records_importance_and_report_shows_it(iris_config, tmp_path):
    run = train_run(iris_config(), tmp_path / "runs", "report.importance=true", "training.iterations=30")
    with open(run / "importance.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["column"] for r in rows} == FEATURES
    metrics = json.loads((run / "metrics.json").read_text())
    how = metrics["importance"]
    assert (how["part"], how["metric"], how["repeats"], how["rows"]) == ("validation", "accuracy", 5, 30)
    assert how["baseline"] == metrics["validation"]["accuracy"]
    result = cli("report", run)
    assert result.exit_code == 0, result.stderr
    page = (run / "report.html").read_text()
    assert "What the model relies on" in page and "drop in accuracy" in page
    section = page.split("What the model relies on", 1)[1].split("<h2>", 1)[0]
    assert section.count('class="mark bar"') == 4  # one bar per column (the reliability diagram has bars too)


def test_importance_uses_the_test_part_when_there_is_one(iris_config, tmp_path):
    run = train_run(iris_config(f"  test_path: {IRIS}\n"), tmp_path / "runs", "report.importance=true",
                    "training.iterations=10")
    how = json.loads((run / "metrics.json").read_text())["importance"]
    assert (how["part"], how["rows"]) == ("test", 150)


def test_importance_without_a_held_out_part_is_a_warning_and_no_file(iris_config, tmp_path):
    result = cli("train", iris_config(), "--runs-dir", tmp_path / "runs", "--set", "report.importance=true",
                 "--set", "data.validation_split=0", "--set", "training.iterations=5")
    assert result.exit_code == 0, result.stderr
    assert "warning: report.importance is on, but this run has neither a test part" in result.stderr
    run = Path(result.stdout.strip().splitlines()[-1])
    assert not (run / "importance.csv").exists()
    assert cli("report", run).exit_code == 0
    assert "What the model relies on" not in (run / "report.html").read_text()


def test_a_regressions_importance_is_measured_in_the_targets_units(tmp_path):
    run = train_run(CONFIGS / "diabetes.yaml", tmp_path / "runs", "report.importance=true", "training.iterations=20")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["importance"]["metric"] == "r2"
    assert metrics["importance"]["baseline"] == pytest.approx(metrics["validation"]["r2"], rel=1e-9)
