import numpy as np
import pytest

from nnctl.nn.activations import ACTIVATIONS
from nnctl.nn.gradcheck import check_gradients
from nnctl.nn.losses import LOSSES
from nnctl.nn.initializers import INITIALIZERS
from nnctl.nn.network import MLP

from .conftest import loss_targets


@pytest.mark.parametrize("loss", sorted(LOSSES))
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_backprop_matches_finite_differences(activation, loss):
    rng = np.random.default_rng(3)
    outputs = 1 if loss == "binary_cross_entropy" else 3
    net = MLP.initialize([4, 5, 6, outputs], [activation, activation], loss, seed=7, dtype=np.float64)
    for b in net.biases:  # non-zero biases exercise the bias gradients
        b[:] = rng.normal(0, 0.1, size=b.shape)
    X = rng.normal(size=(8, 4))
    y = loss_targets(loss, rng, 8, outputs)
    results = check_gradients(net, X, y, max_entries=None)
    assert [r.name for r in results] == ["W0", "b0", "W1", "b1", "W2", "b2"]
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
    h = np.tanh(X @ net.weights[0] + net.biases[0])
    z = h @ net.weights[1] + net.biases[1]
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(net.forward(X), p, rtol=1e-12)


def test_same_seed_gives_bit_identical_weights_and_other_seeds_differ():
    a = MLP.initialize([4, 16, 3], ["relu"], "cross_entropy", seed=42)
    b = MLP.initialize([4, 16, 3], ["relu"], "cross_entropy", seed=42)
    c = MLP.initialize([4, 16, 3], ["relu"], "cross_entropy", seed=43)
    for x, y in zip(a.params, b.params):
        assert x.tobytes() == y.tobytes()
    assert a.weights[0].tobytes() != c.weights[0].tobytes()


def test_init_draws_from_default_rng_of_the_seed():
    net = MLP.initialize([4, 5, 2], ["relu"], "mse", seed=9, dtype=np.float64)
    rng = np.random.default_rng(9)
    np.testing.assert_array_equal(net.weights[0], rng.normal(0, np.sqrt(2 / 4), size=(4, 5)))
    limit = np.sqrt(6 / 7)
    np.testing.assert_array_equal(net.weights[1], rng.uniform(-limit, limit, size=(5, 2)))
    assert all(not b.any() for b in net.biases)


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
    W = net.weights[0].astype(np.float64)
    assert W.shape == (200, 300) and net.weights[0].dtype == np.float32
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
    assert all(g.dtype == np.float32 for g in net.backward(np.eye(3, dtype=np.float32)[rng.integers(0, 3, 6)]))


def test_batches_of_different_sizes_reuse_their_own_buffers():
    rng = np.random.default_rng(6)
    net = MLP.initialize([3, 4, 1], ["relu"], "mse", seed=0, dtype=np.float64)
    X = rng.normal(size=(10, 3))
    full = net.forward(X).copy()
    first = net.forward(X[:7])
    assert first is net.forward(X[:7])  # same buffer, no new allocation
    np.testing.assert_allclose(net.forward(X[7:]), full[7:])
    np.testing.assert_allclose(net.predict_output(X, chunk=3), full)


def test_backward_output_delta_for_softmax_is_p_minus_y_over_n():
    net = MLP([np.eye(2)], [np.zeros(2)], [], "cross_entropy")
    X = np.array([[0.0, 0.0], [1.0, 0.0]])
    p = net.forward(X).copy()
    net.backward(np.eye(2))
    expected_delta = (p - np.eye(2)) / 2
    np.testing.assert_allclose(net.grads_W[0], X.T @ expected_delta)
    np.testing.assert_allclose(net.grads_b[0], expected_delta.sum(axis=0))


def test_parameters_are_views_of_one_flat_array():
    net = MLP.initialize([3, 4, 2], ["relu"], "mse", seed=0)
    assert net.flat_params.size == net.n_params() == 3 * 4 + 4 + 4 * 2 + 2
    net.flat_params[:] = 0
    assert not net.weights[1].any()
    np.testing.assert_array_equal(net.decay_mask, np.concatenate([np.ones(12), np.zeros(4), np.ones(8), np.zeros(2)]))


def test_one_buffer_set_serves_every_batch_size():
    rng = np.random.default_rng(7)
    net = MLP.initialize([3, 5, 2], ["relu"], "mse", seed=0, dtype=np.float64)
    X = rng.normal(size=(50, 3))
    big = net.forward(X).copy()
    small = net.forward(X[:8])
    assert np.shares_memory(small, net.forward(X[:50]))  # a view of the one set, not a new buffer
    np.testing.assert_allclose(net.forward(X[:8]), big[:8])
    before = net._capacity
    for rows in (3, 9, 17, 33):
        net.forward(X[:rows])
        net.backward(rng.normal(size=(rows, 2)))
    assert net._capacity == before == 50
