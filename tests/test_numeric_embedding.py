"""model.numeric_embedding: periodic (PLR) and piecewise-linear (PLE) embeddings of numeric
inputs, as layers (the conformance check covers their gradients, saving and the member axis)
and through training, checkpoints, model.npz, predict, ONNX and streaming."""
import math

import numpy as np
import pandas as pd
import pytest

from nnctl.commands.train import resume_run, train_config
from nnctl.config import load_config
from nnctl.nn.gradcheck import check_gradients
from nnctl.nn.layers import Activation, Dense
from nnctl.nn.network import Network
from nnctl.nn.numeric import Periodic, PiecewiseLinear, ple_coefficients, quantile_edges
from nnctl.runs.model import load_model

from .cli_helpers import assert_clean_error, cli

PERIODIC = "model.numeric_embedding={kind: periodic, frequencies: 3, width: 4, sigma: 0.5}"
PLE = "model.numeric_embedding={kind: piecewise_linear, bins: 5}"


def _ple_by_hand(x: float, edges: np.ndarray, T: int) -> np.ndarray:
    """PLE of one value as the paper writes it, bin by bin (edges: the distinct ones)."""
    n = len(edges) - 1
    out = np.zeros(T)
    for t in range(n):
        e = (x - edges[t]) / (edges[t + 1] - edges[t])
        if n > 1:
            e = min(e, 1.0) if t == 0 else max(e, 0.0) if t == n - 1 else min(max(e, 0.0), 1.0)
        out[t if t < n - 1 else T - 1] = e
    return out


def test_piecewise_linear_is_the_paper_s_encoding_feature_by_feature():
    rng = np.random.default_rng(0)
    sample = np.column_stack([rng.normal(size=200), rng.integers(0, 3, 200), np.full(200, 2.0),
                              rng.exponential(size=200)])
    edges = quantile_edges(sample, 4)
    assert edges.shape == (4, 5) and np.all(np.diff(edges, axis=1) >= 0)
    np.testing.assert_allclose(edges[0], np.quantile(sample[:, 0], np.linspace(0, 1, 5)))
    assert edges[1].tolist() == [0.0, 1.0, 2.0, 2.0, 2.0]  # repeated quantiles merged, then filled
    layer = PiecewiseLinear(6, [1, 2, 4, 5], edges)
    x = rng.normal(size=(7, 6)) * 2
    x[0, [1, 2, 4, 5]] = [-5.0, 0.5, 9.0, 30.0]  # beyond the edges
    out = layer.forward(x)
    np.testing.assert_array_equal(out[:, :2], x[:, [0, 3]])  # the others pass through, first
    for f, column in enumerate([1, 2, 4, 5]):
        distinct = np.unique(edges[f])
        for r in range(len(x)):
            expected = _ple_by_hand(x[r, column], distinct, 4) if len(distinct) > 1 else np.zeros(4)
            np.testing.assert_allclose(out[r, 2 + 4 * f:6 + 4 * f], expected, atol=1e-12)


def test_ple_coefficients_of_a_single_bin_are_unclipped():
    scale, shift, lo, hi = ple_coefficients(np.array([[0.0, 2.0, 2.0]]))
    assert scale.tolist() == [[0.0, 0.5]] and shift.tolist() == [[0.0, 0.0]]
    assert lo[0, 1] == -np.inf and hi[0, 1] == np.inf and lo[0, 0] == hi[0, 0] == 0.0


def test_periodic_is_cos_sin_then_each_feature_s_linear_layer_and_relu():
    rng = np.random.default_rng(1)
    c, W, b = rng.normal(size=(2, 3)), rng.normal(size=(2, 6, 4)), rng.normal(size=(2, 4))
    layer = Periodic(3, [2, 0], c, W, b)
    x = rng.normal(size=(5, 3))
    out = layer.forward(x)
    assert out.shape == (5, 1 + 2 * 4) and layer.units(3) == 9
    np.testing.assert_array_equal(out[:, 0], x[:, 1])
    for f, column in enumerate([2, 0]):
        angle = 2 * math.pi * np.outer(x[:, column], c[f])
        v = np.concatenate([np.cos(angle), np.sin(angle)], axis=1)
        np.testing.assert_allclose(out[:, 1 + 4 * f:5 + 4 * f], np.maximum(v @ W[f] + b[f], 0), rtol=1e-12)


