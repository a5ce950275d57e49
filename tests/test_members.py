"""The member axis: K networks of one shape as one, each member the network it would be alone
(forward, loss, gradients), gradient-checked in float64 for every layer type, and clipped per
member."""
import numpy as np
import pytest

from nnctl.nn.clipping import clip_grad_norm
from nnctl.nn.embedding import Embedding
from nnctl.nn.gradcheck import check_gradients
from nnctl.nn.layers import Activation, Dense, Dropout
from nnctl.nn.network import Network
from nnctl.nn.normalization import BatchNorm, LayerNorm

from .conftest import loss_targets

K = 3


def single(kind: str, seed: int, loss: str = "cross_entropy") -> Network:
    """A small float64 network with one layer of `kind` in it; its arrays drawn from `seed`."""
    rng = np.random.default_rng(seed)
    outputs = 1 if loss in ("binary_cross_entropy", "mse") else 3
    first = [Dense(rng.normal(size=(4, 6)), rng.normal(size=6))]
    fan_in = 4
    if kind == "embedding":  # codes in input column 1 (5 categories), a table of width 2
        first = [Embedding(4, [1], [rng.normal(size=(6, 2))]), Dense(rng.normal(size=(5, 6)), rng.normal(size=6))]
    middle = {"dense": [], "embedding": [],
              "batch_norm": [BatchNorm(rng.uniform(0.5, 1.5, 6), rng.normal(size=6), rng.normal(size=6),
                                       rng.uniform(0.5, 2, 6))],
              "layer_norm": [LayerNorm(rng.uniform(0.5, 1.5, 6), rng.normal(size=6))],
              "dropout": [],
              }[kind]
    after = [Dropout(0.4, np.random.default_rng(99))] if kind == "dropout" else []
    layers = first + middle + [Activation("tanh")] + after + [Dense(rng.normal(size=(6, outputs)), rng.normal(size=outputs))]
    del fan_in
    return Network(layers, loss, 4)


KINDS = ["dense", "batch_norm", "layer_norm", "embedding", "dropout"]


def batch(rows: int = 7, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 4))
    X[:, 1] = rng.integers(0, 6, rows)  # category codes for the embedding case (5 = unseen)
    return X


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("loss", ["cross_entropy", "binary_cross_entropy", "mse"])
def test_members_are_the_networks_they_would_be_alone(kind, loss):
    singles = [single(kind, seed, loss) for seed in range(K)]
    net = Network.stack(singles)
    assert net.members == K and net.layers[0].members == K
    X = batch()
    y = loss_targets(loss, np.random.default_rng(1), len(X), singles[0].n_outputs)
    training = kind != "dropout"  # masks are drawn for K members at once: compared in evaluation
    out = net.forward(X, training).copy()
    total = net.loss_value(y)
    net.backward(y)
    alone_total = 0.0
    for k, alone in enumerate(singles):
        np.testing.assert_allclose(out[k], alone.forward(X, training), rtol=1e-12, atol=1e-14)
        alone_total += alone.loss_value(y)
        alone.backward(y)
        for (name, _, grad), (_, _, mine) in zip(alone.named_params(), net.named_params()):
            np.testing.assert_allclose(mine[k], grad, rtol=1e-10, atol=1e-13, err_msg=name)
    assert total == pytest.approx(alone_total, rel=1e-12)  # the members' losses summed
    # members predict their mean
    mean = np.mean([alone.predict_output(X) for alone in singles], axis=0)
    np.testing.assert_allclose(net.predict_output(X), mean, rtol=1e-12)
    np.testing.assert_allclose(net.predict_members(X)[1], singles[1].predict_output(X), rtol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_every_layer_type_with_members_passes_gradcheck(kind):
    net = Network.stack([single(kind, seed) for seed in range(K)])
    X = batch(8, seed=2)
    y = np.eye(3)[np.random.default_rng(3).integers(0, 3, 8)]
    w = np.random.default_rng(4).uniform(0.5, 2, (8, 1))
    results = check_gradients(net, X, y, max_entries=None, w=w)
    assert results and all(r.passed(1e-6) for r in results), [(r.name, r.max_rel) for r in results]
    assert all(r.shape[0] == K for r in results)


def test_members_each_take_their_own_rows():
    singles = [single("batch_norm", seed) for seed in range(K)]
    net = Network.stack(singles)
    Xs = np.stack([batch(6, seed=s) for s in range(K)])  # (K, rows, inputs): each member its own batch
    out = net.forward(Xs, True).copy()
    for k, alone in enumerate(singles):
        np.testing.assert_allclose(out[k], alone.forward(Xs[k], True), rtol=1e-12)


def test_a_layer_with_members_works_on_its_own_with_shared_or_own_inputs():
    rng = np.random.default_rng(5)
    W, b = rng.normal(size=(K, 3, 2)), rng.normal(size=(K, 2))
    x = rng.normal(size=(4, 3))
    expected = np.stack([x @ W[k] + b[k] for k in range(K)])
    np.testing.assert_allclose(Dense(W, b).forward(x), expected, rtol=1e-12)
    np.testing.assert_allclose(Dense(W, b).forward(np.stack([x] * K)), expected, rtol=1e-12)
    gamma = rng.uniform(0.5, 1.5, (K, 3))
    norm = LayerNorm(gamma, np.zeros((K, 3)))
    assert norm.forward(x).shape == (K, 4, 3)


def test_gradient_clipping_is_per_member():
    net = Network.stack([single("dense", seed) for seed in range(K)])
    grads = net.member_grads
    grads[...] = 0.0
    grads[0, :2] = [3.0, 4.0]  # norm 5: clipped to 1
    grads[1, :2] = [0.3, 0.4]  # norm 0.5: left alone
    norms, clipped = clip_grad_norm(net.flat_grads, 1.0, members=K)
    np.testing.assert_allclose(norms, [5.0, 0.5, 0.0])
    assert clipped == 1
    np.testing.assert_allclose(np.linalg.norm(grads, axis=1), [1.0, 0.5, 0.0], rtol=1e-5)


def test_member_k_is_a_network_of_its_own():
    singles = [single("layer_norm", seed) for seed in range(K)]
    net = Network.stack(singles)
    X = batch()
    np.testing.assert_array_equal(net.member(2).predict_output(X), singles[2].predict_output(X))
