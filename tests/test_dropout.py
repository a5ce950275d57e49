"""model.dropout: inverted dropout after each hidden block, its own seeded generator, checkpoints,
gradcheck with a fixed mask, trace, model.npz and export."""
import json
from pathlib import Path

import numpy as np
import pytest

from nnctl.commands.gradcheck import run_gradcheck
from nnctl.commands.trace import run_trace
from nnctl.commands.train import resume_run, train_config
from nnctl.config import load_config
from nnctl.data import load_dataset
from nnctl.nn.gradcheck import check_gradients
from nnctl.nn.layers import Dropout
from nnctl.nn.network import Network
from nnctl.training.build import build_network

from .cli_helpers import assert_clean_error, cli
from .conftest import DATASETS
from .test_resume import assert_same_weights, iris_config, metrics


def test_inverted_dropout_as_torch_defines_it():
    layer = Dropout(0.25, np.random.default_rng(7))
    x = np.random.default_rng(1).normal(size=(200, 50))
    buf = layer.new_buffers(x)
    out = layer.forward(x, training=True, buf=buf).copy()
    # torch.nn.Dropout: each value is zeroed with probability p, the rest scaled by 1 / (1 - p)
    u = np.random.default_rng(7).random((200, 50))
    expected = np.where(u >= 0.25, x / 0.75, 0.0)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-15)
    assert 0.22 < layer.record(buf)["mask_zeros"] < 0.28
    assert layer.record(buf)["mask_zeros"] == pytest.approx(np.mean(u < 0.25))
    delta = np.ones((200, 50))
    np.testing.assert_allclose(layer.backward(delta, buf), np.where(u >= 0.25, 1 / 0.75, 0.0))
    assert layer.forward(x, training=False) is x  # evaluation: the identity


def test_masks_are_drawn_into_the_same_buffer_every_batch():
    layer = Dropout(0.5, np.random.default_rng(0))
    buf = layer.new_buffers(np.ones((8, 4), np.float32))
    mask = buf.mask
    first = layer.forward(np.ones((8, 4), np.float32), True, buf).copy()
    second = layer.forward(np.ones((8, 4), np.float32), True, buf)
    assert buf.mask is mask and mask.dtype == np.float32
    assert not np.array_equal(first, second)  # a new mask each pass
    assert set(np.unique(second)) <= {0.0, 2.0}


@pytest.fixture
def config(iris_config):
    return iris_config("seed: 5\nmodel:\n  layers: [8, 6]\n  dropout: [0.5, 0.2]\n"
                       "training:\n  batch_size: 16\n  iterations: 6\n  log_every: 1\n")


def test_each_hidden_block_is_dense_activation_dropout(config):
    cfg = load_config(config)
    network = build_network(cfg, load_dataset(cfg))
    assert [layer.describe() for layer in network.layers] == \
        ["dense 8", "relu", "dropout 0.5", "dense 6", "relu", "dropout 0.2", "dense 3"]
    one = load_config(config, ["model.dropout=0.3"])
    assert [layer.describe() for layer in build_network(one, load_dataset(one)).layers][2::3] == \
        ["dropout 0.3", "dropout 0.3"]


def test_a_rate_of_zero_adds_nothing_and_changes_no_weight(config, tmp_path):
    cfg = load_config(config, ["model.dropout=[0.0, 0.4]"])
    network = build_network(cfg, load_dataset(cfg))
    assert [layer.type for layer in network.layers] == ["dense", "activation", "dense", "activation", "dropout", "dense"]
    plain = load_config(config, ["model.dropout=0"])
    without = build_network(plain, load_dataset(plain))
    assert [layer.type for layer in without.layers] == ["dense", "activation"] * 2 + ["dense"]
    # the weights are drawn as without dropout: the same seed gives the same initial model
    assert network.flat_params.tobytes() == without.flat_params.tobytes()


def test_the_same_config_trains_bit_identical_runs_and_dropout_changes_them(config, tmp_path):
    a = train_config(load_config(config), tmp_path / "a", "d", plot=False)
    b = train_config(load_config(config), tmp_path / "b", "d", plot=False)
    assert_same_weights(a.run, b.run)
    c = train_config(load_config(config, ["model.dropout=0"]), tmp_path / "c", "d", plot=False)
    with np.load(a.run / "model.npz") as x, np.load(c.run / "model.npz") as y:
        assert not np.array_equal(x["layers.0.W"], y["layers.0.W"])


def test_evaluation_ignores_dropout(config, tmp_path):
    run = train_config(load_config(config), tmp_path, "d", plot=False).run
    meta = json.loads(np.load(run / "model.npz")["meta"].tobytes())
    layers = meta["layers"]
    assert {"type": "dropout", "rate": 0.5} in layers and {"type": "dropout", "rate": 0.2} in layers
    from nnctl.runs.model import load_model

    model = load_model(run)
    plain = Network([layer for layer in model.network.layers if layer.type != "dropout"], model.network.loss_name)
    X = np.random.default_rng(0).normal(size=(20, 4)).astype(model.network.dtype)
    np.testing.assert_array_equal(model.network.predict_output(X), plain.predict_output(X))
    # a validation loss measured twice is the same number: no mask in evaluation
    assert metrics(run)["validation"]["loss"] == pytest.approx(metrics(run)["validation"]["loss"])


