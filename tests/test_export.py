"""nnctl export: the ONNX file, run by onnxruntime, predicts what nnctl predicts."""
import csv
import io
import json

import numpy as np
import pandas as pd
import pytest

from .cli_helpers import assert_clean_error, cli
from .conftest import CONFIGS, DATASETS, hide_package

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def run_onnx(path, frame: pd.DataFrame):
    """Feed a table to the exported model the way its doc string says."""
    session = ort.InferenceSession(str(path))
    feeds = {}
    for spec in session.get_inputs():
        if spec.name == "features":
            width = spec.shape[1]
            dtype = np.float64 if spec.type == "tensor(double)" else np.float32
            meta = session.get_modelmeta().custom_metadata_map
            feeds["features"] = frame[json.loads(meta["features"])].to_numpy(dtype)
            assert feeds["features"].shape[1] == width
        elif spec.type == "tensor(string)":
            values = [("" if v is None or (isinstance(v, float) and v != v) else
                       str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)) for v in frame[spec.name]]
            feeds[spec.name] = np.array(values, dtype=object).reshape(-1, 1)
        else:
            dtype = np.float64 if spec.type == "tensor(double)" else np.float32
            feeds[spec.name] = frame[spec.name].to_numpy(dtype).reshape(-1, 1)
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, feeds)))


def predicted(run, data, proba=True):
    args = ["predict", run, data] + (["--proba"] if proba else [])
    result = cli(*args)
    assert result.exit_code == 0, result.stderr
    return list(csv.DictReader(io.StringIO(result.stdout)))


def export(run, *args):
    result = cli("export", run, *args)
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip()


def assert_matches_predict(run, data, onnx_path=None):
    onnx_path = onnx_path or export(run)
    frame = pd.read_csv(data)
    out = run_onnx(onnx_path, frame)
    rows = predicted(run, data, proba="label" in out)
    if "label" in out:
        assert [str(v.decode() if isinstance(v, bytes) else v) for v in out["label"]] == [r["prediction"] for r in rows]
        classes = [k[2:] for k in rows[0] if k.startswith("p_")]
        expected = np.array([[float(r[f"p_{c}"]) for c in classes] for r in rows])
        np.testing.assert_allclose(out["probabilities"], expected, atol=1e-5)
    else:
        np.testing.assert_allclose(out["prediction"], [float(r["prediction"]) for r in rows], rtol=1e-5, atol=1e-6)
    return out


def train(config, runs, *sets):
    args = ["train", config, "--runs-dir", runs, "--quiet", "--set", "training.iterations=15"]
    for s in sets:
        args += ["--set", s]
    result = cli(*args)
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "elu", "gelu", "tanh", "sigmoid", "softplus", "identity"])
def test_every_activation(tmp_path, activation, dtype):
    run = train(CONFIGS / "iris.yaml", tmp_path, f"model.activation={activation}", "training.learning_rate=0.05",
                f"training.dtype={dtype}")
    assert_matches_predict(run, DATASETS / "iris.csv")


def test_gelu_below_opset_20_is_written_with_erf(tmp_path):
    run = train(CONFIGS / "iris.yaml", tmp_path, "model.activation=gelu")
    path = export(run, "--opset", "17", "--output", tmp_path / "gelu17.onnx")
    assert "Erf" in {n.op_type for n in onnx.load(path).graph.node}
    assert_matches_predict(run, DATASETS / "iris.csv", path)


@pytest.mark.parametrize("config, sets", [
    ("iris", []),                                        # softmax
    ("breast_cancer", []),                               # one sigmoid unit -> two columns
    ("diabetes", []),                                    # regression, back in the target's units
    ("diabetes", ["data.scale_target=false"]),
    ("iris", ["data.scale=minmax"]),
    ("iris", ["model.layers=[]"]),                       # no hidden layer
    ("iris", ["model.layers=[8, 6, 5]", "model.activation=[tanh, relu, elu]"]),
    ("iris", ["training.dtype=float64"]),
    ("diabetes", ["training.dtype=float64"]),
    ("xor", []),                                         # integer labels stay integers
])
def test_outputs_scalings_depths_and_dtypes(tmp_path, config, sets):
    run = train(CONFIGS / f"{config}.yaml", tmp_path, *sets)
    out = assert_matches_predict(run, DATASETS / f"{config}.csv")
    dtype = np.float64 if "training.dtype=float64" in sets else np.float32
    assert next(iter(v for k, v in out.items() if k != "label")).dtype == dtype
    if config == "xor":
        assert out["label"].dtype == np.int64


