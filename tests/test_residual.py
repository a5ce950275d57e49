"""model.residual: a composite layer (the residual block, x + f(x)) through everything that walks
a network: the config's network, gradcheck (with members too), `nnctl gradcheck` and trace,
diagnostics, model.npz (formats 2 and 3), checkpoints and exact resume, ONNX export, workspaces
used at once, and PyTorch's steps from the same weights. The layer contract itself (gradients,
save/load, members, workspaces) is checked by tests/test_layer_conformance.py."""
import json
import threading
from pathlib import Path

import numpy as np
import pytest

from nnctl.config import load_config
from nnctl.data import load_dataset
from nnctl.nn.composite import Residual
from nnctl.nn.gradcheck import check_gradients
from nnctl.nn.layers import Activation, Dense, Dropout
from nnctl.nn.network import Network
from nnctl.nn.normalization import BatchNorm, LayerNorm
from nnctl.runs.model import load_model
from nnctl.training.build import build_network

from .cli_helpers import assert_clean_error, cli
from .conftest import CONFIGS, DATASETS, loss_targets

IRIS = CONFIGS / "iris.yaml"
# iris has 4 inputs: blocks 4 → 4 (residual), 4 → 8 (not: widths differ), 8 → 8 (residual)
SHAPE = "model.layers=[4,8,8]"


def build(*sets) -> Network:
    cfg = load_config(IRIS, list(sets))
    return build_network(cfg, load_dataset(cfg))


def train(tmp_path, *sets, resume=None) -> Path:
    args = ["train", IRIS] if resume is None else ["train", "--resume", resume]
    args += ["--runs-dir", tmp_path, "--quiet"]
    for s in sets:
        args += ["--set", s]
    result = cli(*args)
    assert result.exit_code == 0, result.stderr
    return Path(result.stdout.strip().splitlines()[-1])


def test_blocks_of_equal_width_become_residual_with_the_same_weights():
    plain, residual = build(SHAPE), build(SHAPE, "model.residual=true")
    assert [layer.describe() for layer in residual.layers] == [
        "residual (dense 4, relu)", "dense 8", "relu", "residual (dense 8, relu)", "dense 3"]
    assert residual.sizes == plain.sizes == [4, 4, 8, 8, 3]
    # the same initial weights, in the same flat order, under nested names
    np.testing.assert_array_equal(residual.flat_params, plain.flat_params)
    np.testing.assert_array_equal(residual.decay_mask, plain.decay_mask)
    assert [name for name, _, _ in residual.named_params()] == [
        "layers.0.body.0.W", "layers.0.body.0.b", "layers.1.W", "layers.1.b",
        "layers.3.body.0.W", "layers.3.body.0.b", "layers.4.W", "layers.4.b"]
    # every block with its norm and dropout inside; the output layer never
    full = build(SHAPE, "model.residual=true", "model.normalization=batch", "model.dropout=0.2")
    assert full.layers[0].describe() == "residual (dense 4, batch norm, relu, dropout 0.2)"
    assert full.min_rows == 2 and full.rng is not None
    assert {name for name, _ in full.named_state()} >= {"layers.0.body.1.running_mean", "layers.0.body.1.running_var"}
    # off (the default): the network as it always was
    assert [layer.describe() for layer in build(SHAPE).layers] == [
        "dense 4", "relu", "dense 8", "relu", "dense 8", "relu", "dense 3"]


def test_forward_is_x_plus_f_of_x():
    rng = np.random.default_rng(0)
    W, b, x = rng.normal(size=(3, 3)), rng.normal(size=3), rng.normal(size=(5, 3))
    out = Residual([Dense(W, b), Activation("tanh")]).forward(x)
    np.testing.assert_allclose(out, x + np.tanh(x @ W + b), rtol=1e-14)
    with pytest.raises(ValueError, match="give back its 3 input columns"):
        Residual([Dense(rng.normal(size=(3, 2)), np.zeros(2))]).units(3)


def _network(seed: int, dropout: bool) -> Network:
    rng = np.random.default_rng(seed)
    body = [Dense(rng.normal(size=(5, 5)) * 0.5, rng.normal(size=5)),
            BatchNorm(rng.uniform(0.5, 1.5, 5), rng.normal(size=5)), Activation("elu")]
    if dropout:
        body.append(Dropout(0.3, np.random.default_rng(7)))
    return Network([Dense(rng.normal(size=(4, 5)), rng.normal(size=5)), Activation("tanh"), Residual(body),
                    Residual([Dense(rng.normal(size=(5, 5)) * 0.5, rng.normal(size=5)),
                              LayerNorm(rng.uniform(0.5, 1.5, 5), rng.normal(size=5)), Activation("tanh")]),
                    Dense(rng.normal(size=(5, 3)), rng.normal(size=3))], "cross_entropy")


