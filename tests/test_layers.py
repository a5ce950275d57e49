"""The layer contract: each layer's backward against finite differences, a layer type defined
here alone working through gradcheck, trace, save/load and export, and the models nnctl wrote
before layers were objects (format 1) predicting exactly as they did."""
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nnctl.errors import NnctlError
from nnctl.nn.gradcheck import check_gradients
from nnctl.nn.layers import LAYERS, Activation, Dense, Layer
from nnctl.nn.network import Network
from nnctl.runs.model import load_model, save_model

from .cli_helpers import cli

FORMAT1 = Path(__file__).parent / "data" / "format1"
FORMAT1_DATA = {"classification": "shapes.csv", "binary": "pairs.csv", "regression": "levels.csv"}


def input_delta_check(layer: Layer, x: np.ndarray, training: bool = True) -> float:
    """Largest relative error of layer.backward's dL/dx against central differences, for the
    loss L = Σ out ⊙ R with a fixed random R (so dL/d(out) = R)."""
    rng = np.random.default_rng(0)
    buf = layer.new_buffers(x)  # the layer on its own, with buffers of its own
    out = layer.forward(x, training, buf)
    R = rng.normal(size=out.shape)

    def loss(inputs):
        return float(np.sum(layer.forward(inputs, training) * R))

    layer.forward(x, training, buf)
    analytic = layer.backward(R.copy(), buf).copy()
    numeric = np.empty_like(x)
    h = 1e-6
    for idx in np.ndindex(*x.shape):
        plus, minus = x.copy(), x.copy()
        plus[idx] += h
        minus[idx] -= h
        numeric[idx] = (loss(plus) - loss(minus)) / (2 * h)
    return float(np.max(np.abs(analytic - numeric)) / max(np.max(np.abs(numeric)), 1e-12))


# each layer type's input delta and array gradients against finite differences: one conformance
# check for every registered type, tests/test_layer_conformance.py


def test_layers_describe_themselves_for_the_file_and_the_screen():
    layer = Dense(np.zeros((3, 4)), np.zeros(4))
    assert (layer.type, layer.settings(), layer.describe()) == ("dense", {"units": 4}, "dense 4")
    assert layer.decay == {"W": True, "b": False} and layer.state == {}
    relu = Activation("relu")
    assert (relu.type, relu.settings(), relu.describe(), relu.params) == ("activation", {"name": "relu"}, "relu", {})
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        Activation("swish")


def test_evaluation_mode_is_the_default_and_training_mode_changes_nothing_for_dense_models():
    net = Network.initialize([3, 5, 2], ["tanh"], "cross_entropy", seed=0, dtype=np.float64)
    X = np.random.default_rng(3).normal(size=(4, 3))
    np.testing.assert_array_equal(net.forward(X).copy(), net.forward(X, training=True))


# --- a layer type that nnctl does not know, defined here alone -----------------------------------
class Scale(Layer):
    """out = x ⊙ g, a learned gain per column; dL/dg = Σ_rows x ⊙ delta, dL/dx = delta ⊙ g."""

    type = "test_scale"

    def __init__(self, g):
        super().__init__()
        self.params = {"g": np.asarray(g)}
        self.grads = {"g": np.zeros_like(self.params["g"])}
        self.decay = {"g": False}
        self.state = {"seen": np.zeros(1, dtype=self.params["g"].dtype)}  # batches seen in training

    @classmethod
    def from_saved(cls, settings, arrays):
        layer = cls(arrays["g"])
        layer.state["seen"] = arrays["seen"]
        return layer

    def backward_buffers(self, fan_in, input_delta=True):
        return {"dx": fan_in}

    def forward(self, x, training=False, buf=None):
        buf = self.begin(x, buf)
        if training:
            self.state["seen"] += 1
        return np.multiply(x, self.params["g"], out=buf.out)

    def backward(self, delta, buf):
        np.sum(buf.x * delta, axis=0, out=self.grads["g"])
        return np.multiply(delta, self.params["g"], out=buf.dx)


@pytest.fixture
def scale_registered(monkeypatch):
    monkeypatch.setitem(LAYERS, Scale.type, Scale)
    return Scale


def _with_scale(network: Network) -> Network:
    """The same network with a Scale layer after its first dense layer."""
    first = network.layers[0]
    gain = np.linspace(0.5, 1.5, first.W.shape[1]).astype(network.dtype)
    layers = [first, Scale(gain)] + network.layers[1:]
    return Network([LAYERS[layer.type].from_saved(layer.settings(), {**layer.params, **layer.state})
                    for layer in layers], network.loss_name, network.n_inputs)


def test_a_new_layer_type_is_gradient_checked_without_other_changes(scale_registered):
    rng = np.random.default_rng(4)
    net = _with_scale(Network.initialize([3, 4, 2], ["tanh"], "cross_entropy", seed=1, dtype=np.float64))
    results = check_gradients(net, rng.normal(size=(6, 3)), np.eye(2)[rng.integers(0, 2, 6)], max_entries=None)
    assert [r.name for r in results] == ["layers.0.W", "layers.0.b", "layers.1.g", "layers.3.W", "layers.3.b"]
    assert all(r.passed(1e-6) for r in results), [(r.name, r.max_rel) for r in results]
    assert net.decay_mask[net.layers[0].W.size + 4:][:4].sum() == 0  # g is not decayed


