"""Metrics for imbalanced data (issue 22, item 25): val_roc_auc, val_average_precision, val_f1 and
val_balanced_accuracy as early-stopping metrics, sweep metrics and live-table columns, and
`evaluate --fail-under per_class.<label>.<metric>=V`."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest

from nnctl.nn.metrics import balanced_accuracy, f1_score
from nnctl.training.scoring import EXTRA_METRICS, extra_scores

from .cli_helpers import assert_clean_error, cli
from .conftest import CONFIGS, DATASETS

BREAST = CONFIGS / "breast_cancer.yaml"


def history(run) -> list[dict]:
    with open(Path(run) / "history.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def validation_part(run):
    """(class indices, probabilities) of a run's validation.csv, classes in its column order."""
    with open(Path(run) / "validation.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    labels = [c[2:] for c in rows[0] if c.startswith("p_")]
    y = np.array([labels.index(r["target"]) for r in rows])
    proba = np.array([[float(r[f"p_{c}"]) for c in labels] for r in rows])
    return y, proba


def train(*args):
    result = cli("train", *args)
    assert result.exit_code == 0, result.stderr
    return result, Path(result.stdout.strip().splitlines()[-1])


# --- the values ------------------------------------------------------------------------------------
def test_f1_and_balanced_accuracy_by_hand():
    y = np.array([0, 0, 0, 0, 1, 1])
    p = np.array([0, 0, 0, 1, 1, 0])
    # two classes: the F1 of the second: precision 1/2, recall 1/2
    assert f1_score(y, p, 2) == pytest.approx(0.5)
    assert balanced_accuracy(y, p, 2) == pytest.approx((3 / 4 + 1 / 2) / 2)
    y3, p3 = np.array([0, 0, 1, 1, 2, 2]), np.array([0, 1, 1, 1, 2, 0])
    f1s = [2 * 0.5 * 0.5 / 1.0, 2 * (2 / 3) / (5 / 3), 2 * 0.5 / 1.5]
    assert f1_score(y3, p3, 3) == pytest.approx(np.mean(f1s))  # macro
    # a class absent from truth and predictions does not count (scikit-learn's labels=None)
    assert f1_score(y3, p3, 4) == pytest.approx(np.mean(f1s))


def test_extra_scores_agree_with_scikit_learn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    y = (rng.random(300) < 0.15).astype(np.int64)  # imbalanced: about 15% positives
    p = np.clip(0.3 * y + 0.7 * rng.random(300), 0, 1)
    # one sigmoid column, as a two-class network gives
    ours = extra_scores(EXTRA_METRICS, y, p.reshape(-1, 1).astype(np.float32))
    pred = (p > 0.5).astype(int)
    assert ours["val_roc_auc"] == pytest.approx(sk.roc_auc_score(y, p), abs=1e-6)
    assert ours["val_average_precision"] == pytest.approx(sk.average_precision_score(y, p), abs=1e-6)
    assert ours["val_f1"] == pytest.approx(sk.f1_score(y, pred))
    assert ours["val_balanced_accuracy"] == pytest.approx(sk.balanced_accuracy_score(y, pred))
    y4 = rng.integers(0, 4, 200)
    proba = rng.dirichlet(np.ones(4), size=200)
    ours = extra_scores(("val_roc_auc", "val_f1", "val_balanced_accuracy"), y4, proba)
    assert ours["val_roc_auc"] == pytest.approx(sk.roc_auc_score(y4, proba, multi_class="ovr"))
    assert ours["val_f1"] == pytest.approx(sk.f1_score(y4, proba.argmax(1), average="macro"))
    assert ours["val_balanced_accuracy"] == pytest.approx(sk.balanced_accuracy_score(y4, proba.argmax(1)))


# --- early stopping ----------------------------------------------------------------------------------
def test_early_stopping_on_val_f1_logs_and_maximizes_it(tmp_path):
    result, run = train(BREAST, "--runs-dir", tmp_path, "--set", "training.iterations=8",
                        "--set", "training.early_stopping={metric: val_f1, patience: 50}")
    rows = history(run)
    # the metric in use has a column, the others cost nothing and are absent
    assert list(rows[0]) == ["epoch", "train_loss", "val_loss", "val_accuracy", "val_f1", "learning_rate", "seconds"]
    f1s = [float(r["val_f1"]) for r in rows]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["best_epoch"] == int(rows[int(np.argmax(f1s))]["epoch"])  # the highest, not the lowest
    # the saved (best) weights' validation F1, as scikit-learn computes it from validation.csv
    y, proba = validation_part(run)
    tp = np.sum((proba.argmax(1) == 1) & (y == 1))
    expected = 2 * tp / (np.sum(proba.argmax(1) == 1) + np.sum(y == 1))
    assert metrics["validation"]["f1"] == pytest.approx(expected, abs=1e-6) == pytest.approx(max(f1s), abs=1e-6)
    # the table shows the watched column, and the closing line its value
    assert "val_f1" in result.stderr.splitlines()[0]
    assert f"f1 {metrics['validation']['f1']:.4f}" in result.stderr


def test_every_new_metric_is_a_history_column_when_watched(tmp_path):
    for name in ("val_roc_auc", "val_average_precision", "val_balanced_accuracy"):
        _, run = train(BREAST, "--runs-dir", tmp_path, "--quiet", "--set", "training.iterations=2",
                       "--set", f"training.early_stopping.metric={name}")
        rows = history(run)
        assert name in rows[0] and all(0.0 <= float(r[name]) <= 1.0 for r in rows)
        assert name[len("val_"):] in json.loads((run / "metrics.json").read_text())["validation"]


def test_val_roc_auc_is_one_vs_rest_on_several_classes(tmp_path):
    _, run = train(CONFIGS / "iris.yaml", "--runs-dir", tmp_path, "--quiet", "--set", "training.iterations=3",
                   "--set", "training.early_stopping={metric: val_roc_auc, restore_best: false}")
    sk = pytest.importorskip("sklearn.metrics")
    y, proba = validation_part(run)
    last = float(history(run)[-1]["val_roc_auc"])
    assert last == pytest.approx(sk.roc_auc_score(y, proba, multi_class="ovr"), abs=1e-6)


@pytest.mark.parametrize("config, metric, fragments", [
    (CONFIGS / "iris.yaml", "val_average_precision", ("needs two classes", "'species' has 3")),
    (CONFIGS / "diabetes.yaml", "val_f1", ("val_f1 is for classification, but this is a regression",)),
    (CONFIGS / "diabetes.yaml", "val_accuracy", ("val_accuracy is for classification",)),
    # val_r2 on a classification used to end in a KeyError ("this is a bug in nnctl")
    (CONFIGS / "iris.yaml", "val_r2", ("val_r2 is for regression, but this is a classification",)),
])
def test_a_metric_the_task_cannot_give_is_a_config_error(tmp_path, config, metric, fragments):
    result = cli("train", config, "--runs-dir", tmp_path / "runs", "--set", "training.iterations=2",
                 "--set", f"training.early_stopping.metric={metric}")
    assert_clean_error(result, "(training.early_stopping.metric)", *fragments)
    assert not any((tmp_path / "runs").glob("*/*"))  # nothing half-written


def test_a_ranking_metric_needs_every_class_in_the_validation_part(tmp_path, write_csv, write_config):
    rows = "\n".join(f"{i},{'a' if i % 3 else 'b'}" for i in range(30))
    train_csv = write_csv(f"x,y\n{rows}\n", "train.csv")
    val_csv = write_csv("x,y\n1,a\n2,a\n4,a\n", "val.csv")
    config = write_config(f"data: {{path: {train_csv}, validation_path: {val_csv}, target: y}}\n"
                          "training: {iterations: 2, early_stopping: {metric: val_roc_auc}}\n")
    result = cli("train", config, "--runs-dir", tmp_path / "runs")
    assert_clean_error(result, "val_roc_auc is undefined: the validation part has no rows of class 'b'",
                       "(training.early_stopping.metric)")


def test_validate_accepts_the_new_names_suggests_them_and_checks_them_against_the_data(iris_config):
    assert cli("validate", iris_config("training:\n  early_stopping: {metric: val_f1}\n")).exit_code == 0
    result = cli("validate", iris_config("training:\n  early_stopping: {metric: val_f}\n"))
    assert_clean_error(result, "did you mean 'val_f1'")
    result = cli("validate", iris_config("training:\n  early_stopping: {metric: val_average_precision}\n"))
    assert_clean_error(result, "needs two classes", "(training.early_stopping.metric)")


# --- sweeps ------------------------------------------------------------------------------------------
def test_a_sweep_scores_trials_by_balanced_accuracy(tmp_path):
    pytest.importorskip("optuna")
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(f"config: {BREAST}\nmethod: random\ntrials: 2\nseed: 1\n"
                     "metric: {name: val_balanced_accuracy, goal: maximize}\n"
                     "parameters:\n  training.iterations: {values: [2, 3]}\n")
    result = cli("sweep", sweep, "--runs-dir", tmp_path / "runs", "--workers", "1")
    assert result.exit_code == 0, result.stderr
    folder = Path(result.stdout.strip().splitlines()[-1])
    with open(folder / "trials.csv", newline="") as fh:
        trials = list(csv.DictReader(fh))
    assert {t["state"] for t in trials} == {"complete"}
    for t in trials:
        metrics = json.loads((Path(t["run"]) / "metrics.json").read_text())
        assert float(t["value"]) == pytest.approx(metrics["validation"]["balanced_accuracy"], rel=1e-6)
        assert "val_balanced_accuracy" in history(t["run"])[0]


# --- evaluate --fail-under per_class -----------------------------------------------------------------
def test_fail_under_gates_on_one_class(iris_run):
    report = json.loads(cli("evaluate", iris_run, DATASETS / "iris.csv", "--json").stdout)
    recall = report["per_class"]["virginica"]["recall"]
    passed = cli("evaluate", iris_run, DATASETS / "iris.csv", "--fail-under", f"per_class.virginica.recall={recall}")
    assert passed.exit_code == 0, passed.stderr
    failed = cli("evaluate", iris_run, DATASETS / "iris.csv", "--fail-under", "per_class.virginica.recall=1.01",
                 "--fail-over", f"per_class.setosa.f1={report['per_class']['setosa']['f1'] - 0.01}")
    assert failed.exit_code == 1
    assert f"failed: per_class.virginica.recall {recall:.4f} is under 1.01" in failed.stderr
    assert "failed: per_class.setosa.f1" in failed.stderr and "is over" in failed.stderr


@pytest.mark.parametrize("spec, fragments", [
    ("per_class.virginia.recall=0.9", ("class 'virginia'", "did you mean 'virginica'", "setosa, versicolor, virginica")),
    ("per_class.setosa.recal=0.9", ("per-class metric 'recal'", "precision, recall, f1")),
    ("per_class.setosa=0.9", ("needs a class and a metric",)),
    ("accuracyy=0.9", ("per_class.<label>.<precision|recall|f1>",)),
])
def test_an_unknown_class_or_metric_is_a_usage_error(iris_run, spec, fragments):
    result = cli("evaluate", iris_run, DATASETS / "iris.csv", "--fail-under", spec)
    assert_clean_error(result, "--fail-under", *fragments)


def test_a_label_may_hold_dots_and_equals_signs():
    from nnctl.cli import parse_limits
    from nnctl.commands.predict import check_thresholds

    report = {"task": "classification", "per_class": {"x=1.5": {"precision": 0.5, "recall": 0.4, "f1": 0.44}}}
    limits = parse_limits("--fail-under", ["per_class.x=1.5.recall=0.5"])
    assert limits == {"per_class.x=1.5.recall": 0.5}
    assert check_thresholds(report, limits, {}) == ["per_class.x=1.5.recall 0.4000 is under 0.5"]
