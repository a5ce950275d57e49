import math

import numpy as np
import pytest

from nnctl.nn.metrics import classification_report, confusion_matrix, r2, regression_report


def test_classification_by_hand():
    y = np.array([0, 0, 1, 1, 2, 2])
    p = np.array([0, 1, 1, 1, 2, 0])
    proba = np.full((6, 3), 0.1)
    proba[np.arange(6), p] = 0.8
    report = classification_report(y, p, proba, 3)
    assert report["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert report["accuracy"] == pytest.approx(4 / 6)
    # recall per class 1/2, 1, 1/2; precision 1/2, 2/3, 1
    assert report["balanced_accuracy"] == pytest.approx((0.5 + 1 + 0.5) / 3)
    assert report["recall"] == pytest.approx((0.5 + 1 + 0.5) / 3)
    assert report["precision"] == pytest.approx((0.5 + 2 / 3 + 1) / 3)
    f1 = [2 * 0.5 * 0.5 / 1.0, 2 * (2 / 3) / (5 / 3), 2 * 0.5 / 1.5]
    assert report["f1"] == pytest.approx(np.mean(f1))
    # true class probability is 0.8 where right and 0.1 where wrong
    assert report["log_loss"] == pytest.approx(-(4 * math.log(0.8) + 2 * math.log(0.1)) / 6)


def test_regression_by_hand():
    report = regression_report(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0]))
    assert report == pytest.approx({"mse": 4 / 3, "rmse": math.sqrt(4 / 3), "mae": 2 / 3, "r2": 1 - 4 / 2})
    assert r2(np.array([2.0, 2.0]), np.array([2.0, 2.0])) == 1.0


def test_agrees_with_scikit_learn_when_installed():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    proba = rng.dirichlet(np.ones(4), size=200)
    pred = proba.argmax(axis=1)
    pred[:5] = 3  # keep every class present in predictions
    ours = classification_report(y, pred, proba, 4)
    assert ours["balanced_accuracy"] == pytest.approx(sk.balanced_accuracy_score(y, pred))
    assert ours["precision"] == pytest.approx(sk.precision_score(y, pred, average="macro"))
    assert ours["recall"] == pytest.approx(sk.recall_score(y, pred, average="macro"))
    assert ours["f1"] == pytest.approx(sk.f1_score(y, pred, average="macro"))
    assert ours["log_loss"] == pytest.approx(sk.log_loss(y, proba))
    assert ours["confusion_matrix"] == sk.confusion_matrix(y, pred).tolist()
    assert ours["roc_auc"] == pytest.approx(sk.roc_auc_score(y, proba, multi_class="ovr", average="macro"))
    precision, recall, f1, support = sk.precision_recall_fscore_support(y, pred, labels=range(4), zero_division=0)
    for c in range(4):
        assert ours["per_class"][str(c)] == pytest.approx(
            {"precision": precision[c], "recall": recall[c], "f1": f1[c], "support": support[c]})
    t, p = rng.normal(size=50), rng.normal(size=50)
    ours = regression_report(t, p)
    assert ours["r2"] == pytest.approx(sk.r2_score(t, p))
    assert ours["mae"] == pytest.approx(sk.mean_absolute_error(t, p))


def test_confusion_matrix_rows_are_truth():
    assert confusion_matrix(np.array([0, 1]), np.array([1, 1]), 2).tolist() == [[0, 1], [0, 1]]


@pytest.mark.parametrize("ties", [False, True])
def test_binary_ranking_metrics_agree_with_scikit_learn(ties):
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    y = (rng.random(300) < 0.1).astype(int)
    score = rng.random(300) + 0.3 * y
    if ties:  # coarse scores: many rows share a threshold
        score = np.round(score, 1)
    proba = np.column_stack([1 - score / 2, score / 2])
    ours = classification_report(y, proba.argmax(axis=1), proba, 2)
    assert ours["roc_auc"] == pytest.approx(sk.roc_auc_score(y, proba[:, 1]))
    assert ours["average_precision"] == pytest.approx(sk.average_precision_score(y, proba[:, 1]))


def test_ranking_metrics_by_hand():
    from nnctl.nn.metrics import average_precision, roc_auc_binary

    # positives score 0.9 and 0.4, negatives 0.5 and 0.1: 3 of 4 pairs ordered right
    assert roc_auc_binary([1, 0, 1, 0], [0.9, 0.5, 0.4, 0.1]) == 0.75
    # thresholds 0.9 (P=1, R=1/2), 0.5 (P=1/2, R=1/2), 0.4 (P=2/3, R=1): 1/2·1 + 1/2·2/3
    assert average_precision([1, 0, 1, 0], [0.9, 0.5, 0.4, 0.1]) == pytest.approx(0.5 + 1 / 3)
    assert np.isnan(roc_auc_binary([1, 1], [0.2, 0.3]))
