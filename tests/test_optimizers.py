"""Each optimizer's steps against PyTorch's equations worked by hand on small arrays."""
import math

import numpy as np
import pytest

from nnctl.nn.optimizers import SGD, Adam, Momentum, RMSprop
from nnctl.nn.schedules import SCHEDULES
from nnctl.config.typed import TrainingConfig
from nnctl.training.optimization import build_optimizer, build_schedule


def make_optimizer(params, training: dict, decay=None):
    return build_optimizer(params, TrainingConfig(**training), decay)


def learning_rate(training: dict, epoch):
    return build_schedule(TrainingConfig(**training))(epoch)

BASE = {"l2": 0.0, "momentum": 0.9, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "alpha": 0.99}


def run(name, grads_seq, lr=0.1, **overrides):
    W = np.array([[1.0, -2.0]])
    b = np.array([0.5])
    opt = make_optimizer([W, b], {**BASE, **overrides, "optimizer": name})
    for g in grads_seq:
        opt.step([np.array([g[:2]]), np.array([g[2]])], lr)
    return W, b


G1 = [0.5, -1.0, 2.0]
G2 = [-0.25, 0.5, 1.0]


def test_sgd():
    W, b = run("sgd", [G1])
    np.testing.assert_allclose(W, [[1 - 0.05, -2 + 0.1]])
    np.testing.assert_allclose(b, [0.5 - 0.2])


def test_sgd_weight_decay_is_on_weights_only():
    W, b = run("sgd", [G1], l2=0.1)
    # g_W + 0.1 * W = [0.5 + 0.1, -1 - 0.2]
    np.testing.assert_allclose(W, [[1 - 0.1 * 0.6, -2 - 0.1 * -1.2]])
    np.testing.assert_allclose(b, [0.5 - 0.2])


def test_momentum_two_steps():
    W, _ = run("momentum", [G1, G2])
    v1 = np.array([0.5, -1.0])
    p1 = np.array([1.0, -2.0]) - 0.1 * v1
    v2 = 0.9 * v1 + np.array([-0.25, 0.5])
    np.testing.assert_allclose(W[0], p1 - 0.1 * v2)


def test_nesterov_two_steps():
    W, _ = run("nesterov", [G1, G2])
    g1, g2 = np.array([0.5, -1.0]), np.array([-0.25, 0.5])
    v1 = g1
    p1 = np.array([1.0, -2.0]) - 0.1 * (g1 + 0.9 * v1)
    v2 = 0.9 * v1 + g2
    np.testing.assert_allclose(W[0], p1 - 0.1 * (g2 + 0.9 * v2))


def _adam_reference(grads, lr=0.1, b1=0.9, b2=0.999, eps=1e-8, p=None, wd=0.0, decoupled=False):
    p = np.array([1.0, -2.0]) if p is None else p
    m = v = np.zeros(2)
    for t, g in enumerate(grads, start=1):
        g = np.array(g[:2])
        if decoupled:
            p = p * (1 - lr * wd)
        else:
            g = g + wd * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        denom = np.sqrt(v) / math.sqrt(1 - b2 ** t) + eps
        p = p - (lr / (1 - b1 ** t)) * m / denom
    return p


def test_adam_two_steps_pytorch_form():
    W, _ = run("adam", [G1, G2])
    np.testing.assert_allclose(W[0], _adam_reference([G1, G2]), rtol=1e-12)
    # the first Adam step moves every weight by lr (sign of the gradient), by hand:
    W1, _ = run("adam", [G1])
    np.testing.assert_allclose(W1[0], [1 - 0.1, -2 + 0.1], rtol=1e-6)


def test_adam_with_l2_and_adamw_decoupled():
    W, _ = run("adam", [G1, G2], l2=0.01)
    np.testing.assert_allclose(W[0], _adam_reference([G1, G2], wd=0.01), rtol=1e-12)
    W, _ = run("adamw", [G1, G2], l2=0.01)
    np.testing.assert_allclose(W[0], _adam_reference([G1, G2], wd=0.01, decoupled=True), rtol=1e-12)


def test_rmsprop_two_steps():
    W, _ = run("rmsprop", [G1, G2])
    p, v = np.array([1.0, -2.0]), np.zeros(2)
    for g in (G1, G2):
        g = np.array(g[:2])
        v = 0.99 * v + 0.01 * g * g
        p = p - 0.1 * g / (np.sqrt(v) + 1e-8)
    np.testing.assert_allclose(W[0], p, rtol=1e-12)


def test_float32_parameters_stay_float32():
    W = np.ones((2, 2), dtype=np.float32)
    opt = make_optimizer([W], {**BASE, "optimizer": "adam"})
    opt.step([np.full((2, 2), 0.5, dtype=np.float32)], 0.1)
    assert W.dtype == np.float32 and opt.ms[0].dtype == np.float32


def _training(schedule, lr=0.1, iterations=100):
    return {"learning_rate": lr, "iterations": iterations, "schedule": schedule}


