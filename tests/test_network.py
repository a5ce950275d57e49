import numpy as np
import pytest

from nnctl.nn.activations import ACTIVATIONS
from nnctl.nn.gradcheck import check_gradients
from nnctl.nn.losses import LOSSES
from nnctl.nn.initializers import INITIALIZERS
from nnctl.nn.layers import Dense
from nnctl.nn.network import Network as MLP

from .conftest import loss_targets


def dense(net):
    """The network's dense layers, in order."""
    return [layer for layer in net.layers if isinstance(layer, Dense)]


@pytest.mark.parametrize("loss", sorted(LOSSES))
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_backprop_matches_finite_differences(activation, loss):
    rng = np.random.default_rng(3)
    outputs = 1 if loss == "binary_cross_entropy" else 3
    net = MLP.initialize([4, 5, 6, outputs], [activation, activation], loss, seed=7, dtype=np.float64)
    for layer in dense(net):  # non-zero biases exercise the bias gradients
        layer.b[:] = rng.normal(0, 0.1, size=layer.b.shape)
    X = rng.normal(size=(8, 4))
    y = loss_targets(loss, rng, 8, outputs)
    results = check_gradients(net, X, y, max_entries=None)
    assert [r.name for r in results] == ["layers.0.W", "layers.0.b", "layers.2.W", "layers.2.b", "layers.4.W",
                                         "layers.4.b"]
    for r in results:
        assert r.checked == np.prod(r.shape)
        assert r.max_rel < 1e-6, (r.name, r.max_rel)
    weighted = check_gradients(net, X, y, max_entries=None, w=rng.uniform(0.2, 5.0, size=(8, 1)))
    assert max(r.max_rel for r in weighted) < 1e-6


def test_gradcheck_catches_a_wrong_derivative(monkeypatch):
    import nnctl.nn.activations as acts

    wrong = acts.Activation(acts.tanh, lambda delta, z, a, saved=None: delta.__imul__(1 - a), "xavier")
    monkeypatch.setitem(acts.ACTIVATIONS, "tanh", wrong)
    rng = np.random.default_rng(0)
    net = MLP.initialize([3, 4, 2], ["tanh"], "cross_entropy", seed=1, dtype=np.float64)
    results = check_gradients(net, rng.normal(size=(5, 3)), np.eye(2)[rng.integers(0, 2, size=5)])
    assert not results[0].passed(1e-6)  # W0 sits below the wrong derivative
    assert results[-2].passed(1e-6)  # the output layer's gradient does not pass through it


def test_forward_equals_ten_lines_of_numpy():
    rng = np.random.default_rng(4)
    net = MLP.initialize([3, 8, 4], ["tanh"], "cross_entropy", seed=2, dtype=np.float64)
    X = rng.normal(size=(10, 3))
    first, second = dense(net)
    h = np.tanh(X @ first.W + first.b)
    z = h @ second.W + second.b
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(net.forward(X), p, rtol=1e-12)


def test_same_seed_gives_bit_identical_weights_and_other_seeds_differ():
    a = MLP.initialize([4, 16, 3], ["relu"], "cross_entropy", seed=42)
    b = MLP.initialize([4, 16, 3], ["relu"], "cross_entropy", seed=42)
    c = MLP.initialize([4, 16, 3], ["relu"], "cross_entropy", seed=43)
    assert a.flat_params.tobytes() == b.flat_params.tobytes()
    assert dense(a)[0].W.tobytes() != dense(c)[0].W.tobytes()


def test_init_draws_from_default_rng_of_the_seed():
    net = MLP.initialize([4, 5, 2], ["relu"], "mse", seed=9, dtype=np.float64)
    rng = np.random.default_rng(9)
    np.testing.assert_array_equal(dense(net)[0].W, rng.normal(0, np.sqrt(2 / 4), size=(4, 5)))
    limit = np.sqrt(6 / 7)
    np.testing.assert_array_equal(dense(net)[1].W, rng.uniform(-limit, limit, size=(5, 2)))
    assert all(not layer.b.any() for layer in dense(net))