@pytest.mark.parametrize("members", [None, 3])
@pytest.mark.parametrize("training", [True, False])
def test_gradients_against_central_differences_in_float64(members, training):
    network = _network(0, dropout=True) if members is None else Network.stack(
        [_network(seed, dropout=True) for seed in range(members)])
    rng = np.random.default_rng(1)
    X = rng.normal(size=(7, 4))
    checks = check_gradients(network, X, loss_targets("cross_entropy", rng, 7, 3), max_entries=None,
                             training=training)
    names = {c.name for c in checks}
    assert {"layers.2.body.0.W", "layers.2.body.1.gamma", "layers.3.body.1.beta"} <= names
    for c in checks:
        assert c.passed(1e-6), (c.name, c.max_rel)


def test_members_are_the_networks_alone():
    singles = [_network(seed, dropout=False) for seed in range(3)]
    stacked = Network.stack(singles)
    X = np.random.default_rng(2).normal(size=(6, 4))
    out = stacked.forward(X, training=True).copy()
    for k, single in enumerate(singles):
        np.testing.assert_allclose(out[k], single.forward(X, training=True), rtol=1e-12)
        for name, value in stacked.member(k).arrays().items():
            np.testing.assert_array_equal(value, single.arrays()[name], err_msg=name)


def test_two_workspaces_interleaved_and_threads_give_the_answers_of_one():
    network = _network(3, dropout=True)
    X1, X2 = (np.random.default_rng(s).normal(size=(9, 4)) for s in (4, 5))
    expected = [network.predict_output(X1), network.predict_output(X2)]
    w1, w2 = network.workspace(), network.workspace()
    o1 = network.forward(X1, ws=w1)
    o2 = network.forward(X2, ws=w2)
    np.testing.assert_array_equal(o1, expected[0])
    np.testing.assert_array_equal(o2, expected[1])
    chunked = [network.predict_output(X1, chunk=4), network.predict_output(X2, chunk=4)]
    results, errors = {}, []

    def work(t):
        try:
            X = X1 if t % 2 else X2
            for _ in range(30):
                results.setdefault(t, []).append(network.predict_output(X, chunk=4))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for t, outs in results.items():
        for out in outs:
            np.testing.assert_array_equal(out, chunked[0] if t % 2 else chunked[1])


def test_gradcheck_and_trace_name_the_nested_arrays():
    result = cli("gradcheck", IRIS, "--set", SHAPE, "--set", "model.residual=true", "--set", "model.dropout=0.2",
                 "--set", "model.normalization=layer")
    assert result.exit_code == 0, result.stderr
    assert "layers.0.body.0.W" in result.stdout and "layers.5.body.1.gamma" in result.stdout
    traced = cli("trace", IRIS, "--set", "model.layers=[4]", "--set", "model.residual=true", "--rows", "3", "--json")
    assert traced.exit_code == 0, traced.stderr
    record = json.loads(traced.stdout)
    assert record["layers"][0]["type"] == "residual"
    assert record["layers"][0]["body"] == [{"type": "dense", "units": 4}, {"type": "activation", "name": "relu"}]
    step = record["steps"][0]
    assert set(step["backward"][-1]["grads"]) == {"body.0.W", "body.0.b"}
    X, W = np.array(record["input"]), np.array(record["initial"][0]["params"]["body.0.W"])
    np.testing.assert_allclose(step["forward"][0]["output"], X + np.maximum(X @ W, 0), rtol=1e-12)
    text = cli("trace", IRIS, "--set", "model.layers=[4]", "--set", "model.residual=true", "--rows", "2")
    assert "out0 = X + f(X)" in " ".join(text.stdout.split()) and "layers.0.body.0.W" in text.stdout


