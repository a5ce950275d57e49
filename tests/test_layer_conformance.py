"""One conformance check for every registered layer type (as scikit-learn's
parametrize_with_checks): in float64, its input delta and the gradient of every array against
central finite differences, in training and evaluation; a save/load round trip through
`settings`/`from_saved`; the member axis (a stacked layer is its members alone, with shared or
own inputs); and workspace reentrancy (interleaved passes with two sets of buffers give the
answers of one pass at a time). A new layer type registers an example here, or this fails."""
import numpy as np
import pytest

from nnctl.nn.activations import ACTIVATIONS
from nnctl.nn.composite import Residual
from nnctl.nn.embedding import Embedding
from nnctl.nn.layers import LAYERS, Activation, Dense, Dropout
from nnctl.nn.normalization import BatchNorm, LayerNorm
from nnctl.nn.numeric import Periodic, PiecewiseLinear, quantile_edges

ROWS, FAN_IN = 6, 4


def _x(rng, codes: bool = False) -> np.ndarray:
    x = rng.normal(size=(ROWS, FAN_IN)) * 1.5 + 0.1
    if codes:  # column 1 holds category codes 0..4 (4: the unseen category)
        x[:, 1] = rng.integers(0, 5, ROWS)
    return x


# type -> (variant name, factory(rng) -> layer), one or more per type
EXAMPLES = {
    "dense": [("dense", lambda rng: Dense(rng.normal(size=(FAN_IN, 3)), rng.normal(size=3)))],
    "activation": [(name, lambda rng, n=name: Activation(n)) for name in sorted(ACTIVATIONS)],
    "dropout": [("dropout", lambda rng: Dropout(0.4, np.random.default_rng(int(rng.integers(1 << 30)))))],
    "batch_norm": [("batch_norm", lambda rng: BatchNorm(rng.uniform(0.5, 1.5, FAN_IN), rng.normal(size=FAN_IN),
                                                        rng.normal(size=FAN_IN), rng.uniform(0.5, 2, FAN_IN)))],
    "layer_norm": [("layer_norm", lambda rng: LayerNorm(rng.uniform(0.5, 1.5, FAN_IN), rng.normal(size=FAN_IN)))],
    "embedding": [("embedding", lambda rng: Embedding(FAN_IN, [1], [rng.normal(size=(5, 2))]))],
    # a composite: its children's arrays as its own (body.0.W, ...), their buffers in its own
    "residual": [
        ("residual", lambda rng: Residual([Dense(rng.normal(size=(FAN_IN, FAN_IN)), rng.normal(size=FAN_IN)),
                                           LayerNorm(rng.uniform(0.5, 1.5, FAN_IN), rng.normal(size=FAN_IN)),
                                           Activation("tanh")])),
        ("residual_batch_norm_dropout", lambda rng: Residual([
            Dense(rng.normal(size=(FAN_IN, FAN_IN)), rng.normal(size=FAN_IN)),
            BatchNorm(rng.uniform(0.5, 1.5, FAN_IN), rng.normal(size=FAN_IN), rng.normal(size=FAN_IN),
                      rng.uniform(0.5, 2, FAN_IN)),
            Activation("elu"), Dropout(0.4, np.random.default_rng(int(rng.integers(1 << 30))))])),
        ("residual_nested", lambda rng: Residual([
            Residual([Dense(rng.normal(size=(FAN_IN, FAN_IN)), rng.normal(size=FAN_IN)), Activation("tanh")]),
            Dense(rng.normal(size=(FAN_IN, FAN_IN)), rng.normal(size=FAN_IN))])),
    ],
    "periodic": [("periodic", lambda rng: Periodic(FAN_IN, [0, 2, 3], rng.normal(size=(3, 2)) * 0.3,
                                                   rng.normal(size=(3, 4, 2)), rng.normal(size=(3, 2))))],
    # bins from a sample, one column of only two values (fewer bins than asked), a value beyond
    "piecewise_linear": [("piecewise_linear", lambda rng: PiecewiseLinear(FAN_IN, [3, 0, 2], quantile_edges(
        np.column_stack([rng.normal(size=40), rng.normal(size=40), rng.integers(0, 2, 40)]), 4)))],
}
CASES = [pytest.param(kind, make, id=name) for kind, variants in EXAMPLES.items() for name, make in variants]


def test_every_registered_layer_type_has_an_example():
    assert set(EXAMPLES) == set(LAYERS)