def test_a_new_layer_type_saves_loads_traces_and_is_refused_by_export(scale_registered, iris_run, tmp_path,
                                                                       monkeypatch):
    import nnctl.training.build as build
    from nnctl.commands.trace import run_trace
    from nnctl.ui.printing import print_trace

    model = load_model(iris_run)
    net = _with_scale(model.network)
    net.layers[1].state["seen"][:] = 7
    meta = {**model.meta, "layers": [{"type": layer.type, **layer.settings()} for layer in net.layers]}
    save_model(tmp_path / "model.npz", net, meta)
    with np.load(tmp_path / "model.npz", allow_pickle=False) as npz:
        assert "layers.1.g" in npz.files and npz["layers.1.seen"][0] == 7
    loaded = load_model(tmp_path / "model.npz")
    assert [layer.type for layer in loaded.network.layers][:2] == ["dense", "test_scale"]
    np.testing.assert_array_equal(loaded.network.layers[1].params["g"], net.layers[1].params["g"])
    iris = pd.read_csv(Path(__file__).parent.parent / "datasets" / "iris.csv")
    np.testing.assert_allclose(loaded.predict_proba(iris), net.predict_output(loaded.inputs(iris)), rtol=1e-6)
    # trace walks it like any layer: its output, the delta arriving at it, and its gradient by name
    real = build.build_network
    monkeypatch.setattr(build, "build_network", lambda cfg, dataset, fresh=False: _with_scale(real(cfg, dataset, fresh)))
    record = run_trace(Path(iris_run) / "config.yaml", rows=3)
    step = record["steps"][0]
    assert record["layers"][1] == {"layer": 1, "type": "test_scale", "name": "test_scale"}
    assert np.shape(step["forward"][1]["output"]) == (3, 16)
    scale = next(b for b in step["backward"] if b["layer"] == 1)
    assert list(scale["grads"]) == ["g"] and np.any(scale["grads"]["g"])
    print_trace(record)  # its panels print without knowing the type
    # export has no translation for it: a clear error, not a broken graph
    pytest.importorskip("onnx")
    from nnctl.commands.export import export_model

    with pytest.raises(NnctlError, match="layer 1 is of type 'test_scale', which has no ONNX form"):
        export_model(tmp_path / "model.npz", tmp_path / "model.onnx")
    assert not (tmp_path / "model.onnx").exists()


def test_an_unknown_layer_type_in_a_file_is_one_clear_error(iris_run, tmp_path):
    with np.load(Path(iris_run) / "model.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arrays["meta"]))
    meta["layers"][1] = {"type": "test_scale"}
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "model.npz", **arrays)
    result = cli("predict", tmp_path / "model.npz", Path(__file__).parent.parent / "datasets" / "iris.csv")
    assert result.exit_code == 2
    assert "model layer 1 is of type 'test_scale', which this nnctl does not know" in result.stderr


# --- format 1: every model written before layers were objects -------------------------------------
@pytest.mark.parametrize("name", sorted(FORMAT1_DATA))
def test_format1_models_predict_and_evaluate_exactly_as_before(name, tmp_path):
    run, data = FORMAT1 / name, FORMAT1 / FORMAT1_DATA[name]
    with np.load(run / "model.npz", allow_pickle=False) as npz:
        assert "W0" in npz.files and json.loads(str(npz["meta"]))["format_version"] == 1
    proba = [] if name == "regression" else ["--proba"]
    result = cli("predict", run, data, *proba)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (run / "expected.csv").read_text()
    evaluated = json.loads(cli("evaluate", run, data, "--json").stdout)
    expected = json.loads((run / "expected-evaluate.json").read_text())
    assert {k: evaluated[k] for k in expected} == expected  # later nnctl adds fields (positive_class)


@pytest.mark.parametrize("name", sorted(FORMAT1_DATA))
def test_format1_models_export_to_the_same_predictions(name, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from nnctl.commands.export import export_model

    run, data = FORMAT1 / name, FORMAT1 / FORMAT1_DATA[name]
    path = export_model(run, tmp_path / "model.onnx")
    session = ort.InferenceSession(str(path))
    frame = pd.read_csv(data)
    model = load_model(run)
    feeds = {}
    for spec in session.get_inputs():
        if spec.name == "features":  # no categorical columns: one matrix of every feature
            feeds["features"] = frame[model.meta["features"]].to_numpy(dtype=model.network.dtype)
            continue
        column = frame[spec.name]
        if spec.type == "tensor(string)":
            feeds[spec.name] = column.astype(str).to_numpy().reshape(-1, 1)
        else:
            feeds[spec.name] = column.to_numpy(dtype=model.network.dtype).reshape(-1, 1)
    outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
    expected = pd.read_csv(run / "expected.csv")
    if name == "regression":
        np.testing.assert_allclose(outputs["prediction"], expected["prediction"], rtol=1e-5)
    else:
        assert list(outputs["label"]) == list(expected["prediction"])
        np.testing.assert_allclose(outputs["probabilities"], expected.filter(like="p_").to_numpy(), atol=1e-5)


def test_format1_models_warm_start_with_their_own_weights(tmp_path):
    from nnctl.config import load_config
    from nnctl.data import load_dataset
    from nnctl.training.build import build_network

    run = FORMAT1 / "classification"
    config = tmp_path / "config.yaml"
    shutil.copy(FORMAT1 / "shapes.csv", tmp_path / "shapes.csv")
    config.write_text((run / "config.yaml").read_text().replace("../shapes.csv", "shapes.csv"))
    cfg = load_config(config, [f"model.init_from={run}"])
    network = build_network(cfg, load_dataset(cfg))
    source = load_model(run).network
    np.testing.assert_array_equal(network.flat_params, source.flat_params)
    with np.load(run / "model.npz", allow_pickle=False) as npz:
        np.testing.assert_array_equal(network.layers[0].W, npz["W0"])
        np.testing.assert_array_equal(network.layers[4].b, npz["b2"])
