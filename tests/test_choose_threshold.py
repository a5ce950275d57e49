"""evaluate --choose-threshold f1|youden|precision=P|recall=R: the threshold, and predict --threshold agreeing."""
import csv
import io
import json

import numpy as np
import pytest

from nnctl.commands.threshold import parse_rule, pick_threshold

from .cli_helpers import assert_clean_error, cli, train_run
from .conftest import CONFIGS, DATASETS

CANCER = DATASETS / "breast_cancer.csv"


def brute_force(positive, score, value, best=max):
    """Every distinct score tried as the threshold, highest first; the first with the best value."""
    candidates = sorted(set(score), reverse=True)
    values = [value(positive, score >= t) for t in candidates]
    return candidates[values.index(best(values))], candidates, values


def f1(positive, predicted):
    tp = np.sum(positive & predicted)
    return 2 * tp / (np.sum(positive) + np.sum(predicted))


def youden(positive, predicted):
    return np.mean(predicted[positive]) - np.mean(predicted[~positive])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rules_against_a_brute_force_scan(seed):
    rng = np.random.default_rng(seed)
    positive = rng.random(400) < 0.3
    score = np.round(np.clip(rng.normal(0.35 + 0.3 * positive, 0.2), 0, 1), 2)  # coarse: ties
    assert pick_threshold(positive, score, "f1") == brute_force(positive, score, f1)[0]
    assert pick_threshold(positive, score, "youden") == brute_force(positive, score, youden)[0]
    sk = pytest.importorskip("sklearn.metrics")
    t = pick_threshold(positive, score, "f1")
    assert f1(positive, score >= t) == pytest.approx(sk.f1_score(positive, score >= t))
    candidates = sorted(set(score), reverse=True)
    for level in (0.5, 0.7, 0.8):
        precision = [np.mean(positive[score >= c]) for c in candidates]
        t = pick_threshold(positive, score, "precision", level)
        assert precision[candidates.index(t)] >= level
        assert all(p < level for c, p in zip(candidates, precision) if c < t)  # nothing lower meets it
        recall = [np.mean(score[positive] >= c) for c in candidates]
        t = pick_threshold(positive, score, "recall", level)
        assert recall[candidates.index(t)] >= level
        assert all(r < level for c, r in zip(candidates, recall) if c > t)  # nothing higher meets it


def test_an_unreachable_constraint_says_the_best_it_reaches():
    from nnctl.errors import NnctlError

    positive = np.array([False, True, True, False])
    score = np.array([0.9, 0.8, 0.3, 0.2])  # precision 0, 1/2, 2/3, 1/2 going down
    with pytest.raises(NnctlError, match="highest precision any threshold reaches is 0.6667"):
        pick_threshold(positive, score, "precision", 0.7)
    assert pick_threshold(positive, score, "precision", 0.6) == 0.3
    assert pick_threshold(positive, score, "precision", 0.5) == 0.2  # the lowest that meets it
    assert pick_threshold(positive, score, "recall", 1.0) == 0.3  # the highest that meets it
    assert pick_threshold(positive, score, "recall", 0.5) == 0.8


@pytest.mark.parametrize("text, expected", [("f1", ("f1", None)), ("YOUDEN", ("youden", None)),
                                            ("precision=0.9", ("precision", 0.9)), ("recall=1", ("recall", 1.0))])
def test_rules_parse(text, expected):
    assert parse_rule(text) == expected


@pytest.fixture(scope="module")
def cancer_run(tmp_path_factory):
    return train_run(CONFIGS / "breast_cancer.yaml", tmp_path_factory.mktemp("runs"), "training.iterations=30")


@pytest.mark.parametrize("rule", ["f1", "youden", "precision=0.97", "recall=0.95"])
def test_the_threshold_gives_predict_the_same_labels(cancer_run, rule):
    result = cli("evaluate", cancer_run, CANCER, "--choose-threshold", rule, "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["rule"] == rule and report["positive_class"] == "malignant"
    name, _, level = rule.partition("=")
    if level:
        assert report["per_class"]["malignant"][name] >= float(level)
    predicted = cli("predict", cancer_run, CANCER, "--threshold", repr(report["threshold"]))
    labels = [r["prediction"] for r in csv.DictReader(io.StringIO(predicted.stdout))]
    truth = [r["diagnosis"] for r in csv.DictReader(open(CANCER))]
    cm = [[sum(t == a and p == b for t, p in zip(truth, labels)) for b in report["labels"]] for a in report["labels"]]
    assert cm == report["confusion_matrix"]
    # the table prints the same threshold, exactly, first
    table = cli("evaluate", cancer_run, CANCER, "--choose-threshold", rule)
    assert table.stdout.startswith(f"threshold {report['threshold']!r} meets {rule}")


def test_the_other_class_as_positive(cancer_run):
    result = cli("evaluate", cancer_run, CANCER, "--choose-threshold", "recall=0.99", "--positive", "benign", "--json")
    report = json.loads(result.stdout)
    assert report["positive_class"] == "benign" and report["per_class"]["benign"]["recall"] >= 0.99


def test_unreachable_precision_is_a_clean_error(cancer_run, tmp_path):
    # the labels swapped: the rows the model is surest are malignant are benign here
    flipped = tmp_path / "flipped.csv"
    text = CANCER.read_text().replace("malignant", "@").replace("benign", "malignant").replace("@", "benign")
    flipped.write_text(text)
    result = cli("evaluate", cancer_run, flipped, "--choose-threshold", "precision=0.9")
    assert_clean_error(result, "--choose-threshold", "precision=0.9 cannot be met", "highest precision")


@pytest.mark.parametrize("args, fragment", [
    (["--choose-threshold", "f2"], "unknown rule"),
    (["--choose-threshold", "precision=0"], "above 0"),
    (["--choose-threshold", "f1", "--threshold", "0.5"], "--choose-threshold"),
])
def test_bad_requests(cancer_run, args, fragment):
    assert_clean_error(cli("evaluate", cancer_run, CANCER, *args), fragment)


def test_several_classes_and_regression_are_refused(iris_run, tmp_path):
    assert_clean_error(cli("evaluate", iris_run, DATASETS / "iris.csv", "--choose-threshold", "f1"),
                       "two-class models", "3 classes")
    run = train_run(CONFIGS / "diabetes.yaml", tmp_path / "runs", "training.iterations=2")
    assert_clean_error(cli("evaluate", run, DATASETS / "diabetes.csv", "--choose-threshold", "f1"), "regression")
