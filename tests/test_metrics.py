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
    t, p = rng.normal(size=50), rng.normal(size=50)
    ours = regression_report(t, p)
    assert ours["r2"] == pytest.approx(sk.r2_score(t, p))
    assert ours["mae"] == pytest.approx(sk.mean_absolute_error(t, p))


def test_confusion_matrix_rows_are_truth():
    assert confusion_matrix(np.array([0, 1]), np.array([1, 1]), 2).tolist() == [[0, 1], [0, 1]]
