"""Brier score, ECE and reliability bins (nn/metrics.py), and the temperature fit (nn/calibration.py)."""
import numpy as np
import pytest

from nnctl.nn.calibration import fit_temperature, temperature_derivatives, temperature_loss
from nnctl.nn.metrics import brier_score, classification_report, expected_calibration_error, reliability_bins


def test_brier_by_hand():
    # three classes: rows (0.7, 0.2, 0.1) true 0 and (0.2, 0.5, 0.3) true 2
    proba = np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3]])
    first = 0.3 ** 2 + 0.2 ** 2 + 0.1 ** 2
    second = 0.2 ** 2 + 0.5 ** 2 + 0.7 ** 2
    assert brier_score(np.array([0, 2]), proba) == pytest.approx((first + second) / 2)
    # two classes: the positive column's squared error only, (0.2² + 0.6²) / 2
    assert brier_score(np.array([1, 0]), np.array([[0.2, 0.8], [0.4, 0.6]])) == pytest.approx((0.04 + 0.36) / 2)


def test_brier_agrees_with_scikit_learn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)
    p = rng.random(300)
    assert brier_score(y, np.column_stack([1 - p, p])) == pytest.approx(sk.brier_score_loss(y, p))
    y3 = rng.integers(0, 4, 300)
    proba = rng.dirichlet(np.ones(4), size=300)
    try:  # scikit-learn 1.7 on takes several classes, with Brier's own sum over them
        theirs = sk.brier_score_loss(y3, proba, labels=[0, 1, 2, 3])
    except ValueError:
        pytest.skip("this scikit-learn's brier_score_loss is binary only")
    assert brier_score(y3, proba) == pytest.approx(theirs)


def test_ece_and_bins_by_hand():
    # confidences 0.95 (right), 0.95 (wrong), 0.6 (right), 0.62 (right): two bins used of 15
    proba = np.array([[0.95, 0.05], [0.05, 0.95], [0.6, 0.4], [0.38, 0.62]])
    y = np.array([0, 0, 0, 1])
    bins = reliability_bins(y, proba)
    assert bins["count"].sum() == 4 and len(bins["count"]) == 15
    top = 14  # (14/15, 1]
    assert bins["count"][top] == 2 and bins["accuracy"][top] == 0.5 and bins["confidence"][top] == pytest.approx(0.95)
    middle = 9  # (9/15, 10/15] = (0.6, 0.667]: 0.6 itself falls in the bin below
    assert bins["count"][middle] == 1 and bins["count"][8] == 1
    assert np.isnan(bins["accuracy"][0])
    expected = (2 * abs(0.5 - 0.95) + abs(1 - 0.6) + abs(1 - 0.62)) / 4
    assert expected_calibration_error(y, proba) == pytest.approx(expected)
    assert bins["lower"][0] == 0.0 and bins["upper"][-1] == 1.0


def test_perfectly_calibrated_scores_have_small_ece():
    rng = np.random.default_rng(0)
    p = rng.random(200_000)
    y = (rng.random(200_000) < p).astype(int)
    proba = np.column_stack([1 - p, p])
    assert expected_calibration_error(y, proba) < 0.01
    assert expected_calibration_error(1 - y, proba) > 0.3  # the same scores, inverted


def test_classification_report_has_brier_and_ece():
    y = np.array([0, 1, 2])
    proba = np.eye(3)
    report = classification_report(y, y, proba, 3)
    assert report["brier"] == 0.0 and report["ece"] == 0.0


@pytest.mark.parametrize("columns", [1, 4])
def test_temperature_derivatives_match_finite_differences(columns):
    rng = np.random.default_rng(columns)
    z = rng.normal(size=(50, columns)) * 3
    y = rng.integers(0, max(columns, 2), 50)
    for beta in (0.3, 1.0, 2.5):
        first, second = temperature_derivatives(z, y, beta)
        h = 1e-5
        numeric1 = (temperature_loss(z, y, beta + h) - temperature_loss(z, y, beta - h)) / (2 * h)
        numeric2 = (temperature_derivatives(z, y, beta + h)[0] - temperature_derivatives(z, y, beta - h)[0]) / (2 * h)
        assert first == pytest.approx(numeric1, rel=1e-6, abs=1e-9)
        assert second == pytest.approx(numeric2, rel=1e-6, abs=1e-9)


def _sampled(rng, z):
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return (rng.random(len(z))[:, None] > np.cumsum(p, axis=1)).sum(axis=1)


def test_fit_recovers_a_known_temperature():
    rng = np.random.default_rng(7)
    z = rng.normal(size=(20_000, 5)) * 2
    y = _sampled(rng, z)  # labels drawn from softmax(z): z is calibrated
    t = fit_temperature(3.0 * z, y)  # so logits three times too large need T = 3
    assert t == pytest.approx(3.0, rel=0.03)
    assert fit_temperature(3.0 * z, y) == t  # deterministic


def test_fit_recovers_a_sigmoid_temperature():
    rng = np.random.default_rng(8)
    z = rng.normal(size=(20_000, 1)) * 2
    y = (rng.random(20_000) < 1 / (1 + np.exp(-z[:, 0]))).astype(int)
    assert fit_temperature(z / 2.0, y) == pytest.approx(0.5, rel=0.03)
    # the fitted T is the minimum of the loss over T
    t = fit_temperature(z / 2.0, y)
    best = temperature_loss(z / 2.0, y, 1 / t)
    assert best <= min(temperature_loss(z / 2.0, y, 1 / (t * f)) for f in (0.98, 1.02))


def test_fit_stays_in_range_on_separable_rows():
    z = np.array([[2.0, -2.0], [-2.0, 2.0]])
    assert fit_temperature(z, np.array([0, 1])) == 0.01  # sharper is always better: the bound
    assert fit_temperature(z, np.array([1, 0])) == 100.0  # every row wrong: as soft as allowed