def test_fresh_periodic_frequencies_are_truncated_and_members_are_their_seeds():
    rngs = [np.random.default_rng(s) for s in range(3)]
    stacked = Periodic.fresh(4, [0, 1, 3], 8, 5, 0.1, rngs, np.float64)
    alone = Periodic.fresh(4, [0, 1, 3], 8, 5, 0.1, np.random.default_rng(1), np.float64)
    assert stacked.members == 3 and stacked.params["W"].shape == (3, 3, 16, 5)
    assert np.abs(stacked.c).max() <= 0.3 and stacked.decay == {"frequencies": False, "W": True, "b": False}
    for name in ("frequencies", "W", "b"):
        np.testing.assert_array_equal(stacked.params[name][1], alone.params[name])


@pytest.mark.parametrize("make", ["periodic", "piecewise_linear"])
def test_float64_network_gradients_with_three_members(make):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(9, 5))
    X[:, 4] = rng.integers(0, 2, 9)  # a one-hot-like input passed through

    def member(seed):
        r = np.random.default_rng(seed)
        first = (Periodic.fresh(5, [0, 1, 2, 3], 3, 2, 0.4, r, np.float64) if make == "periodic" else
                 PiecewiseLinear(5, [0, 1, 2, 3], quantile_edges(rng.normal(size=(30, 4)), 3)))
        width = first.units(5)
        return Network([first, Dense(r.normal(size=(width, 6)), r.normal(size=6)), Activation("tanh"),
                        Dense(r.normal(size=(6, 3)), r.normal(size=3))], "cross_entropy", 5)

    for network in (member(0), Network.stack([member(s) for s in range(3)])):
        y = np.eye(3)[rng.integers(0, 3, 9)]
        checks = check_gradients(network, X, y, max_entries=None)
        assert checks and all(c.passed(1e-6) for c in checks), [(c.name, c.max_rel) for c in checks]


@pytest.fixture
def table(tmp_path):
    """Numbers (one heavy-tailed, one of few values), a one-hot and an embedded categorical."""
    rng = np.random.default_rng(0)
    n = 90
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.exponential(size=n) ** 2,
                          "color": rng.choice(["red", "green", "blue"], n), "c": rng.integers(0, 3, n),
                          "shop": rng.choice(list("pqrstu"), n)})
    frame["y"] = np.where(frame["a"] + (frame["color"] == "red") > 0.3, "yes", "no")
    frame.to_csv(tmp_path / "t.csv", index=False)
    (tmp_path / "t.yaml").write_text("seed: 4\ndata:\n  path: t.csv\n  target: y\n  categorical: [color, shop]\n"
                                     "  embedding: {shop: 2}\nmodel:\n  layers: [8]\ntraining:\n  optimizer: adam\n"
                                     "  batch_size: 16\n  iterations: 12\n  log_every: 1\n")
    return tmp_path


def _arrays(run) -> dict:
    with np.load(run / "model.npz", allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files if k != "meta"}


