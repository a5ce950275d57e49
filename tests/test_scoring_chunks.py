"""Scoring and predicting run a part through the network in chunks of rows sized from the memory
budget and the network's own per-row buffers (resources.chunk_rows), not a fixed 2,048 rows: a
periodic embedding of 60 inputs writes 15 KB a row, 30 MB for 2,048 rows, which the streaming
budget never saw. PLE's streamed sample is bounded by the budget as robust scaling's is."""
import tracemalloc
from types import SimpleNamespace

import numpy as np
import pytest

from nnctl.data.scanstats import sample_rows
from nnctl.nn.layers import Activation, Dense
from nnctl.nn.losses import loss_for
from nnctl.nn.network import CHUNK, Network
from nnctl.nn.numeric import Periodic, quantile_edges
from nnctl.resources import CACHE_BYTES, SCORING_SHARE, chunk_rows
from nnctl.training.scoring import score_with, scoring_chunk

F = 60


def wide_network() -> Network:
    """periodic 60×16→16 (the recipe's default embedding on 60 inputs), then [8]."""
    rng = np.random.default_rng(0)
    embedding = Periodic.fresh(F, np.arange(F), 16, 16, 0.1, rng, np.float32)
    hidden = Dense(rng.normal(0, 0.05, (F * 16, 8)).astype(np.float32), np.zeros(8, np.float32))
    out = Dense(rng.normal(0, 0.5, (8, 1)).astype(np.float32), np.zeros(1, np.float32))
    return Network([embedding, hidden, Activation("relu"), out], loss_for("classification", 2), F)


def test_row_bytes_are_what_the_workspace_allocates():
    network = wide_network()
    ws = network.workspace()
    # periodic out, v, h; dense; relu out and saved; dense; head
    assert ws.row_bytes() == 4 * (F * 16 + F * 32 + F * 16 + 8 + 2 * 8 + 1 + 1)
    assert ws.row_bytes(widest=True) == 4 * F * 32  # the sines and cosines
    ws.bind(100, backward=True)
    allocated = sum(a.nbytes for layer in ws._flat for a, _ in layer.values())
    assert allocated == 100 * ws.row_bytes(backward=True)


def test_the_chunk_fits_the_budget_share_and_the_cache_cap(monkeypatch):
    monkeypatch.setenv("NNCTL_MEMORY_LIMIT", "64GB")
    assert chunk_rows(400, 400, CHUNK) == CHUNK  # a plain MLP: the usual 2,048 rows
    assert chunk_rows(15_464, 7_680, CHUNK) == 512  # the wide embedding: its widest buffer cache-sized
    assert 512 * 7_680 <= CACHE_BYTES
    monkeypatch.setenv("NNCTL_MEMORY_LIMIT", "16MB")
    rows = chunk_rows(15_464, 7_680, CHUNK)
    assert rows == 64 and rows * 15_464 <= (16 << 20) // SCORING_SHARE
    assert chunk_rows(10 << 20, 10 << 20, CHUNK) == 64  # never under one block of rows


def test_scoring_a_wide_embedding_stays_within_the_budget_share(monkeypatch):
    """Fixed 2,048-row chunks allocated 30 MB of buffers here; sized from a 16 MB budget, under 1 MB."""
    monkeypatch.setenv("NNCTL_MEMORY_LIMIT", "16MB")
    network = wide_network()
    rng = np.random.default_rng(1)
    X = rng.standard_normal((2_500, F)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    whole = network.predict_output(X)  # before tracing: the reference, in 2,048-row chunks
    tracemalloc.start()
    try:
        loss, accuracy = score_with(network, "classification", X, y)[:2]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 << 20, peak >> 10  # buffers of 64 rows (1 MB) and the one-hot targets
    t = whole[:, 0].astype(np.float64)
    expected = -np.mean(y * np.log(t) + (1 - y) * np.log(1 - t))
    assert loss == pytest.approx(expected, rel=1e-5)
    assert accuracy == np.mean((t > 0.5) == y)


def test_the_training_workspace_does_not_grow_for_scoring(monkeypatch):
    """Scoring in the training loop's workspace at 2,048 rows grew its forward and backward arrays,
    sized for the batch's rows, to 2,048 rows (55 MB here); within the share they stay as they were."""
    monkeypatch.setenv("NNCTL_MEMORY_LIMIT", "100MB")
    network = wide_network()
    ws = network.workspace()
    X = np.random.default_rng(2).standard_normal((3_000, F)).astype(np.float32)
    y = (X[:, 1] > 0).astype(np.int64)
    network.forward(X[:256], training=True, ws=ws)
    ws.bind(256, backward=True)
    assert scoring_chunk(ws) <= 256
    score_with(network, "classification", X, y, ws=ws)
    assert ws.capacity == 256


def test_streamed_piecewise_linear_bins_come_from_a_budgeted_sample(monkeypatch):
    """The streamed sample was 100k rows of every input whatever the budget: 24 MB of 60 inputs,
    then a float64 copy and np.quantile's copy of it, 120 MB under a 100 MB budget."""
    from nnctl.training import build

    monkeypatch.setenv("NNCTL_MEMORY_LIMIT", "100MB")
    asked = []
    rng = np.random.default_rng(3)

    def sample(n, seed):
        asked.append(n)
        return rng.standard_normal((n, F + 1), dtype=np.float32), np.zeros(n)

    part = type("Part", (), {"__len__": lambda self: 5_000_000, "sample": staticmethod(sample)})()
    encoder = SimpleNamespace(numeric_inputs=lambda: list(range(1, F + 1)), code_columns=lambda: [])
    dataset = SimpleNamespace(encoder=encoder, n_inputs=F + 1, streamed=True, parts={"train": part})
    cfg = SimpleNamespace(seed=0, model=SimpleNamespace(numeric_embedding={"kind": "piecewise_linear", "bins": 8}))
    tracemalloc.start()
    try:
        plan = build.numeric_embedding(cfg, dataset)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert asked == [sample_rows(F)] and asked[0] * F * 8 <= (100 << 20) // 8
    assert plan.edges.shape == (F, 9)
    # one column at a time: the sample (float32) and a column's copies, not four times the sample
    sample_bytes = asked[0] * (F + 1) * 4
    assert peak < 1.5 * sample_bytes, (peak >> 20, sample_bytes >> 20)


def test_column_by_column_bins_equal_the_whole_matrix_ones():
    X = np.random.default_rng(4).lognormal(size=(5_000, 7)).astype(np.float32)
    X[:, 2] = np.round(X[:, 2])  # repeated quantiles: merged edges
    whole = quantile_edges(X, 6)
    np.testing.assert_array_equal(np.concatenate([quantile_edges(X[:, [j]], 6) for j in range(7)]), whole)


def test_a_workspace_reads_the_memory_budget_once_for_its_scoring_chunk(monkeypatch):
    # a training loop scores every epoch in one workspace (with early stopping on W1, reading the
    # budget from /proc each time cost more than the epoch): once, and once more for backward's arrays
    import nnctl.resources as resources

    reads = []
    monkeypatch.setattr(resources, "memory_budget", lambda: reads.append(1) or 1 << 30)
    network = wide_network()
    ws = network.workspace()
    network.forward(np.zeros((3, F), np.float32), ws=ws)
    first = scoring_chunk(ws)
    assert scoring_chunk(ws) == first and len(reads) == 1
    network.backward(np.zeros((3, 1), np.float32), ws=ws)
    scoring_chunk(ws), scoring_chunk(ws)
    assert len(reads) == 2