def test_model_file_diagnostics_and_exact_resume(tmp_path):
    sets = [SHAPE, "model.residual=true", "model.normalization=batch", "model.dropout=0.1"]
    straight = train(tmp_path, *sets, "training.iterations=8")
    saved = np.load(straight / "model.npz")
    meta = json.loads(str(saved["meta"]))
    assert meta["format_version"] == 2
    assert meta["layers"][0] == {"type": "residual", "body": [
        {"type": "dense", "units": 4}, {"type": "batch_norm", "eps": 1e-5, "momentum": 0.1},
        {"type": "activation", "name": "relu"}, {"type": "dropout", "rate": 0.1}]}
    assert saved["layers.0.body.0.W"].shape == (4, 4) and "layers.0.body.1.running_var" in saved.files
    model = load_model(straight)
    X = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    again = build(*sets)
    again.load_arrays(model.network.arrays())
    np.testing.assert_array_equal(model.network.predict_output(X), again.predict_output(X))
    # diagnostics: a row per trainable layer, the residual blocks' children in their place
    with open(straight / "diagnostics.csv") as fh:
        header, *rows = [line.strip().split(",") for line in fh]
    layer, dead = header.index("layer"), header.index("dead_fraction")
    last = [row for row in rows if row[0] == rows[-1][0]]
    assert len(last) == 7  # dense+norm in three blocks, then the output dense
    assert last[1][dead] != "" and last[0][dead] == ""  # the block's norm feeds its relu
    assert [int(row[layer]) for row in last] == list(range(7))
    # killed at epoch 4 and resumed: the same weights as straight through, bit for bit
    first = train(tmp_path, *sets, "training.iterations=4", "training.checkpoint_every=2")
    assert "layers.0.body.1.running_mean" in np.load(first / "checkpoint.npz").files
    resumed = train(tmp_path, "training.iterations=8", resume=first)
    b = np.load(resumed / "model.npz")
    for name in [n for n in saved.files if n != "meta"]:
        np.testing.assert_array_equal(saved[name], b[name], err_msg=name)


def test_members_write_format_3_with_nested_names(tmp_path):
    run = train(tmp_path, SHAPE, "model.residual=true", "model.ensemble=3", "training.iterations=3")
    saved = np.load(run / "model.npz")
    assert json.loads(str(saved["meta"]))["format_version"] == 3
    assert saved["layers.3.body.0.W"].shape == (3, 8, 8)
    model = load_model(run)
    assert model.network.members == 3
    result = cli("predict", run, DATASETS / "iris.csv")
    assert result.exit_code == 0, result.stderr


def test_a_damaged_nested_array_is_a_clear_error(tmp_path):
    run = train(tmp_path, SHAPE, "model.residual=true", "training.iterations=2")
    arrays = dict(np.load(run / "model.npz"))
    arrays["layers.0.body.7.W"] = arrays["layers.0.body.0.W"]
    np.savez(tmp_path / "extra.npz", **arrays)
    assert_clean_error(cli("predict", tmp_path / "extra.npz", DATASETS / "iris.csv"), "layers.0.body.7.W")
    del arrays["layers.0.body.7.W"], arrays["layers.3.body.0.b"]
    np.savez(tmp_path / "missing.npz", **arrays)
    assert_clean_error(cli("predict", tmp_path / "missing.npz", DATASETS / "iris.csv"), "layers.3.body.0.b")


@pytest.mark.parametrize("sets", [[], ["model.ensemble=2", "model.normalization=layer"]], ids=["one", "members"])
def test_export_equals_predict(tmp_path, sets):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from .test_export import assert_matches_predict, export

    run = train(tmp_path, SHAPE, "model.residual=true", "training.iterations=5", *sets)
    path = export(run)
    nodes = [n.op_type for n in onnx.load(path).graph.node]
    assert nodes.count("Add") >= 2  # one per residual block
    assert_matches_predict(run, DATASETS / "iris.csv", path)


# --- against PyTorch: a few SGD and Adam steps of the same network from the same weights -------

def _torch_module(torch, layer):
    """The torch module computing what an nnctl layer does (float64, weights copied)."""
    nn = torch.nn
    if isinstance(layer, Residual):
        body = nn.Sequential(*[_torch_module(torch, child) for child in layer.body])

        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.body = body

            def forward(self, x):
                return x + self.body(x)

        return Block()
    if isinstance(layer, Dense):
        linear = nn.Linear(*layer.W.shape).double()
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(layer.W.T.copy()))
            linear.bias.copy_(torch.from_numpy(layer.b.copy()))
        return linear
    if isinstance(layer, (BatchNorm, LayerNorm)):
        units = layer.gamma.shape[-1]
        module = (nn.BatchNorm1d(units) if isinstance(layer, BatchNorm) else nn.LayerNorm(units)).double()
        with torch.no_grad():
            module.weight.copy_(torch.from_numpy(layer.gamma.copy()))
            module.bias.copy_(torch.from_numpy(layer.beta.copy()))
        return module
    return {"relu": nn.ReLU(), "tanh": nn.Tanh(), "elu": nn.ELU()}[layer.name]


