import math

import numpy as np
import pytest

from nnctl.nn.losses import LOSSES, loss_for

from .conftest import central_differences, loss_targets


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_delta_is_the_gradient_of_the_loss_wrt_z(name, weighted):
    rng = np.random.default_rng(2)
    outputs = 1 if name == "binary_cross_entropy" else 3
    z = rng.normal(size=(6, outputs))
    y = loss_targets(name, rng, 6, outputs)
    w = rng.uniform(0.2, 5.0, size=(6, 1)) if weighted else None
    loss = LOSSES[name]

    def value(z):
        return loss.value(z, loss.forward(z, np.empty_like(z)), y, w)

    numeric = central_differences(value, z)
    a = loss.forward(z, np.empty_like(z))
    delta = loss.delta(z, a, y, np.empty_like(z))
    if weighted:
        delta *= w  # what MLP.backward does with row weights
    np.testing.assert_allclose(delta, numeric, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_row_weights_scale_each_rows_loss_within_the_mean(name):
    rng = np.random.default_rng(4)
    outputs = 1 if name == "binary_cross_entropy" else 3
    z = rng.normal(size=(5, outputs))
    y = loss_targets(name, rng, 5, outputs)
    loss = LOSSES[name]
    a = loss.forward(z, np.empty_like(z))
    per_row = [loss.value(z[i:i + 1], a[i:i + 1], y[i:i + 1]) for i in range(5)]
    w = np.array([[1.0], [2.0], [0.5], [3.0], [1.0]])
    assert loss.value(z, a, y, w) == pytest.approx(np.sum(w[:, 0] * per_row) / 5)
    assert loss.value(z, a, y, np.ones((5, 1))) == pytest.approx(loss.value(z, a, y))


def test_cross_entropy_value_by_hand_and_stable_for_huge_logits():
    z = np.array([[1.0, 2.0, 3.0]])
    p = np.exp(z) / np.exp(z).sum()
    assert LOSSES["cross_entropy"].value(z, p, np.array([[1.0, 0, 0]])) == pytest.approx(-math.log(p[0, 0]))
    z = np.array([[1000.0, -1000.0]], dtype=np.float32)
    a = LOSSES["cross_entropy"].forward(z, np.empty_like(z))
    assert np.all(np.isfinite(a))
    assert LOSSES["cross_entropy"].value(z, a, np.array([[0, 1]], dtype=np.float32)) == pytest.approx(2000.0)


@pytest.mark.parametrize("shape, scale", [((1, 1), 1.0), ((64, 10), 1.0), ((7, 3), 1e4), ((5, 4), 0.0)])
def test_softmax_matches_the_textbook_form(shape, scale):
    # softmax reads the row maximum at argmax and sums rows with a dot product; ties (scale 0)
    # and logits far from 0 must give the same probabilities as max/sum(axis=1) in float64
    z = (np.random.default_rng(3).normal(size=shape) * scale + scale).astype(np.float32)
    p = LOSSES["cross_entropy"].forward(z, np.empty_like(z))
    z64 = z.astype(np.float64)
    e = np.exp(z64 - z64.max(axis=1, keepdims=True))
    np.testing.assert_allclose(p, e / e.sum(axis=1, keepdims=True), rtol=1e-6, atol=1e-7)
    assert p.dtype == np.float32 and np.allclose(p.sum(axis=1), 1, atol=1e-6)


def test_binary_cross_entropy_from_logits_is_stable():
    z = np.array([[-800.0], [800.0]])
    a = LOSSES["binary_cross_entropy"].forward(z, np.empty_like(z))
    value = LOSSES["binary_cross_entropy"].value(z, a, np.array([[1.0], [1.0]]))
    assert value == pytest.approx(400.0)


def test_regression_losses_by_hand():
    a = np.array([[1.0], [3.0]])
    y = np.array([[0.0], [0.5]])
    assert LOSSES["mse"].value(a, a, y) == pytest.approx((1 + 6.25) / 2)
    assert LOSSES["mae"].value(a, a, y) == pytest.approx((1 + 2.5) / 2)
    assert LOSSES["huber"].value(a, a, y) == pytest.approx((0.5 + 2.0) / 2)


def test_loss_for_picks_by_task_and_classes():
    assert loss_for("classification", 3) == "cross_entropy"
    assert loss_for("classification", 2) == "binary_cross_entropy"
    assert loss_for("classification", 2, "cross_entropy") == "binary_cross_entropy"
    assert loss_for("regression", None) == "mse"
    assert loss_for("regression", None, "huber") == "huber"


@pytest.mark.parametrize("classes", [2, 3, 10])
def test_softmax_of_many_rows_has_the_bits_of_few_rows_at_a_time(classes):
    # from ROWS_PER_CLASS rows per class softmax works a class at a time (members' K·rows rows):
    # each row must still get the bits the few-rows form gives it, ties and a NaN row included
    from nnctl.nn.losses import ROWS_PER_CLASS, softmax

    rows = 2 * ROWS_PER_CLASS * classes
    z = np.random.default_rng(5).normal(size=(rows, classes)).astype(np.float32) * 10
    z[3] = 1.5
    z[7, 1] = np.nan
    with np.errstate(invalid="ignore"):
        many = softmax(z, np.empty_like(z))
        few = np.concatenate([softmax(z[s:s + 16], np.empty((len(z[s:s + 16]), classes), np.float32))
                              for s in range(0, rows, 16)])
    assert many.tobytes() == few.tobytes()