@pytest.mark.parametrize("setting", [PERIODIC, PLE])
def test_training_resumes_exactly_and_the_model_keeps_its_embedding(table, setting):
    config = table / "t.yaml"
    straight = train_config(load_config(config, [setting, "training.iterations=12"]), table / "a", "t", plot=False)
    first = train_config(load_config(config, [setting, "training.iterations=5"]), table / "b", "t", plot=False)
    resumed = resume_run(first.run, ["training.iterations=12"], table / "b", plot=False)
    a, b = _arrays(straight.run), _arrays(resumed.run)
    assert sorted(a) == sorted(b) and all(a[k].tobytes() == b[k].tobytes() for k in a)
    model = load_model(straight.run)
    layers = model.network.layers
    assert [layer.type for layer in layers[:2]] == ["embedding", setting.split("kind: ")[1].split(",")[0]]
    numeric = layers[1]
    # after the embedding: a, b, color=..., c, then shop's code column went last
    assert numeric.columns.tolist() == [0, 1, 5]
    if numeric.type == "periodic":
        assert a["layers.1.frequencies"].shape == (3, 3) and a["layers.1.W"].shape == (3, 6, 4)
    else:
        edges = a["layers.1.edges"]
        assert edges.shape == (3, 6) and edges[2].tolist() == sorted(edges[2].tolist())
        assert len(np.unique(edges[2])) < 6  # column c has three values: fewer bins than asked
    # diagnostics: a row per trainable layer (the periodic embedding is one; PLE trains nothing)
    trained = pd.read_csv(straight.run / "diagnostics.csv")["layer"].nunique()
    assert trained == (4 if numeric.type == "periodic" else 3)
    frame = pd.read_csv(table / "t.csv")
    np.testing.assert_allclose(model.predict_proba(frame.drop(columns="y")).sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("setting", [PERIODIC, PLE])
@pytest.mark.parametrize("members", [1, 3])
def test_onnx_export_matches_predict(table, setting, members):
    pytest.importorskip("onnxruntime")
    from .test_export import assert_matches_predict

    result = cli("train", table / "t.yaml", "--runs-dir", table / "runs", "--quiet", "--set", setting,
                 "--set", f"model.ensemble={members}")
    assert result.exit_code == 0, result.stderr
    assert_matches_predict(result.stdout.strip(), table / "t.csv")


@pytest.mark.parametrize("setting", [PERIODIC, PLE])
def test_gradcheck_and_trace_commands(table, setting):
    result = cli("gradcheck", table / "t.yaml", "--set", setting)
    assert result.exit_code == 0, result.stderr
    assert "layers.1." in result.stdout or setting == PLE
    trace = cli("trace", table / "t.yaml", "--set", setting, "--steps", "1")
    assert trace.exit_code == 0, trace.stderr
    assert ("periodic 3×3→4" if setting == PERIODIC else "piecewise linear 3×5") in trace.stdout


def test_streaming_takes_the_bins_from_a_sample_of_the_training_shards(table):
    setting = [PLE, "data.streaming=true", "data.embedding={}"]
    streamed = train_config(load_config(table / "t.yaml", setting), table / "s", "t", plot=False)
    whole = train_config(load_config(table / "t.yaml", setting[:1] + setting[2:] + ["data.validation_split=0.2"]),
                         table / "w", "t", plot=False)
    edges = _arrays(streamed.run)["layers.0.edges"]
    assert edges.shape == (3, 6) and np.isfinite(edges).all()
    assert _arrays(whole.run)["layers.0.edges"].shape == edges.shape


@pytest.mark.parametrize("value, fragment", [
    ("{kind: fourier}", "must be one of none, periodic, piecewise_linear"),
    ("{kind: periodic, bins: 4}", "bins"),
    ("{kind: piecewise_linear, bins: 0}", "must be >= 1"),
    ("{kind: periodic, sigma: 0}", "must be > 0"),
    ("{width: 4}", "kind"),
])
def test_bad_settings_are_one_clear_error(table, value, fragment):
    result = cli("validate", table / "t.yaml", "--set", f"model.numeric_embedding={value}")
    assert_clean_error(result, fragment)


def test_short_forms_resolve_with_the_defaults(table):
    cfg = load_config(table / "t.yaml", ["model.numeric_embedding=periodic", "model.numeric_embedding.width=3"])
    assert cfg.model.numeric_embedding == {"kind": "periodic", "frequencies": 16, "width": 3, "sigma": 0.1}
    assert load_config(table / "t.yaml", []).model.numeric_embedding == "none"
    assert load_config(table / "t.yaml", ["model.numeric_embedding=null"]).model.numeric_embedding == "none"


def test_the_memory_check_counts_the_embedding_s_parameters_and_rows(table, monkeypatch):
    from nnctl import resources
    from nnctl.data import load_dataset
    from nnctl.training.build import build_network

    asked = []
    monkeypatch.setattr(resources, "require_memory", lambda needed, *rest: asked.append(needed))
    cfg = load_config(table / "t.yaml", ["data.embedding={}"])
    dataset = load_dataset(cfg)
    asked.clear()
    build_network(cfg, dataset)
    build_network(load_config(table / "t.yaml", ["data.embedding={}", PERIODIC]), dataset)
    # 3 numeric inputs: 3·(3 + 2·3·4 + 4) parameters (six copies), and per row the output, v,
    # h and their deltas, over the 72 training rows; the first dense layer grows by 3·3 rows
    params, per_row = 3 * (3 + 24 + 4) + 3 * 3 * 8, 3 * 3 * 4 + 2 * 3 * 2 * 3
    assert len(asked) == 2 and asked[1] - asked[0] == (params * 6 + per_row * len(dataset.X_train)) * 4
