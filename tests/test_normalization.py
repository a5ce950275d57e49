"""model.normalization: batch norm and layer norm against PyTorch's BatchNorm1d and LayerNorm
(values committed in tests/data/torch_norm.npz by tests/data/make_torch_norm.py, and live when
torch is installed), against finite differences, in the network, on disk, in ONNX and in trace."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from nnctl.nn.gradcheck import check_gradients
from nnctl.nn.layers import Activation, Dense
from nnctl.nn.network import Network
from nnctl.nn.normalization import BatchNorm, LayerNorm
from nnctl.runs.model import load_model

from .cli_helpers import assert_clean_error, cli
from .conftest import CONFIGS, DATASETS, loss_targets

DATA = Path(__file__).parent / "data"
TORCH = np.load(DATA / "torch_norm.npz")
LAYER_TYPES = {"batch": BatchNorm, "layer": LayerNorm}
CASES = [(kind, mode) for kind in LAYER_TYPES for mode in ("train", "eval")]


def run_layer(kind: str, training: bool, values: dict) -> dict:
    """The nnctl layer's forward and backward on a case's inputs, in float64, the layer on its
    own with buffers of its own."""
    x = values["x"]
    arrays = [values["gamma"].copy(), values["beta"].copy()]
    if kind == "batch":
        arrays += [values["running_mean"].copy(), values["running_var"].copy()]
    layer = LAYER_TYPES[kind](*arrays)
    buf = layer.new_buffers(x)
    out = layer.forward(x, training, buf).copy()
    dx = layer.backward(values["delta"].copy(), buf).copy()
    result = {"out": out, "dx": dx, "dgamma": layer.dgamma.copy(), "dbeta": layer.dbeta.copy()}
    if kind == "batch":
        result["running_mean_after"] = layer.state["running_mean"]
        result["running_var_after"] = layer.state["running_var"]
    return result


def committed(kind: str, mode: str) -> dict:
    prefix = f"{kind}_{mode}_"
    return {k[len(prefix):]: TORCH[k] for k in TORCH.files if k.startswith(prefix)}


@pytest.mark.parametrize("kind, mode", CASES)
def test_forward_and_every_gradient_equal_pytorchs(kind, mode):
    torch_values = committed(kind, mode)
    ours = run_layer(kind, mode == "train", torch_values)
    names = ["out", "dx", "dgamma", "dbeta"] + (["running_mean_after", "running_var_after"] if kind == "batch" else [])
    for name in names:
        np.testing.assert_allclose(ours[name], torch_values[name], rtol=0, atol=1e-6, err_msg=f"{kind} {mode} {name}")
    if kind == "batch" and mode == "eval":  # evaluation leaves the running statistics alone
        np.testing.assert_array_equal(ours["running_var_after"], torch_values["running_var"])


@pytest.mark.parametrize("kind, mode", CASES)
def test_live_against_pytorch(kind, mode):
    pytest.importorskip("torch")
    spec = importlib.util.spec_from_file_location("make_torch_norm", DATA / "make_torch_norm.py")
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    for seed in (11, 12, 13):
        torch_values = make.case(kind, mode == "train", seed)
        ours = run_layer(kind, mode == "train", torch_values)
        for name in ("out", "dx", "dgamma", "dbeta"):
            np.testing.assert_allclose(ours[name], torch_values[name], rtol=0, atol=1e-6)


def test_a_batch_of_one_row_is_refused_in_training_as_pytorch_does():
    layer = BatchNorm(np.ones(5), np.zeros(5))
    net = Network([Dense(np.eye(5), np.zeros(5)), layer], "mse")
    with pytest.raises(ValueError) as raised:
        net.forward(np.ones((1, 5)), training=True)
    assert str(TORCH["one_row_error"]).startswith(str(raised.value))
    # evaluation uses the running statistics: one row is fine; layer norm needs no batch at all
    np.testing.assert_allclose(net.forward(np.full((1, 5), 2.0)), [[2 / np.sqrt(1 + 1e-5)] * 5])
    ln = Network([Dense(np.eye(5), np.zeros(5)), LayerNorm(np.ones(5), np.zeros(5))], "mse")
    assert ln.forward(np.arange(5.0)[None], training=True).shape == (1, 5)


def test_a_last_batch_of_one_row_is_never_cut_so_batch_norm_trains_on_any_rows(tmp_path):
    # 120 rows in batches of 7 would leave one row last: the last two batches share 8 (4 + 4)
    from nnctl.data.source import batch_bounds

    assert batch_bounds(120, 7)[-3:] == [112, 116, 120]
    result = cli("train", CONFIGS / "iris.yaml", "--runs-dir", tmp_path, "--quiet", "--set",
                 "model.normalization=batch", "--set", "training.batch_size=7", "--set", "training.iterations=2")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("batch_size, fragment, hint", [
    (1, "batch_size 1", "e.g. 2"),
])
def test_training_refuses_batches_of_one_row_up_front(tmp_path, batch_size, fragment, hint):
    def train(normalization):
        return cli("train", CONFIGS / "iris.yaml", "--runs-dir", tmp_path, "--quiet", "--set",
                   f"model.normalization={normalization}", "--set", f"training.batch_size={batch_size}",
                   "--set", "training.iterations=2")

    result = train("batch")
    assert_clean_error(result, "a batch of one row", fragment, "training.batch_size", hint)
    assert not list(tmp_path.iterdir())
    assert train("layer").exit_code == 0  # layer norm has no such limit
    checked = cli("validate", CONFIGS / "iris.yaml", "--set", "model.normalization=batch", "--set",
                  f"training.batch_size={batch_size}")
    assert_clean_error(checked, "a batch of one row", hint)


def test_gradcheck_refuses_one_row_with_batch_norm():
    result = cli("gradcheck", CONFIGS / "iris.yaml", "--set", "model.normalization=batch", "--rows", "1")
    assert_clean_error(result, "a batch of one row", "--rows")


def small_network(kind: str, seed: int = 0) -> Network:
    """4 → 6 → norm → tanh → 5 → norm → relu → 3, float64, with γ and β away from 1 and 0."""
    rng = np.random.default_rng(seed)
    sizes = [4, 6, 5, 3]
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(Dense(rng.normal(size=(a, b)), rng.normal(size=b)))
        if i < 2:
            norm = LAYER_TYPES[kind](rng.normal(1.0, 0.3, b), rng.normal(0.0, 0.3, b))
            if kind == "batch":
                norm.state = {"running_mean": rng.normal(size=b), "running_var": rng.uniform(0.5, 2, b)}
            layers += [norm, Activation(["tanh", "relu"][i])]
    return Network(layers, "cross_entropy")


@pytest.mark.parametrize("kind", LAYER_TYPES)
@pytest.mark.parametrize("training", [True, False])
def test_every_gradient_against_finite_differences(kind, training):
    network = small_network(kind)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(9, 4))
    checks = check_gradients(network, X, loss_targets("cross_entropy", rng, 9, 3), max_entries=None,
                             training=training)
    assert {c.name for c in checks} >= {"layers.1.gamma", "layers.1.beta", "layers.4.gamma", "layers.4.beta"}
    for c in checks:
        assert c.passed(1e-6), (c.name, c.max_rel)


# the input delta against finite differences, in training and evaluation: tests/test_layer_conformance.py


def test_the_network_the_config_builds(tmp_path):
    from nnctl.config import load_config
    from nnctl.data import load_dataset
    from nnctl.training.build import build_network

    def build(normalization):
        cfg = load_config(CONFIGS / "iris.yaml", [f"model.normalization={normalization}"])
        return build_network(cfg, load_dataset(cfg))

    plain, batch, layer = build("none"), build("batch"), build("layer")
    assert [l.describe() for l in plain.layers] == ["dense 16", "relu", "dense 16", "relu", "dense 3"]
    assert [l.describe() for l in batch.layers] == ["dense 16", "batch norm", "relu", "dense 16", "batch norm",
                                                    "relu", "dense 3"]
    assert [l.type for l in layer.layers][1::3] == ["layer_norm", "layer_norm"]
    # the same initial weights; γ = 1, β = 0, running mean 0 and variance 1 as PyTorch starts
    np.testing.assert_array_equal(plain.layers[0].W, batch.layers[0].W)
    np.testing.assert_array_equal(plain.layers[4].W, batch.layers[6].W)
    np.testing.assert_array_equal(batch.layers[1].gamma, np.ones(16, np.float32))
    np.testing.assert_array_equal(batch.layers[1].beta, np.zeros(16, np.float32))
    assert batch.layers[1].state["running_var"].dtype == np.float32
    # γ and β are trained but not decayed; running statistics are not params at all
    decay = dict(zip([n for n, _, _ in batch.named_params()], np.split(batch.decay_mask, np.cumsum(
        [a.size for _, a, _ in batch.named_params()])[:-1])))
    assert not decay["layers.1.gamma"].any() and not decay["layers.1.beta"].any() and decay["layers.0.W"].all()
    assert batch.n_params() == plain.n_params() + 4 * 16
    assert not any(np.shares_memory(a, batch.flat_params) for _, a in batch.named_state())


def test_running_statistics_are_saved_loaded_checkpointed_and_restored(tmp_path):
    result = cli("train", CONFIGS / "iris.yaml", "--runs-dir", tmp_path, "--quiet", "--set", "model.normalization=batch",
                 "--set", "training.iterations=12", "--set", "training.l2=0.1", "--set", "training.checkpoint_every=5")
    assert result.exit_code == 0, result.stderr
    run = Path(result.stdout.strip())
    saved = np.load(run / "model.npz")
    mean, var = saved["layers.1.running_mean"], saved["layers.1.running_var"]
    assert mean.shape == (16,) and np.abs(mean).max() > 0.01 and not np.allclose(var, 1.0)
    model = load_model(run)
    np.testing.assert_array_equal(model.network.layers[1].state["running_var"], var)
    checkpoint = np.load(run / "checkpoint.npz")
    assert "layers.4.running_mean" in checkpoint.files
    # early stopping's best weights bring back the running statistics of that epoch too
    network = model.network
    best = network.snapshot()
    network.forward(np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32), training=True)
    assert not np.array_equal(network.layers[1].state["running_mean"], mean)
    network.restore(best)
    np.testing.assert_array_equal(network.layers[1].state["running_mean"], mean)


def test_trace_writes_out_each_rule():
    for kind, words in (("batch", "batch norm"), ("layer", "layer norm")):
        result = cli("trace", CONFIGS / "iris.yaml", "--set", f"model.normalization={kind}", "--set",
                     "model.layers=[3]", "--rows", "3")
        assert result.exit_code == 0, result.stderr
        text = " ".join(result.stdout.split())
        assert f"layer 1 ({words}): out1 = γ ⊙ x̂ + β" in text
        assert "∂L/∂γ = Σ_rows delta1 ⊙ x̂" in text


@pytest.mark.parametrize("kind", ["batch", "layer"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_export_equals_predict(tmp_path, kind, dtype):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from .test_export import assert_matches_predict, export, train

    run = train(CONFIGS / "iris.yaml", tmp_path, f"model.normalization={kind}", f"training.dtype={dtype}",
                "training.learning_rate=0.05")
    operator = {"batch": "BatchNormalization", "layer": "LayerNormalization"}[kind]
    path = export(run)
    assert operator in {n.op_type for n in onnx.load(path).graph.node}
    assert_matches_predict(run, DATASETS / "iris.csv", path)
    if kind == "layer":  # before opset 17 layer norm is written with its parts
        path13 = export(run, "--opset", "13", "--output", tmp_path / "m13.onnx")
        assert operator not in {n.op_type for n in onnx.load(path13).graph.node}
        assert_matches_predict(run, DATASETS / "iris.csv", path13)


def test_resume_continues_bit_identically(tmp_path):
    def train(*args):
        result = cli("train", *args, "--runs-dir", tmp_path, "--quiet")
        assert result.exit_code == 0, result.stderr
        return Path(result.stdout.strip().splitlines()[-1])

    norm = ["--set", "model.normalization=batch"]
    straight = train(CONFIGS / "iris.yaml", *norm, "--set", "training.iterations=12")
    first = train(CONFIGS / "iris.yaml", *norm, "--set", "training.iterations=6", "--set", "training.checkpoint_every=3")
    resumed = train("--resume", first, "--set", "training.iterations=12")
    a, b = np.load(straight / "model.npz"), np.load(resumed / "model.npz")
    for name in [n for n in a.files if n != "meta"]:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
