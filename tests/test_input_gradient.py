"""Network.input_gradient: ∂(seeded output)/∂(input) by the network's own backward pass, against
central finite differences in float64."""
import numpy as np
import pytest

from nnctl.nn.embedding import Embedding
from nnctl.nn.layers import Dropout
from nnctl.nn.network import Network
from nnctl.nn.normalization import BatchNorm, LayerNorm


def _logits(net, X):
    """The pre-head outputs z: the layers alone, in evaluation mode."""
    a = X
    for layer in net.layers:
        a = layer.forward(a, False)
    return a.copy()


def _finite_differences(net, X, seed, h=1e-6):
    """∂(Σ seed ⊙ z)/∂X, one input column at a time (every row at once: rows do not mix in
    evaluation)."""
    grad = np.zeros_like(X)
    for j in range(X.shape[1]):
        up, down = X.copy(), X.copy()
        up[:, j] += h
        down[:, j] -= h
        grad[:, j] = ((_logits(net, up) - _logits(net, down)) * seed).sum(axis=1) / (2 * h)
    return grad


def _dense_net(loss, outputs, extra=()):
    net = Network.initialize([5, 7, 6, outputs], ["tanh", "relu"], loss, seed=3, dtype=np.float64)
    layers = list(net.layers)
    for position, layer in extra:
        layers.insert(position, layer)
    rng = np.random.default_rng(0)
    net = Network(layers, loss)
    for layer in net.layers:
        for name, value in layer.params.items():
            value[...] = rng.normal(0, 0.5, size=value.shape)  # biases and γ, β away from their start
    return net


@pytest.mark.parametrize("loss, outputs", [("cross_entropy", 3), ("binary_cross_entropy", 1), ("mse", 2)])
def test_input_gradient_matches_finite_differences(loss, outputs):
    net = _dense_net(loss, outputs)
    X = np.random.default_rng(1).normal(size=(9, 5))
    seeds = [None, np.eye(outputs)[np.arange(9) % outputs], np.linspace(0.5, 2.0, outputs)]
    for seed in seeds:
        inputs, grad = net.input_gradient(X, seed)
        full = np.ones((9, outputs)) if seed is None else np.broadcast_to(seed, (9, outputs))
        assert np.array_equal(inputs, X)
        np.testing.assert_allclose(grad, _finite_differences(net, X, full), rtol=1e-6, atol=1e-8)


def test_batch_norm_layer_norm_and_dropout_are_differentiated_as_in_evaluation():
    dropout = Dropout(0.5)
    net = _dense_net("cross_entropy", 3, [(1, BatchNorm.fresh(7, np.float64)), (4, LayerNorm.fresh(6, np.float64)),
                                          (6, dropout)])
    net.layers[1].state["running_mean"][:] = 0.3
    net.layers[1].state["running_var"][:] = 2.0
    X = np.random.default_rng(2).normal(size=(6, 5))
    net.forward(X, training=True)  # leaves a dropout mask and batch statistics behind: evaluation ignores them
    seed = np.eye(3)[[0, 1, 2, 0, 1, 2]]
    _, grad = net.input_gradient(X, seed)
    np.testing.assert_allclose(grad, _finite_differences(net, X, seed), rtol=1e-6, atol=1e-8)


def test_chunks_give_the_same_gradient_and_training_gradients_are_unchanged_afterwards():
    net = _dense_net("mse", 1)
    rng = np.random.default_rng(4)
    X, y = rng.normal(size=(11, 5)), rng.normal(size=(11, 1))
    net.forward(X, training=True)
    before = net.backward(y).copy()
    whole = net.input_gradient(X)[1]
    np.testing.assert_allclose(net.input_gradient(X, chunk=4)[1], whole, rtol=1e-12)
    assert net.workspace().first_delta is False  # training still skips the first layer's dL/dx
    net.forward(X, training=True)
    np.testing.assert_array_equal(net.backward(y), before)


def test_an_embedding_network_is_differentiated_at_its_looked_up_rows():
    rng = np.random.default_rng(5)
    tail = _dense_net("cross_entropy", 3)  # takes 5 inputs: 2 kept + 3 (one table of width 3)
    table = rng.normal(size=(4, 3))
    embedding = Embedding(3, [1], [table])
    net = Network([embedding] + tail.layers, "cross_entropy", 3)
    X = np.column_stack([rng.normal(size=8), rng.integers(0, 4, size=8).astype(float), rng.normal(size=8)])
    seed = np.eye(3)[rng.integers(0, 3, size=8)]
    inputs, grad = net.input_gradient(X, seed, at=1)
    expected_inputs = np.column_stack([X[:, [0, 2]], table[X[:, 1].astype(int)]])
    np.testing.assert_allclose(inputs, expected_inputs)
    np.testing.assert_allclose(grad, _finite_differences(tail, expected_inputs, seed), rtol=1e-6, atol=1e-8)


def _members(loss, outputs, K=3):
    nets = []
    for k in range(K):
        net = Network.initialize([5, 7, 6, outputs], ["tanh", "relu"], loss, seed=3 + k, dtype=np.float64)
        rng = np.random.default_rng(10 + k)
        for layer in net.layers:
            for value in layer.params.values():
                value[...] = rng.normal(0, 0.5, size=value.shape)
        nets.append(net)
    return nets, Network.stack(nets)


@pytest.mark.parametrize("loss, outputs", [("cross_entropy", 3), ("mse", 2)])
def test_an_ensembles_input_gradient_is_its_members_mean_against_finite_differences(loss, outputs):
    nets, ensemble = _members(loss, outputs)
    X = np.random.default_rng(1).normal(size=(9, 5))
    for seed in (None, np.eye(outputs)[np.arange(9) % outputs], np.linspace(0.5, 2.0, outputs)):
        inputs, grad = ensemble.input_gradient(X, seed, chunk=4)
        full = np.ones((9, outputs)) if seed is None else np.broadcast_to(seed, (9, outputs))
        expected = np.mean([_finite_differences(net, X, full) for net in nets], axis=0)
        assert np.array_equal(inputs, X) and grad.shape == X.shape
        np.testing.assert_allclose(grad, expected, rtol=1e-6, atol=1e-8)


def test_an_ensemble_with_embeddings_has_each_members_looked_up_rows():
    rng = np.random.default_rng(5)
    nets, tables = [], []
    for k in range(2):
        tail = _dense_net("cross_entropy", 3)
        for layer in tail.layers:
            for value in layer.params.values():
                value[...] += rng.normal(0, 0.1, size=value.shape)  # members differ
        tables.append(rng.normal(size=(4, 3)))
        nets.append((tail, Network([Embedding(3, [1], [tables[-1]])] + tail.layers, "cross_entropy", 3)))
    ensemble = Network.stack([net for _, net in nets])
    X = np.column_stack([rng.normal(size=8), rng.integers(0, 4, size=8).astype(float), rng.normal(size=8)])
    seed = np.eye(3)[rng.integers(0, 3, size=8)]
    inputs, grad = ensemble.input_gradient(X, seed, at=1)
    assert inputs.shape == grad.shape == (2, 8, 5)
    for k, (tail, _) in enumerate(nets):
        rows = np.column_stack([X[:, [0, 2]], tables[k][X[:, 1].astype(int)]])
        np.testing.assert_allclose(inputs[k], rows)
        np.testing.assert_allclose(grad[k], _finite_differences(tail, rows, seed) / 2, rtol=1e-6, atol=1e-8)
