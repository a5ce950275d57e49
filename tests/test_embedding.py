"""data.embedding: learned tables for categorical columns, against torch.nn.Embedding (values
committed in tests/data/torch_embedding.npz by tests/data/make_torch_embedding.py, and live when
torch is installed), against finite differences, in training, on disk, with unseen categories,
warm start and in ONNX."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nnctl.data.encoding import AUTO_EMBEDDING_MIN, auto_width, embedding_widths
from nnctl.nn.embedding import Embedding
from nnctl.nn.gradcheck import check_gradients
from nnctl.nn.layers import Activation, Dense
from nnctl.nn.network import Network
from nnctl.runs.model import load_model

from .cli_helpers import assert_clean_error, cli, train_run
from .test_layers import input_delta_check

DATA = Path(__file__).parent / "data"
TORCH = np.load(DATA / "torch_embedding.npz")


def run_layer(values: dict) -> dict:
    """The nnctl layer's forward and backward on a case (codes in columns 1 and 3), float64."""
    x = values["x"]
    layer = Embedding(4, [1, 3], [values["table_0"].copy(), values["table_1"].copy()])
    buf = layer.new_buffers(x)
    out = layer.forward(x, True, buf).copy()
    layer.backward(values["delta"].copy(), buf)
    return {"out": out, "dtable_0": layer.grads["table_0"].copy(), "dtable_1": layer.grads["table_1"].copy()}


def test_forward_and_scatter_add_gradient_equal_pytorchs():
    ours = run_layer(TORCH)
    for name in ("out", "dtable_0", "dtable_1"):
        np.testing.assert_allclose(ours[name], TORCH[name], rtol=0, atol=1e-6, err_msg=name)
    # the case repeats codes: a repeated code's row gets both rows' deltas
    assert np.count_nonzero(TORCH["x"][:, 1] == 2) == 3


def test_live_against_pytorch():
    pytest.importorskip("torch")
    spec = importlib.util.spec_from_file_location("make_torch_embedding", DATA / "make_torch_embedding.py")
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    values = make.case()
    ours = run_layer(values)
    for name in ("out", "dtable_0", "dtable_1"):
        np.testing.assert_allclose(ours[name], values[name], rtol=0, atol=1e-6)


def test_gradients_against_finite_differences():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(12, 3))
    x[:, 0] = rng.integers(0, 5, 12)  # codes 0..4 of 4 categories: 4 is the unseen-category row
    layer = Embedding.fresh(3, [0], [(4, 3)], rng, np.float64)
    layer.params["table_0"][4] = rng.normal(size=3)  # a non-zero unseen row, so its gradient shows
    net = Network([layer, Dense(rng.normal(size=(5, 4)), np.zeros(4)), Activation("tanh"),
                   Dense(rng.normal(size=(4, 2)), np.zeros(2))], "mse", 3)
    y = rng.normal(size=(12, 2))
    checks = check_gradients(net, x, y, max_entries=None)
    assert [c.name for c in checks][0] == "layers.0.table_0"
    assert all(c.max_rel < 1e-6 for c in checks), checks
    # the numeric inputs' delta passes through; the codes' is 0 (rounded codes do not move)
    assert input_delta_check(Embedding(3, [0], [rng.normal(size=(5, 3))]), x) < 1e-6


def test_fresh_tables_start_small_against_the_inputs_beside_them():
    """A category's first row must not outweigh the one-hot row it replaces (norm 1) or a
    standardized input beside it (std 1). Rows of N(0, 1) at fastai's width had norm
    sqrt(width) (7 at 500 categories): a random offset per category that Adam's steps of about
    1e-3 never outgrew, and embedding: auto lost to one-hot (docs/quality.md)."""
    rng = np.random.default_rng(0)
    width = auto_width(500)
    layer = Embedding.fresh(2, [0], [(500, width)], rng, np.float32)
    x = np.column_stack([rng.integers(0, 500, 4000), rng.standard_normal(4000)]).astype(np.float32)
    out = layer.forward(x)
    numeric, rows = out[:, 0], out[:, 1:]
    assert rows.shape[1] == width == 52
    assert np.linalg.norm(rows, axis=1).max() < 0.2  # a one-hot row's norm is 1
    assert rows.std() < 0.02 * numeric.std()
    # members draw their own small tables
    members = Embedding.fresh(2, [0], [(500, width)], [np.random.default_rng(i) for i in range(3)], np.float32)
    assert members.tables[0].shape == (3, 501, width) and float(np.abs(members.tables[0]).max()) < 0.1


