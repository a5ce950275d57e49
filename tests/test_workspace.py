"""The per-call workspace: a layer keeps only the model, so a layer runs on its own, and any
number of threads predict with one network at once and get exactly the answers of one thread
(through every kind of layer; `test_concurrency.py` drives a loaded Model, as serve does)."""
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from nnctl.nn.layers import Activation, Dense, Dropout
from nnctl.nn.network import CHUNK, Network
from nnctl.nn.normalization import BatchNorm, LayerNorm

THREADS, ROUNDS = 8, 200


def test_a_dense_layer_works_on_its_own():
    W, b = np.arange(6.0).reshape(3, 2), np.array([1.0, -1.0])
    x = np.array([[1.0, 0.0, 2.0], [0.5, 1.0, 0.0]])
    np.testing.assert_array_equal(Dense(W, b).forward(x), x @ W + b)


def test_a_layer_keeps_no_arrays_of_a_pass():
    layer = Dense(np.ones((3, 2)), np.zeros(2))
    before = set(vars(layer))
    buf = layer.new_buffers(np.ones((4, 3)))
    layer.forward(np.ones((4, 3)), True, buf)
    layer.backward(np.ones((4, 2)), buf)
    assert set(vars(layer)) == before  # what the pass wrote is in `buf`, the caller's


def test_backward_allocates_nothing_per_batch_and_keeps_forwards_arrays():
    net = Network.initialize([3, 5, 2], ["relu"], "cross_entropy", seed=0, dtype=np.float64)
    ws = net.workspace()
    X, y = np.random.default_rng(0).normal(size=(4, 3)), np.eye(2)[[0, 1, 1, 0]]
    net.forward(X, True, ws=ws)
    out = ws.buffers[0].out
    net.backward(y, ws=ws)  # backward's arrays are added; forward's stay where they were
    assert ws.buffers[0].out is out and ws.buffers[0].x is X
    net.forward(X, True, ws=ws)
    net.backward(y, ws=ws)
    assert ws.buffers[0].out is out


def _bodies(frame: pd.DataFrame) -> list[pd.DataFrame]:
    """Large bodies (several chunks, a last short one) and small ones (1 to 7 rows), mixed."""
    rng = np.random.default_rng(0)
    big = [frame.sample(n, replace=True, random_state=k) for k, n in enumerate((CHUNK * 2 + 77, 3000, 5000))]
    small = [frame.sample(n, random_state=10 + n) for n in range(1, 8)]
    bodies = big + small
    return [bodies[i] for i in rng.permutation(len(bodies))]


def _hammer(predict, bodies: list) -> None:
    """Each of THREADS threads predicts ROUNDS bodies (each thread its own order) and must get
    exactly what one thread got."""
    expected = [predict(body) for body in bodies]

    def worker(t: int) -> list[int]:
        wrong = []
        for r in range(ROUNDS):
            k = (t * 5 + r * 3) % len(bodies)
            if not np.array_equal(predict(bodies[k]), expected[k]):
                wrong.append(k)
        return wrong

    with ThreadPoolExecutor(THREADS) as pool:
        wrong = [k for found in pool.map(worker, range(THREADS)) for k in found]
    assert not wrong, f"{len(wrong)} of {THREADS * ROUNDS} predictions differ from one thread's"


def test_eight_threads_predict_through_every_kind_of_layer_exactly():
    rng = np.random.default_rng(1)
    layers = [Dense(rng.normal(size=(4, 16)), rng.normal(size=16)), BatchNorm.fresh(16, np.float64),
              Activation("relu"), Dropout(0.3), Dense(rng.normal(size=(16, 8)), rng.normal(size=8)),
              LayerNorm.fresh(8, np.float64), Activation("tanh"), Dense(rng.normal(size=(8, 3)), np.zeros(3))]
    net = Network(layers, "cross_entropy")
    net.layers[1].state["running_var"][:] = 2.0
    frame = pd.DataFrame(rng.normal(size=(500, 4)))
    _hammer(lambda body: net.predict_output(body.to_numpy()), _bodies(frame))


def test_members_score_a_chunk_in_pieces_of_chunk_over_k_rows_with_the_same_bits(monkeypatch):
    # 8 members' 2,048-row passes ran ~6x slower per row than 256-row ones on W2 (cache): a
    # chunk is now scored in pieces of chunk / K rows and gathered, so callers see the same
    # chunks, outputs and losses
    net = Network.stack([Network.initialize([3, 8, 3], ["relu"], "cross_entropy", seed=s) for s in range(4)])
    rng = np.random.default_rng(0)
    X = rng.normal(size=(250, 3)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 250)]
    whole = []
    ws = net.workspace()
    for start in range(0, 250, 100):
        out = net.forward(X[start:start + 100], ws=ws).copy()
        whole.append((out, net.member_losses(np.broadcast_to(y[start:start + 100], out.shape), ws=ws)))
    passes = []
    forward = Network.forward
    monkeypatch.setattr(Network, "forward", lambda self, X, *a, **k: passes.append(len(X)) or forward(self, X, *a, **k))
    ws = net.workspace()
    for (start, out), (out_whole, losses) in zip(net.forward_chunks(X, chunk=100, ws=ws), whole, strict=True):
        assert out.shape == out_whole.shape and out.tobytes() == out_whole.tobytes()
        assert net.member_losses(np.broadcast_to(y[start:start + 100], out.shape), ws=ws).tobytes() == losses.tobytes()
    assert passes == [25, 25, 25, 25] * 2 + [25, 25]
    # the next pass binds the layers' own buffers again
    net.forward(X[:25], ws=ws)
    assert ws.head.output.shape == (4, 25, 3)