def _setup(kind, make, seed=0):
    rng = np.random.default_rng(seed)
    layer = make(rng)
    return layer, _x(rng, codes=kind == "embedding"), rng


def _loss_of(layer, x, training, R, buf):
    return float(np.sum(layer.forward(x, training, buf) * R))


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("kind, make", CASES)
def test_gradients_against_finite_differences(kind, make, training):
    layer, x, rng = _setup(kind, make)
    buf = layer.new_buffers(x)
    out = layer.forward(x, training, buf).copy()
    R = rng.normal(size=out.shape)
    dx = layer.backward(R.copy(), buf)
    dx = None if dx is None else dx.copy()
    grads = {name: g.copy() for name, g in layer.grads.items()}
    buf.frozen = True  # a random layer keeps its mask: every pass below is the same function
    h = 1e-6
    numeric = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        if kind == "embedding" and idx[1] == 1:
            continue  # codes are not differentiable (their delta is 0)
        plus, minus = x.copy(), x.copy()
        plus[idx] += h
        minus[idx] -= h
        numeric[idx] = (_loss_of(layer, plus, training, R, buf) - _loss_of(layer, minus, training, R, buf)) / (2 * h)
    np.testing.assert_allclose(dx, numeric, rtol=1e-6, atol=1e-7)
    for name, value in layer.params.items():
        approx = np.zeros_like(value)
        for idx in np.ndindex(*value.shape):
            keep = value[idx]
            value[idx] = keep + h
            plus = _loss_of(layer, x, training, R, buf)
            value[idx] = keep - h
            minus = _loss_of(layer, x, training, R, buf)
            value[idx] = keep
            approx[idx] = (plus - minus) / (2 * h)
        np.testing.assert_allclose(grads[name], approx, rtol=1e-6, atol=1e-7, err_msg=name)


@pytest.mark.parametrize("kind, make", CASES)
def test_save_and_load_round_trip(kind, make):
    layer, x, _ = _setup(kind, make)
    again = LAYERS[layer.type].from_saved(layer.settings(), {**layer.params, **layer.state})
    assert again.type == layer.type and again.settings() == layer.settings()
    np.testing.assert_array_equal(again.forward(x), layer.forward(x))


@pytest.mark.parametrize("kind, make", CASES)
def test_the_member_axis_is_each_member_alone(kind, make):
    members = [_setup(kind, make, seed)[0] for seed in range(3)]
    _, x, rng = _setup(kind, make)
    stacked = LAYERS[kind].from_saved(members[0].settings(), {
        name: np.stack([{**m.params, **m.state}[name] for m in members]) for name in {**members[0].params,
                                                                                     **members[0].state}})
    if members[0].params:
        assert stacked.members == 3
    own = np.stack([_x(np.random.default_rng(10 + k), codes=kind == "embedding") for k in range(3)])
    # evaluation for random layers and batch statistics (what each declares): no masks, running statistics
    training = stacked.rng is None and stacked.min_rows == 1
    for inputs, each in ((x, [x] * 3), (own, list(own))):
        out = stacked.forward(inputs, training)
        for k, member in enumerate(members):
            alone = member.forward(each[k], training)
            np.testing.assert_allclose(out[k] if out.ndim == 3 else out, alone, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kind, make", CASES)
def test_two_workspaces_interleaved_give_the_answers_of_one(kind, make):
    layer, x1, rng = _setup(kind, make)
    x2 = _x(rng, codes=kind == "embedding")
    d1, d2 = rng.normal(size=(ROWS, layer.units(FAN_IN))), rng.normal(size=(ROWS, layer.units(FAN_IN)))

    def one_at_a_time(x, d):
        buf = layer.new_buffers(x)
        out = layer.forward(x, False, buf).copy()
        dx = layer.backward(d.copy(), buf)
        return out, dx.copy()

    expected = [one_at_a_time(x1, d1), one_at_a_time(x2, d2)]
    b1, b2 = layer.new_buffers(x1), layer.new_buffers(x2)
    o1 = layer.forward(x1, False, b1)
    o2 = layer.forward(x2, False, b2)
    dx1 = layer.backward(d1.copy(), b1)
    np.testing.assert_array_equal(o1, expected[0][0])
    np.testing.assert_array_equal(dx1, expected[0][1])
    np.testing.assert_array_equal(o2, expected[1][0])
    np.testing.assert_array_equal(layer.backward(d2.copy(), b2), expected[1][1])