def test_auto_width_is_fastais_rule_and_auto_embeds_only_wide_columns():
    assert [auto_width(n) for n in (2, 11, 30, 2000, 10 ** 7)] == [2, 6, 11, 113, 600]
    categories = {"city": [f"c{i}" for i in range(AUTO_EMBEDDING_MIN + 1)], "color": list("rgb")}
    assert embedding_widths("auto", categories) == {"city": 6}
    assert embedding_widths({"color": 4}, categories) == {"color": 4}


@pytest.fixture
def table(tmp_path):
    """A table whose label depends on a 30-category column and a number; 'color' stays one-hot."""
    rng = np.random.default_rng(0)
    n = 300
    city, x = rng.integers(0, 30, n), rng.normal(size=n)
    frame = pd.DataFrame({"x": x, "city": [f"c{c}" for c in city], "color": rng.choice(list("rgb"), n),
                          "y": np.where((city % 3 == 0) ^ (x > 0), "yes", "no")})
    frame.to_csv(tmp_path / "d.csv", index=False)
    unseen = frame.head(20).copy()
    unseen.loc[::2, "city"] = "nowhere"
    unseen.to_csv(tmp_path / "unseen.csv", index=False)
    return tmp_path


def config(folder, extra="", embedding="auto", unknown="ignore"):
    path = folder / "c.yaml"
    path.write_text(f"data: {{path: d.csv, target: y, categorical: auto, embedding: {embedding}, "
                    f"unknown_category: {unknown}}}\nmodel: {{layers: [8]}}\n"
                    f"training: {{iterations: 25, optimizer: adam, learning_rate: 0.03}}\n{extra}")
    return path


def test_training_saves_the_layer_and_its_table(table):
    run = train_run(config(table), table / "runs")
    model = load_model(run)
    layer = model.network.layers[0]
    assert isinstance(layer, Embedding) and layer.categories == [30] and layer.widths == [auto_width(30)]
    assert model.meta["layers"][0] == {"type": "embedding", "inputs": 5, "columns": [1], "widths": [11],
                                       "categories": [30]}
    assert model.meta["inputs"] == ["x", "city", "color=b", "color=g", "color=r"]
    assert model.meta["embedding"] == {"city": 11}
    assert model.meta["scaler"]["offset"][1] == 0.0 and model.meta["scaler"]["scale"][1] == 1.0
    assert np.load(run / "model.npz")["layers.0.table_0"].shape == (31, 11)
    assert model.network.layers[1].W.shape == (4 + 11, 8)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["validation"]["accuracy"] > 0.8, metrics["validation"]  # the category matters and is learned
    result = cli("evaluate", run, table / "d.csv")
    assert result.exit_code == 0, result.stderr


def test_unseen_category_uses_the_last_row_or_is_refused(table):
    run = train_run(config(table), table / "runs")
    model = load_model(run)
    np.testing.assert_array_equal(model.network.layers[0].tables[0][30], 0.0)  # never trained: still zero
    X = model.encoder.transform(pd.read_csv(table / "unseen.csv"), np.float32)
    assert X[0, 1] == 30 and X[1, 1] == float(model.encoder.categories["city"].index(
        pd.read_csv(table / "unseen.csv")["city"][1]))
    assert cli("predict", run, table / "unseen.csv").exit_code == 0
    strict = train_run(config(table, unknown="error"), table / "runs2")
    assert_clean_error(cli("predict", strict, table / "unseen.csv"), "city", "nowhere", "training never saw")


def test_l2_covers_the_tables_unless_told_not_to(table):
    from nnctl.config import load_config
    from nnctl.data import load_dataset
    from nnctl.training.build import build_network

    for setting, expected in (("true", 1.0), ("false", 0.0)):
        cfg = load_config(config(table), [f"training.l2_embeddings={setting}", "training.l2=0.01"])
        net = build_network(cfg, load_dataset(cfg))
        tables = net.layers[0].params["table_0"].size
        assert set(net.decay_mask[:tables]) == {expected}
        assert net.decay_mask[tables:tables + net.layers[1].W.size].all()  # the dense W still decays