# name -> (standard deviation for fan_in 200, fan_out 300, uniform?)
EXPECTED_SCALE = {
    "he": (np.sqrt(2 / 200), False),
    "he_uniform": (np.sqrt(2 / 200), True),
    "xavier": (np.sqrt(2 / 500), True),
    "glorot": (np.sqrt(2 / 500), True),
    "xavier_normal": (np.sqrt(2 / 500), False),
    "lecun": (np.sqrt(1 / 200), False),
    "normal": (0.05, False),
}


def test_every_initializer_has_an_expected_scale():
    assert set(EXPECTED_SCALE) == set(INITIALIZERS)


@pytest.mark.parametrize("name", sorted(INITIALIZERS))
def test_every_initializer_has_the_right_shape_and_scale(name):
    net = MLP.initialize([200, 300, 2], ["relu"], "mse", init=name, seed=0)
    W = dense(net)[0].W.astype(np.float64)
    assert W.shape == (200, 300) and dense(net)[0].W.dtype == np.float32
    std, uniform = EXPECTED_SCALE[name]
    # 60,000 draws estimate the standard deviation to well under 1%: He (0.1) and Xavier
    # (0.063) are far apart
    assert W.std() == pytest.approx(std, rel=0.02)
    assert abs(W.mean()) < 0.02 * std
    limit = np.sqrt(3) * std  # a uniform distribution with this std lies within ±limit
    if uniform:
        assert np.abs(W).max() <= limit * (1 + 1e-6) and np.abs(W).max() > 0.99 * limit
    else:
        assert np.abs(W).max() > 3 * std  # a normal's tails reach far past the uniform's edge


def test_dtype_is_kept_through_forward_and_backward():
    rng = np.random.default_rng(5)
    net = MLP.initialize([3, 4, 3], ["gelu"], "cross_entropy", seed=0, dtype=np.float32)
    X = rng.normal(size=(6, 3)).astype(np.float32)
    assert net.forward(X).dtype == np.float32
    assert net.backward(np.eye(3, dtype=np.float32)[rng.integers(0, 3, 6)]).dtype == np.float32
    assert all(g.dtype == np.float32 for layer in net.layers for g in layer.grads.values())


def test_every_batch_size_gives_the_same_rows_and_gradients():
    # one buffer set serves every batch size (benchmarks/ measures the memory); here, only that
    # switching sizes back and forth never mixes up rows or gradients
    rng = np.random.default_rng(6)
    net = MLP.initialize([3, 5, 2], ["relu"], "mse", seed=0, dtype=np.float64)
    X, Y = rng.normal(size=(50, 3)), rng.normal(size=(50, 2))
    full = net.forward(X).copy()
    for rows in (3, 50, 9, 17, 3, 33):
        np.testing.assert_allclose(net.forward(X[:rows]), full[:rows])
        grads = net.backward(Y[:rows]).copy()
        fresh = MLP.initialize([3, 5, 2], ["relu"], "mse", seed=0, dtype=np.float64)
        fresh.forward(X[:rows])
        np.testing.assert_allclose(grads, fresh.backward(Y[:rows]))
    np.testing.assert_allclose(net.predict_output(X, chunk=7), full)


def test_backward_output_delta_for_softmax_is_p_minus_y_over_n():
    net = MLP.mlp([np.eye(2)], [np.zeros(2)], [], "cross_entropy")
    X = np.array([[0.0, 0.0], [1.0, 0.0]])
    p = net.forward(X).copy()
    net.backward(np.eye(2))
    expected_delta = (p - np.eye(2)) / 2
    np.testing.assert_allclose(net.layers[0].grads["W"], X.T @ expected_delta)
    np.testing.assert_allclose(net.layers[0].grads["b"], expected_delta.sum(axis=0))


def test_parameters_are_views_of_one_flat_array():
    net = MLP.initialize([3, 4, 2], ["relu"], "mse", seed=0)
    assert net.flat_params.size == net.n_params() == 3 * 4 + 4 + 4 * 2 + 2
    net.flat_params[:] = 0
    assert not dense(net)[1].W.any()
    np.testing.assert_array_equal(net.decay_mask, np.concatenate([np.ones(12), np.zeros(4), np.ones(8), np.zeros(2)]))
    assert list(net.arrays()) == ["layers.0.W", "layers.0.b", "layers.2.W", "layers.2.b"]