@pytest.fixture
def mixed(tmp_path):
    """A table with a categorical column, missing values in both kinds of column, 3 classes."""
    rng = np.random.default_rng(0)
    n = 120
    frame = pd.DataFrame({"color": rng.choice(["red", "green", "blue"], n), "size": rng.normal(10, 3, n),
                          "weight": rng.normal(size=n)})
    frame["kind"] = np.where(frame["color"] == "red", "a", np.where(frame["size"] > 10, "b", "c"))
    frame.loc[[3, 17, 40], "color"] = None
    frame.loc[[5, 6, 50], "size"] = np.nan
    frame.to_csv(tmp_path / "train.csv", index=False)
    new = frame.copy()
    new.loc[[0, 1], "color"] = "purple"  # never seen in training
    new.to_csv(tmp_path / "new.csv", index=False)
    return tmp_path


@pytest.mark.parametrize("scale", ["standard", "minmax"])
def test_categories_unknown_values_and_missing_fill(mixed, scale):
    config = mixed / "mixed.yaml"
    config.write_text(f"data:\n  path: train.csv\n  target: kind\n  categorical: [color]\n  missing: mean\n"
                      f"  unknown_category: ignore\n  scale: {scale}\n")
    run = train(config, mixed / "runs")
    path = export(run)
    inputs = {i.name: i.type for i in ort.InferenceSession(path).get_inputs()}
    assert inputs == {"color": "tensor(string)", "size": "tensor(float)", "weight": "tensor(float)"}
    assert_matches_predict(run, mixed / "new.csv", path)


def test_an_unknown_category_fails_when_the_model_says_error(mixed):
    config = mixed / "strict.yaml"
    config.write_text("data:\n  path: train.csv\n  target: kind\n  categorical: [color]\n  missing: mean\n")
    run = train(config, mixed / "runs")
    path = export(run)
    assert_matches_predict(run, mixed / "train.csv", path)
    assert_clean_error(cli("predict", run, mixed / "new.csv"), "category 'purple' that training never saw")
    with pytest.raises(Exception):
        run_onnx(path, pd.read_csv(mixed / "new.csv"))


def test_the_file_says_what_it_expects(tmp_path, iris_run):
    path = export(iris_run, "--output", tmp_path / "iris.onnx")
    assert path == str(tmp_path / "iris.onnx")
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    props = {p.key: p.value for p in model.metadata_props}
    assert json.loads(props["features"]) == ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    assert json.loads(props["classes"]) == ["setosa", "versicolor", "virginica"]
    assert props["nnctl_version"] and props["run"] == iris_run.name
    assert "'features', shape [N, 4]" in model.doc_string and "'label' [N]" in model.doc_string
    session = ort.InferenceSession(path)
    assert session.get_inputs()[0].shape == ["N", 4]  # any batch size
    assert run_onnx(path, pd.read_csv(DATASETS / "iris.csv").head(1))["probabilities"].shape == (1, 3)


def test_the_default_output_is_beside_the_model(tmp_path):
    run = train(CONFIGS / "xor.yaml", tmp_path)
    assert export(run) == f"{run}/model.onnx"


@pytest.mark.parametrize("args, fragment", [
    (["--opset", "9"], "opset 9 cannot express this model"),
    (["--output", "/proc/nope/model.onnx"], "cannot write there"),
])
def test_bad_export_requests(iris_run, args, fragment):
    assert_clean_error(cli("export", iris_run, *args), fragment)


def test_a_file_that_is_not_an_nnctl_model(tmp_path):
    bad = tmp_path / "model.npz"
    np.savez(bad, W0=np.zeros((2, 2)))
    assert_clean_error(cli("export", bad), "model file has no `meta` array")


def test_without_onnx_it_says_how_to_install(iris_run, monkeypatch):
    hide_package(monkeypatch, "onnx")
    assert_clean_error(cli("export", iris_run), "needs the onnx package", "pip install 'nnctl[onnx]'")


# --- any architecture, any input --------------------------------------------------------------------
ACTIVATIONS = ["relu", "leaky_relu", "elu", "gelu", "tanh", "sigmoid", "softplus", "identity"]


