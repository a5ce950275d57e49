import math

import numpy as np
import pytest

from nnctl.nn.activations import ACTIVATIONS, erf

NAMES = sorted(ACTIVATIONS)


def test_erf_matches_math_erf_to_double_precision():
    x = np.linspace(-9, 9, 4001)
    expected = np.array([math.erf(v) for v in x])
    assert np.max(np.abs(erf(x) - expected)) < 1e-15


@pytest.mark.parametrize("name", NAMES)
def test_derivative_matches_central_differences(name):
    rng = np.random.default_rng(1)
    z = rng.normal(0, 2, size=(7, 5))
    z[np.abs(z) < 1e-3] += 0.01  # keep away from kinks
    forward, backward = ACTIVATIONS[name].forward, ACTIVATIONS[name].backward
    h = 1e-6
    numeric = (forward(z + h, np.empty_like(z)) - forward(z - h, np.empty_like(z))) / (2 * h)
    a = forward(z, np.empty_like(z))
    delta = np.ones_like(z)
    backward(delta, z, a)
    np.testing.assert_allclose(delta, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", NAMES)
def test_saving_for_backward_changes_nothing(name):
    # training passes a `saved` buffer (ReLU keeps its mask there); prediction passes None
    rng = np.random.default_rng(2)
    z = rng.normal(0, 2, size=(6, 4)).astype(np.float32)
    z[0, 0] = 0.0  # ReLU's kink: f'(0) is taken as 0, as PyTorch does
    act = ACTIVATIONS[name]
    plain = act.forward(z, np.empty_like(z), None)
    saved = np.full_like(z, np.nan)
    kept = act.forward(z, np.empty_like(z), saved)
    np.testing.assert_array_equal(kept, plain)
    delta = rng.normal(size=z.shape).astype(np.float32)
    via_output, via_saved = delta.copy(), delta.copy()
    act.backward(via_output, z, plain, None)
    act.backward(via_saved, z, kept, saved)
    np.testing.assert_array_equal(via_saved, via_output)
    if name == "relu":
        np.testing.assert_array_equal(via_saved, np.where(z > 0, delta, 0))


@pytest.mark.parametrize(
    "name, z, expected",
    [
        ("relu", [-1.0, 0.0, 2.0], [0.0, 0.0, 2.0]),
        ("leaky_relu", [-2.0, 3.0], [-0.02, 3.0]),
        ("elu", [-1.0, 2.0], [math.expm1(-1.0), 2.0]),
        ("tanh", [0.5], [math.tanh(0.5)]),
        ("sigmoid", [0.0, 2.0, -800.0, 800.0], [0.5, 1 / (1 + math.exp(-2)), 0.0, 1.0]),
        ("softplus", [0.0, 1.0, -800.0, 800.0], [math.log(2), math.log1p(math.e), 0.0, 800.0]),
        ("gelu", [1.0, -0.5], [0.5 * (1 + math.erf(1 / math.sqrt(2))), -0.25 * (1 + math.erf(-0.5 / math.sqrt(2)))]),
        ("identity", [-3.0, 4.0], [-3.0, 4.0]),
    ],
)
def test_forward_values(name, z, expected):
    z = np.array([z])
    with np.errstate(over="raise"):
        out = ACTIVATIONS[name].forward(z, np.empty_like(z))
    np.testing.assert_allclose(out[0], expected, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("name", NAMES)
def test_float32_stays_float32(name):
    z = np.linspace(-3, 3, 12, dtype=np.float32).reshape(3, 4)
    out = ACTIVATIONS[name].forward(z, np.empty_like(z))
    delta = np.ones_like(z)
    ACTIVATIONS[name].backward(delta, z, out)
    assert out.dtype == np.float32 and delta.dtype == np.float32