def test_config_errors_name_the_column(table):
    assert_clean_error(cli("train", config(table, embedding="{x: 4}"), "--runs-dir", table / "r"),
                       "data.embedding names 'x', which is not a categorical column")
    assert_clean_error(cli("train", config(table, embedding="{town: 4}"), "--runs-dir", table / "r"), "'town'")
    assert_clean_error(cli("train", config(table, embedding="{city: 0}"), "--runs-dir", table / "r"),
                       "data.embedding.city")


def test_warm_start_from_an_embedding_model(table):
    run = train_run(config(table), table / "runs")
    again = train_run(config(table), table / "runs", f"model.init_from={run}", "training.iterations=1",
                  "training.learning_rate=1e-9")
    np.testing.assert_allclose(np.load(again / "model.npz")["layers.0.table_0"],
                               np.load(run / "model.npz")["layers.0.table_0"], atol=1e-5)
    result = cli("train", config(table, embedding="{}"), "--runs-dir", table / "runs", "--set",
                 f"model.init_from={run}")
    assert_clean_error(result, "model.init_from")


def test_wide_one_hot_warning_suggests_an_embedding(tmp_path):
    from nnctl.data.columns import suspicious_columns

    frame = pd.DataFrame({"zip": [f"z{i % 150}" for i in range(600)]})
    [(kind, text)] = suspicious_columns(frame, ["zip"], ["zip"])
    assert kind == "warning" and f"data.embedding: {{zip: {auto_width(150)}}}" in text
    assert suspicious_columns(frame, ["zip"], ["zip"], "auto") == []
    assert suspicious_columns(frame, ["zip"], ["zip"], {"zip": 8}) == []


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_export_gathers_in_the_graph_and_equals_predict(table, dtype):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from .test_export import assert_matches_predict, export, run_onnx

    run = train_run(config(table), table / "runs", f"training.dtype={dtype}")
    path = export(run)
    graph = onnx.load(path).graph
    assert "Gather" in {n.op_type for n in graph.node} and "OneHotEncoder" in {n.op_type for n in graph.node}
    assert_matches_predict(run, table / "d.csv", path)
    assert_matches_predict(run, table / "unseen.csv", path)  # unseen categories: the table's last row
    strict = train_run(config(table, unknown="error"), table / "runs2", f"training.dtype={dtype}")
    with pytest.raises(Exception):  # as predict, the graph refuses a category training never saw
        run_onnx(export(strict), pd.read_csv(table / "unseen.csv"))
    assert_matches_predict(strict, table / "d.csv")


def test_set_and_resume(table):
    result = cli("validate", config(table, embedding="{}"), "--set", "data.embedding={city: 4}")
    assert result.exit_code == 0, result.stderr
    straight = train_run(config(table), table / "a", "training.iterations=8")
    first = train_run(config(table), table / "b", "training.iterations=4", "training.checkpoint_every=2")
    result = cli("train", "--resume", first, "--set", "training.iterations=8", "--runs-dir", table / "c", "--quiet")
    assert result.exit_code == 0, result.stderr
    resumed = Path(result.stdout.strip().splitlines()[-1])
    a, b = np.load(straight / "model.npz"), np.load(resumed / "model.npz")
    for name in [n for n in a.files if n != "meta"]:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_missing_mean_fills_an_embedded_column_with_its_mode_in_predict_and_export(table):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from .test_export import assert_matches_predict

    frame = pd.read_csv(table / "d.csv")
    frame.loc[::7, "city"] = None
    frame.to_csv(table / "d.csv", index=False)
    run = train_run(config(table), table / "runs", "data.missing=mean")
    model = load_model(run)
    mode = model.meta["fill"]["city"]
    X = model.encoder.transform(frame.head(8), np.float32)
    assert X[0, 1] == model.encoder.categories["city"].index(mode)
    assert_matches_predict(run, table / "d.csv")