def test_schedules_by_hand():
    assert learning_rate(_training({"name": "constant"}), 57) == 0.1
    step = _training({"name": "step", "step_size": 10, "gamma": 0.5})
    assert [learning_rate(step, e) for e in (0, 9, 10, 25)] == pytest.approx([0.1, 0.1, 0.05, 0.025])
    expo = _training({"name": "exponential", "gamma": 0.9})
    assert learning_rate(expo, 3) == pytest.approx(0.1 * 0.9 ** 3)
    cos = _training({"name": "cosine", "min_learning_rate": 0.0})
    assert learning_rate(cos, 0) == pytest.approx(0.1)
    assert learning_rate(cos, 50) == pytest.approx(0.05)
    assert set(SCHEDULES) == {"constant", "step", "exponential", "cosine", "plateau"}



def test_steps_equal_pytorch_when_installed():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    p0 = rng.normal(size=(3, 2))
    grads = [rng.normal(size=(3, 2)) for _ in range(4)]
    cases = {
        "sgd": lambda p: torch.optim.SGD([p], lr=0.05, weight_decay=0.01),
        "momentum": lambda p: torch.optim.SGD([p], lr=0.05, momentum=0.9, weight_decay=0.01),
        "nesterov": lambda p: torch.optim.SGD([p], lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
        "adam": lambda p: torch.optim.Adam([p], lr=0.05, weight_decay=0.01),
        "adamw": lambda p: torch.optim.AdamW([p], lr=0.05, weight_decay=0.01),
        "rmsprop": lambda p: torch.optim.RMSprop([p], lr=0.05, weight_decay=0.01),
    }
    for name, make in cases.items():
        tp = torch.tensor(p0.copy(), requires_grad=True)
        topt = make(tp)
        W = p0.copy()
        opt = make_optimizer([W], {**BASE, "l2": 0.01, "optimizer": name})
        for g in grads:
            tp.grad = torch.tensor(g)
            topt.step()
            opt.step([g.copy()], 0.05)
        np.testing.assert_allclose(W, tp.detach().numpy(), rtol=1e-10, err_msg=name)


def test_a_decay_mask_decays_only_masked_entries():
    p = np.array([1.0, -2.0, 0.5])
    opt = make_optimizer([p], {**BASE, "optimizer": "sgd", "l2": 0.1}, decay=[np.array([1.0, 1.0, 0.0])])
    opt.step([np.array([0.5, -1.0, 2.0])], 0.1)
    np.testing.assert_allclose(p, [1 - 0.1 * 0.6, -2 - 0.1 * -1.2, 0.5 - 0.2])
    q = np.array([1.0, 1.0])
    adamw = make_optimizer([q], {**BASE, "optimizer": "adamw", "l2": 0.5}, decay=[np.array([1.0, 0.0])])
    adamw.step([np.zeros(2)], 0.1)
    np.testing.assert_allclose(q, [1 - 0.1 * 0.5, 1.0])


def test_optimizers_take_plain_arguments_as_pytorch_names_them():
    # nn/ reads no config: the same steps from keyword arguments as from a `training` section
    g = np.array([0.5, -1.0])
    for made, cfg in ((Adam, {"optimizer": "adam", "beta1": 0.8, "beta2": 0.99, "eps": 1e-6, "l2": 0.1}),
                      (Momentum, {"optimizer": "nesterov", "momentum": 0.5, "l2": 0.1}),
                      (RMSprop, {"optimizer": "rmsprop", "alpha": 0.9, "eps": 1e-6, "l2": 0.1}),
                      (SGD, {"optimizer": "sgd", "l2": 0.1})):
        kwargs = {"adam": dict(betas=(0.8, 0.99), eps=1e-6), "nesterov": dict(momentum=0.5, nesterov=True),
                  "rmsprop": dict(alpha=0.9, eps=1e-6), "sgd": {}}[cfg["optimizer"]]
        p, q = np.array([1.0, 2.0]), np.array([1.0, 2.0])
        direct = made([p], weight_decay=0.1, decay=[True], **kwargs)
        built = make_optimizer([q], {**BASE, **cfg}, decay=[True])
        for _ in range(3):
            direct.step([g.copy()], 0.1)
            built.step([g.copy()], 0.1)
        np.testing.assert_array_equal(p, q)
        assert not np.array_equal(p, [1.0, 2.0])


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop"])
def test_members_with_their_own_rates_and_l2_equal_separate_optimizers(name):
    """(K, P) parameters with (K, 1) learning rates and weight decays: member k's row follows the
    steps of an optimizer of its own with its own scalars."""
    rng = np.random.default_rng(0)
    K, P = 3, 5
    rates, l2s = np.array([0.1, 0.01, 0.003]), np.array([0.0, 0.05, 0.2])
    mask = (np.arange(P) < 3).astype(float)  # weights decay, the two "biases" do not
    start = rng.normal(size=(K, P))
    grads = rng.normal(size=(4, K, P))
    together = start.copy()
    opt = build_optimizer([together], TrainingConfig(**BASE, optimizer=name), [np.tile(mask, (K, 1))],
                          weight_decay=l2s[:, None])
    for g in grads:
        opt.step([g.copy()], rates[:, None])
    for k in range(K):
        alone = start[k].copy()
        own = make_optimizer([alone], {**BASE, "l2": float(l2s[k]), "optimizer": name}, decay=[mask])
        for g in grads:
            own.step([g[k].copy()], float(rates[k]))
        np.testing.assert_allclose(together[k], alone, rtol=1e-12, atol=1e-15)
