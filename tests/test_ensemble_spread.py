"""What an ensemble's members disagree on: `predict --spread`, and split-conformal intervals
normalized by that spread (training.conformal: normalized), in predict, evaluate, serve and ONNX."""
import io

import numpy as np
import pandas as pd
import pytest

from nnctl.nn.conformal import FLOOR_SHARE, conformal_quantile
from nnctl.commands.predict import predict_csv
from nnctl.runs.model import load_model

from .cli_helpers import assert_clean_error, cli, train_run
from .conftest import CONFIGS, DATASETS


def predicted(run, data, *options) -> pd.DataFrame:
    result = cli("predict", run, data, *options)
    assert result.exit_code == 0, result.stderr
    return pd.read_csv(io.StringIO(result.stdout))


def members_alone(model, frame) -> np.ndarray:
    """(K, rows) each member's own prediction, one member network at a time."""
    X = model.inputs(frame)
    scaler = model.meta["target_scaler"]
    outs = [model.network.member(k).predict_output(X)[:, 0] for k in range(model.network.members)]
    return np.array(outs, dtype=np.float64) * scaler["scale"][0] + scaler["offset"][0]


def test_spread_is_the_members_standard_deviation(tmp_path):
    run = train_run(CONFIGS / "diabetes.yaml", tmp_path, "model.ensemble=4", "training.iterations=20")
    out = predicted(run, DATASETS / "diabetes.csv", "--spread")
    assert list(out.columns) == ["prediction", "spread"]
    frame = pd.read_csv(DATASETS / "diabetes.csv")
    members = members_alone(load_model(run), frame)
    np.testing.assert_allclose(out["spread"], members.std(axis=0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out["prediction"], members.mean(axis=0), rtol=1e-4, atol=1e-4)
    assert (out["spread"] > 0).all()


def test_spread_of_each_class_probability(tmp_path):
    run = train_run(CONFIGS / "iris.yaml", tmp_path, "model.ensemble=3", "training.iterations=20")
    out = predicted(run, DATASETS / "iris.csv", "--spread", "--proba")
    classes = ["setosa", "versicolor", "virginica"]
    assert list(out.columns) == ["prediction"] + [f"p_{c}" for c in classes] + [f"spread_{c}" for c in classes]
    model = load_model(run)
    X = model.inputs(pd.read_csv(DATASETS / "iris.csv"))
    p = np.array([model.network.member(k).predict_output(X) for k in range(3)], dtype=np.float64)
    np.testing.assert_allclose(out[[f"spread_{c}" for c in classes]], p.std(axis=0), atol=1e-6)
    # a class's spread is printed in its probability's precision (float32), not with 17 digits
    frame = predict_csv(run, DATASETS / "iris.csv", proba=True, spread=True)
    assert {str(frame[f"{kind}_{c}"].dtype) for kind in ("p", "spread") for c in classes} == {"float32"}


def test_spread_needs_an_ensemble(iris_run):
    assert_clean_error(cli("predict", iris_run, DATASETS / "iris.csv", "--spread"),
                       "--spread is the members' disagreement, and this model has one member")


def heteroscedastic(folder, rows=2000, seed=0):
    """Diamonds-like: price grows with carat, whose large values are rare, and its noise is
    multiplicative, so the errors are largest where the data are sparse and the members disagree."""
    rng = np.random.default_rng(seed)
    carat, depth = rng.lognormal(0, 0.5, rows), rng.normal(size=rows)
    price = 1000 * carat ** 1.8 * np.exp(rng.normal(size=rows) * 0.15) + 50 * depth
    frame = pd.DataFrame({"carat": carat, "depth": depth, "price": price})
    frame.iloc[:1400].to_csv(folder / "train.csv", index=False)
    frame.iloc[1400:].to_csv(folder / "test.csv", index=False)
    config = folder / "config.yaml"
    config.write_text("seed: 0\ndata:\n  path: train.csv\n  target: price\n  validation_split: 0.3\n"
                      "model:\n  layers: [32, 32]\n  ensemble: 8\n"
                      "training:\n  optimizer: adam\n  learning_rate: 0.01\n  iterations: 60\n  batch_size: 64\n")
    return config


def test_normalized_intervals_keep_coverage_and_are_narrower_where_members_agree(tmp_path):
    config = heteroscedastic(tmp_path)
    absolute = train_run(config, tmp_path / "runs", "training.conformal=absolute")
    normalized = train_run(config, tmp_path / "runs", "training.conformal=normalized")
    results = {}
    for name, run in (("absolute", absolute), ("normalized", normalized)):
        result = cli("evaluate", run, tmp_path / "test.csv", "--interval", "0.9", "--json")
        assert result.exit_code == 0, result.stderr
        import json

        results[name] = json.loads(result.stdout)
    for report in results.values():
        assert 0.84 <= report["coverage"] <= 0.96
    assert results["normalized"]["mean_width"] < results["absolute"]["mean_width"]

    model = load_model(normalized)
    entry = model.meta["conformal"]
    assert entry["kind"] == "normalized_residual" and entry["floor"] > 0
    out = predicted(normalized, tmp_path / "test.csv", "--interval", "0.9", "--spread")
    q = conformal_quantile(model.conformal_scores, 0.9)
    np.testing.assert_allclose(out["upper"] - out["prediction"], q * (out["spread"] + entry["floor"]), rtol=1e-6)
    np.testing.assert_allclose(out["prediction"] - out["lower"], out["upper"] - out["prediction"], rtol=1e-6)
    widths = out["upper"] - out["lower"]
    large = pd.read_csv(tmp_path / "test.csv")["carat"] > 2
    assert widths[large].mean() > 1.5 * widths[~large].mean()  # wide where the errors are


def test_normalized_floor_is_a_share_of_the_mean_spread():
    from nnctl.nn.conformal import normalized_residuals, spread_floor

    assert FLOOR_SHARE == 1.0
    assert spread_floor(np.array([0.2, 0.4])) == pytest.approx(0.3)
    assert spread_floor(np.zeros(3)) == 1.0
    np.testing.assert_allclose(normalized_residuals(np.array([1.0, 3.0]), np.array([0.0, 0.0]),
                                                    np.array([1.0, 0.5]), 0.5), [1 / 1.5, 3.0])


@pytest.mark.parametrize("config, sets, fragment", [
    ("iris", ["model.ensemble=3"], "training.conformal: normalized is for regression"),
    ("diabetes", [], "this model has one member"),
])
def test_normalized_needs_a_regression_ensemble(tmp_path, config, sets, fragment):
    args = ["train", CONFIGS / f"{config}.yaml", "--runs-dir", tmp_path, "--quiet",
            "--set", "training.conformal=normalized", "--set", "training.iterations=2"]
    for s in sets:
        args += ["--set", s]
    assert_clean_error(cli(*args), fragment)
    assert not any(tmp_path.iterdir())


def test_normalized_intervals_in_onnx_equal_predict(tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    config = heteroscedastic(tmp_path)
    run = train_run(config, tmp_path / "runs", "training.conformal=normalized", "training.iterations=10")
    path = tmp_path / "m.onnx"
    result = cli("export", run, "--interval", "0.8", "--output", path)
    assert result.exit_code == 0, result.stderr
    assert onnx.load(str(path)).graph.output[-1].name == "upper"
    frame = pd.read_csv(tmp_path / "test.csv")
    session = ort.InferenceSession(str(path))
    lower, upper = session.run(["lower", "upper"], {"features": frame[["carat", "depth"]].to_numpy(np.float32)})
    expected = predicted(run, tmp_path / "test.csv", "--interval", "0.8")
    # float32 graph, prices in the thousands: within 1e-5 of the values' scale
    scale = np.abs(expected[["lower", "upper"]].to_numpy()).max()
    np.testing.assert_allclose(lower, expected["lower"], rtol=1e-5, atol=1e-5 * scale)
    np.testing.assert_allclose(upper, expected["upper"], rtol=1e-5, atol=1e-5 * scale)


def test_serve_answers_the_spread(tmp_path):
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    from fastapi.testclient import TestClient

    from nnctl.serving.app import ServeSettings, create_app

    run = train_run(CONFIGS / "iris.yaml", tmp_path, "model.ensemble=3", "training.iterations=5")
    model = load_model(run)
    client = TestClient(create_app(model, ServeSettings(str(run))))
    frame = pd.read_csv(DATASETS / "iris.csv").drop(columns="species").iloc[:4]
    answer = client.post("/predict", json={"rows": frame.to_dict("records"), "spread": True})
    assert answer.status_code == 200, answer.text
    expected = predicted(run, DATASETS / "iris.csv", "--spread").iloc[:4]
    for row, want in zip(answer.json()["spread"], expected.to_dict("records")):
        for c in model.classes:
            assert row[c] == pytest.approx(want[f"spread_{c}"], abs=1e-6)
    as_csv = client.post("/predict", content=frame.to_csv(index=False), params={"spread": "true"},
                         headers={"Content-Type": "text/csv"})
    assert as_csv.json()["spread"] == answer.json()["spread"]
    assert client.post("/predict", json={"rows": [], "spread": 1}).status_code == 422