def _torch_arrays(torch, module, layer, prefix) -> dict:
    """The torch module's weights under nnctl's names."""
    if isinstance(layer, Residual):
        out = {}
        for j, (child, sub) in enumerate(zip(layer.body, module.body)):
            out.update(_torch_arrays(torch, sub, child, f"{prefix}body.{j}."))
        return out
    if isinstance(layer, Dense):
        return {prefix + "W": module.weight.detach().numpy().T, prefix + "b": module.bias.detach().numpy()}
    if isinstance(layer, (BatchNorm, LayerNorm)):
        return {prefix + "gamma": module.weight.detach().numpy(), prefix + "beta": module.bias.detach().numpy()}
    return {}


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("normalization", ["none", "batch", "layer"])
def test_steps_match_pytorch(optimizer, normalization):
    torch = pytest.importorskip("torch")
    from nnctl.training.optimization import network_optimizer

    cfg = load_config(IRIS, [SHAPE, "model.residual=true", f"model.normalization={normalization}",
                             f"training.optimizer={optimizer}", "training.learning_rate=0.05",
                             "training.dtype=float64"])
    dataset = load_dataset(cfg)
    network = build_network(cfg, dataset)
    modules = [_torch_module(torch, layer) for layer in network.layers]
    model = torch.nn.Sequential(*modules)
    opt = (torch.optim.SGD(model.parameters(), lr=0.05) if optimizer == "sgd"
           else torch.optim.Adam(model.parameters(), lr=0.05, betas=(0.9, 0.999), eps=cfg.training.eps))
    ours = network_optimizer(network, cfg.training)
    X, y = dataset.X_train[:32].astype(np.float64), dataset.y_train[:32]
    targets = np.eye(3)[y]
    for _ in range(4):
        network.forward(X, training=True)
        network.backward(targets)
        ours.step([network.flat_grads], 0.05)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(torch.from_numpy(X)), torch.from_numpy(y.astype(np.int64))).backward()
        opt.step()
    theirs = {}
    for i, (module, layer) in enumerate(zip(modules, network.layers)):
        theirs.update(_torch_arrays(torch, module, layer, f"layers.{i}."))
    mine = dict((name, value) for name, value, _ in network.named_params())
    assert set(theirs) == set(mine)
    for name, value in mine.items():
        np.testing.assert_allclose(value, theirs[name], rtol=0, atol=1e-6, err_msg=name)


def test_warm_start_and_report_blocks(tmp_path):
    from nnctl.report.blocks import blocks, trainable

    first = train(tmp_path, "model.layers=[4]", "model.residual=true", "training.iterations=2")
    model = load_model(first)
    assert blocks(model.network.layers, 4, "softmax") == "4 → 4 [relu, residual] → 3 [softmax]"
    assert [t.kind for t in trainable(model.network.layers)] == ["dense", "dense"]
    warm = train(tmp_path, "model.layers=[4]", "model.residual=true", "training.iterations=1",
                 f"model.init_from={first}")
    assert warm.exists()
    # the skip adds input j to output j: inputs in another order cannot be matched by reordering rows
    result = cli("train", IRIS, "--runs-dir", tmp_path, "--quiet", "--set", "model.layers=[4]", "--set",
                 "model.residual=true", "--set", f"model.init_from={first}", "--set",
                 "data.features=[petal_width,sepal_length,sepal_width,petal_length]")
    assert_clean_error(result, "model.init_from starts with a residual block")


def test_input_gradient_through_a_residual_first_block():
    from .conftest import central_differences

    rng = np.random.default_rng(6)
    network = Network([Residual([Dense(rng.normal(size=(4, 4)), rng.normal(size=4)), Activation("tanh")]),
                       Dense(rng.normal(size=(4, 2)), rng.normal(size=2))], "mse", 4)
    X = rng.normal(size=(5, 4))
    seed = rng.normal(size=2)
    _, grad = network.input_gradient(X, seed)
    numeric = central_differences(lambda Z: float((network.predict_logits(Z) @ seed).sum()), X.copy())
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)