@st.composite
def models(draw):
    from nnctl.nn.network import MLP
    from nnctl.runs.model import Model

    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_features = draw(st.integers(1, 5))
    hidden = draw(st.lists(st.integers(1, 8), max_size=3))
    acts = [draw(st.sampled_from(ACTIVATIONS)) for _ in hidden]
    kind = draw(st.sampled_from(["softmax", "sigmoid", "identity"]))
    n_out = {"softmax": draw(st.integers(3, 5)), "sigmoid": 1, "identity": 1}[kind]
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    sizes = [n_features] + hidden + [n_out]
    weights = [rng.normal(0, 1, (a, b)).astype(dtype) for a, b in zip(sizes[:-1], sizes[1:])]
    biases = [rng.normal(0, 0.5, b).astype(dtype) for b in sizes[1:]]
    loss = {"softmax": "cross_entropy", "sigmoid": "binary_cross_entropy", "identity": "mse"}[kind]
    features = [f"f{i}" for i in range(n_features)]
    meta = {"features": features, "target": "t", "output": kind,
            "scaler": {"kind": "standard", "offset": rng.normal(size=n_features).tolist(),
                       "scale": rng.uniform(0.5, 3, n_features).tolist()},
            "categories": {}, "fill": None, "unknown_category": "error", "dtype": np.dtype(dtype).name}
    if kind == "identity":
        meta["task"], meta["target_scaler"] = "regression", {"kind": "standard", "offset": [3.0], "scale": [2.0]}
    else:
        meta["task"] = "classification"
        meta["classes"] = [f"c{i}" for i in range(max(n_out, 2))]
    X = rng.normal(0, 2, (draw(st.integers(1, 20)), n_features))
    return Model(MLP.mlp(weights, biases, acts, loss), meta, "model.npz"), pd.DataFrame(X, columns=features)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(models())
def test_any_architecture_and_input(tmp_path_factory, case):
    from nnctl.commands.export import build_onnx

    model, frame = case
    path = tmp_path_factory.mktemp("onnx") / "m.onnx"
    path.write_bytes(build_onnx(model).SerializeToString())
    out = run_onnx(path, frame)
    if model.task == "regression":
        np.testing.assert_allclose(out["prediction"], model.predict(frame), rtol=1e-5, atol=1e-5)
    else:
        proba = model.predict_proba(frame)
        np.testing.assert_allclose(out["probabilities"], proba, atol=1e-5)
        # labels agree wherever the top two probabilities are not a float-rounding tie
        top = np.sort(proba, axis=1)
        clear = top[:, -1] - top[:, -2] > 1e-5
        labels = np.array([v.decode() if isinstance(v, bytes) else v for v in out["label"]])
        assert (labels[clear] == model.predict(frame)[clear]).all()


# --- ensembles: one graph, the members' mean -------------------------------------------------
@pytest.mark.parametrize("config, sets", [
    ("iris", []),                                                  # softmax: the mean probability
    ("breast_cancer", []),                                         # one sigmoid unit per member
    ("diabetes", []),                                              # regression: the mean output
    ("iris", ["model.normalization=batch", "model.dropout=0.1"]),
    ("iris", ["model.normalization=layer", "training.dtype=float64"]),
    ("breast_cancer", ["training.calibration=temperature"]),       # T divides the mean's logits
])
def test_an_ensemble_exports_as_one_graph_of_batched_products(tmp_path, config, sets):
    run = train(CONFIGS / f"{config}.yaml", tmp_path, "model.ensemble=3", *sets)
    path = export(run)
    ops = {n.op_type for n in onnx.load(path).graph.node}
    assert "MatMul" in ops and "ReduceMean" in ops and "Gemm" not in ops
    assert_matches_predict(run, DATASETS / f"{config}.csv", path)


@pytest.mark.parametrize("opset", [13, 17, 21])
def test_an_ensemble_with_embedded_categories_exports_at_every_opset(mixed, opset):
    config = mixed / "embedded.yaml"
    config.write_text("data:\n  path: train.csv\n  target: kind\n  categorical: [color]\n  embedding: {color: 2}\n"
                      "  missing: mean\n  unknown_category: ignore\nmodel:\n  ensemble: 4\n"
                      "  normalization: layer\n")
    run = train(config, mixed / "runs")
    path = export(run, "--opset", str(opset), "--output", mixed / f"e{opset}.onnx")
    assert_matches_predict(run, mixed / "new.csv", path)