DROP = "model.dropout=0.3"


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_resuming_with_dropout_equals_training_straight(tmp_path, optimizer):
    config = iris_config(tmp_path, optimizer)
    straight = train_config(load_config(config, [DROP, "training.iterations=30"]), tmp_path / "a", "d", plot=False)
    first = train_config(load_config(config, [DROP, "training.iterations=12"]), tmp_path / "b", "d", plot=False)
    resumed = resume_run(first.run, ["training.iterations=30"], tmp_path / "b", plot=False)
    assert_same_weights(straight.run, resumed.run)
    assert metrics(straight.run)["validation"] == metrics(resumed.run)["validation"]


def test_an_interrupt_mid_epoch_with_dropout_resumes_exactly(tmp_path):
    config = iris_config(tmp_path, "adam")
    straight = train_config(load_config(config, [DROP, "training.iterations=20"]), tmp_path / "a", "d", plot=False)
    calls = {"n": 0}

    def stop_after_37_batches():
        calls["n"] += 1
        return calls["n"] >= 37

    cut = train_config(load_config(config, [DROP, "training.iterations=20"]), tmp_path / "b", "d", plot=False,
                       should_stop=stop_after_37_batches)
    assert cut.status == "interrupted"
    resumed = resume_run(cut.run, (), tmp_path / "b", plot=False)
    assert_same_weights(straight.run, resumed.run)


def test_a_checkpoint_without_the_dropout_generator_is_refused(config, tmp_path):
    from nnctl.training.checkpoint import load_checkpoint, save_checkpoint

    run = train_config(load_config(config, ["training.checkpoint_every=1"]), tmp_path, "d", plot=False).run
    checkpoint = load_checkpoint(run)
    meta = {k: v for k, v in checkpoint.meta.items() if k not in ("format", "format_version", "nnctl_version")}
    assert "dropout_rng" in meta
    meta["dropout_rng"] = {"bit_generator": "nonsense"}
    save_checkpoint(run / "checkpoint.npz", checkpoint.arrays, meta)
    assert_clean_error(cli("train", "--resume", run, "--set", "training.iterations=9"), "dropout_rng")


def test_gradcheck_fixes_the_mask_and_checks_the_gradient_through_it(config):
    results = run_gradcheck(config)
    assert results and all(r.passed(1e-6) for r in results)
    cfg = load_config(config, ["training.dtype=float64"])
    dataset = load_dataset(cfg)
    network = build_network(cfg, dataset)
    from nnctl.training.scoring import targets_for

    X, y = dataset.X_train[:12], targets_for(network, dataset.y_train[:12])
    ws = network.workspace()  # the check freezes its own workspace's masks, never the layers'
    assert all(r.passed(1e-6) for r in check_gradients(network, X, y))
    network.forward(X, True, ws=ws)
    mask = ws.buffers[[layer.type for layer in network.layers].index("dropout")].mask.copy()
    assert 0 < np.count_nonzero(mask) < mask.size
    # without the freeze, each forward pass draws another mask: the losses differ
    network.forward(X, True)
    one = network.loss_value(y)
    network.forward(X, True)
    assert network.loss_value(y) != one


def test_trace_shows_the_share_of_the_mask_that_is_zero(config):
    record = run_trace(config, rows=6)
    forward = record["steps"][0]["forward"]
    shares = [f["mask_zeros"] for f in forward if f["type"] == "dropout"]
    assert len(shares) == 2 and all(0.0 <= s <= 1.0 for s in shares)
    assert "mask_zeros" not in forward[0]
    out = cli("trace", config, "--rows", "6")
    assert out.exit_code == 0, out.stderr
    assert "the mask zeroes" in out.stdout


@pytest.mark.parametrize("value, fragment", [
    ("1.0", "model.dropout must be < 1"), ("-0.1", "model.dropout must be >= 0"),
    ("[0.1, 0.2, 0.3]", "lists 3 rates for 2 hidden layers"), ("high", "model.dropout must be a number"),
])
def test_bad_rates_are_clean_errors(config, tmp_path, value, fragment):
    assert_clean_error(cli("train", config, "--runs-dir", tmp_path, "--set", f"model.dropout={value}"), fragment)


def test_export_leaves_dropout_out(config, tmp_path):
    pytest.importorskip("onnxruntime")
    from .test_export import assert_matches_predict

    run = cli("train", config, "--runs-dir", tmp_path, "--quiet").stdout.strip()
    assert_matches_predict(run, DATASETS / "iris.csv")
    import onnx

    ops = {node.op_type for node in onnx.load(str(Path(run) / "model.onnx")).graph.node}
    assert "Dropout" not in ops
