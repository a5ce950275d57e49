"""Several targets beyond predict and evaluate (issue 34): serve, export, MLflow, the report,
explain, calibration and conformal, each answering per target as predict does."""
import io
import json

import numpy as np
import pandas as pd
import pytest

from tests.cli_helpers import cli, train_run
from tests.test_targets import table

CONFIG = ("data:\n  path: {data}\n  target: [price, days, cond]\n"
          "model:\n  layers: [8]\ntraining:\n  iterations: 6\n  optimizer: adam\n  checkpoint_every: null\n")


@pytest.fixture(scope="module")
def multi_run(tmp_path_factory):
    """One trained run of two regression targets and a three-class one, and its table."""
    folder = tmp_path_factory.mktemp("targets")
    data = folder / "data.csv"
    data.write_text(table())
    config = folder / "config.yaml"
    config.write_text(CONFIG.format(data=data))
    return train_run(config, folder / "runs"), data


def predicted(run, data, **options) -> pd.DataFrame:
    from nnctl.commands.predict import predict_csv

    return predict_csv(run, data, **options)


# --- serve -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_serve_answers_each_row_with_every_target(multi_run, tmp_path):
    httpx = pytest.importorskip("httpx")
    from tests.test_serve import serving

    run, data = multi_run
    frame = pd.read_csv(data).head(5)
    expected = predicted(run, data, proba=True).head(5)
    with serving(run, log=tmp_path / "serve.log") as (url, _):
        rows = frame[["a", "b", "c", "d"]].to_dict("records")
        answer = httpx.post(f"{url}/predict", json={"rows": rows, "proba": True, "keep": ["a"]}).json()
        text = frame.to_csv(index=False)
        as_csv = httpx.post(f"{url}/predict?proba=true", content=text,
                            headers={"Content-Type": "text/csv"}).json()
        info = httpx.get(f"{url}/model").json()
    assert answer == as_csv | {"kept": [{"a": a} for a in frame["a"]]}
    assert [set(r) for r in answer["predictions"]] == [{"price", "days", "cond"}] * 5
    np.testing.assert_allclose([r["price"] for r in answer["predictions"]], expected["price"], rtol=1e-6)
    np.testing.assert_allclose([r["days"] for r in answer["predictions"]], expected["days"], rtol=1e-6)
    assert [r["cond"] for r in answer["predictions"]] == list(expected["cond"])
    assert [set(r) for r in answer["probabilities"]] == [{"cond"}] * 5
    np.testing.assert_allclose([r["cond"]["good"] for r in answer["probabilities"]], expected["p_cond_good"],
                               rtol=1e-6)
    assert info["task"] == "multitarget"
    assert info["targets"] == [{"name": "price", "task": "regression"}, {"name": "days", "task": "regression"},
                               {"name": "cond", "task": "classification", "classes": ["fair", "good", "poor"]}]


def test_served_rows_are_objects_of_targets_in_process(multi_run):
    """The app's answer, without a server: what a client reads for each option."""
    from nnctl.runs.model import load_model
    from nnctl.serving.app import predictions
    from nnctl.serving.bodies import Refusal, request_options

    run, data = multi_run
    model = load_model(run)
    frame = pd.read_csv(data).head(3)
    plain = predictions(model, frame, request_options(False, None, None, []))
    assert set(plain) == {"predictions"} and list(plain["predictions"][0]) == ["price", "days", "cond"]
    with pytest.raises(Refusal, match="--spread is the members' disagreement, and this model has one member"):
        predictions(model, frame, request_options(False, None, None, [], spread=True))


# --- export ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def members_run(multi_run):
    """The same table with model.ensemble: 2, members' heads averaged per target."""
    run, data = multi_run
    return train_run(run / "config.yaml", run.parent.parent / "members", "model.ensemble=2"), data


@pytest.mark.parametrize("which", ["multi_run", "members_run"])
def test_onnx_has_one_output_per_target_equal_to_predict(which, request, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from nnctl.commands.export import export_model
    from nnctl.runs.model import load_model

    run, data = request.getfixturevalue(which)
    path = export_model(run, tmp_path / "model.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["price", "days", "cond", "cond_probabilities"]
    frame = pd.read_csv(data)
    model = load_model(run)
    X = frame[model.encoder.features].to_numpy(np.float32)
    price, days, cond, proba = session.run(None, {"features": X})
    expected = predicted(run, data, proba=True)
    np.testing.assert_allclose(price, expected["price"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(days, expected["days"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(proba, expected[["p_cond_fair", "p_cond_good", "p_cond_poor"]], atol=1e-5)
    assert list(cond) == list(expected["cond"])
    props = {p.key: p.value for p in __import__("onnx").load(str(path)).metadata_props}
    assert json.loads(props["target"]) == ["price", "days", "cond"] and props["task"] == "multitarget"
    assert json.loads(props["targets"])[2] == {"name": "cond", "task": "classification",
                                               "outputs": ["cond", "cond_probabilities"],
                                               "classes": ["fair", "good", "poor"]}


# --- MLflow ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_mlflow_logs_each_targets_metrics_and_the_pyfunc_predicts_each_target(multi_run, tmp_path):
    mlflow = pytest.importorskip("mlflow")
    run, data = multi_run
    store = f"file:{tmp_path / 'mlruns'}"
    tracked = train_run(run / "config.yaml", tmp_path / "runs", f"tracking.uri={store}")
    logged = mlflow.MlflowClient(store).get_run(json.loads((tracked / "tracking.json").read_text())["run_id"])
    final = json.loads((tracked / "metrics.json").read_text())
    assert logged.data.metrics["final_val_price_r2"] == pytest.approx(final["validation"]["price.r2"])
    assert logged.data.metrics["final_val_cond_accuracy"] == pytest.approx(final["validation"]["cond.accuracy"])
    assert {"val_price_r2", "val_days_r2", "val_cond_accuracy", "val_loss"} <= set(logged.data.metrics)
    assert not any("." in name for name in logged.data.metrics)
    mlflow.set_tracking_uri(store)
    got = mlflow.pyfunc.load_model(f"runs:/{logged.info.run_id}/model").predict(pd.read_csv(data), {"proba": True})
    pd.testing.assert_frame_equal(got.reset_index(drop=True), predicted(tracked, data, proba=True))

    uploaded = cli("track", run, "--uri", store)  # a run trained without tracking, logged after the fact
    assert uploaded.exit_code == 0, uploaded.stderr
    late = mlflow.MlflowClient(store).get_run(json.loads((run / "tracking.json").read_text())["run_id"])
    assert late.data.metrics["final_val_days_r2"] == pytest.approx(
        json.loads((run / "metrics.json").read_text())["validation"]["days.r2"])
    (run / "tracking.json").unlink()  # the module's run serves the other tests as it was


def test_final_metrics_of_several_targets_are_named_as_history_names_them():
    from nnctl.tracking.upload import final_metrics

    metrics = {"targets": ["a.b", "c"], "validation": {"loss": 0.5, "a.b.r2": 0.9, "c.accuracy": 0.8, "rows": 9}}
    assert final_metrics(metrics) == {"final_val_loss": 0.5, "final_val_a.b_r2": 0.9, "final_val_c_accuracy": 0.8}
    assert final_metrics({"validation": {"loss": 0.5, "accuracy": 0.8}}) == {"final_val_loss": 0.5,
                                                                              "final_val_accuracy": 0.8}


# --- report ----------------------------------------------------------------------------------
def test_report_has_a_section_per_target_with_its_tasks_charts(multi_run, tmp_path):
    import re

    run, _ = multi_run
    out = cli("report", run, "--output", tmp_path / "report.html")
    assert out.exit_code == 0, out.stderr
    html = (tmp_path / "report.html").read_text()
    titles = re.findall(r"<h2>(.*?)</h2>", html)
    assert titles[:3] == ["Summary", "Learning curves", "Final metrics"]
    assert {"price: Final metrics", "price: Regression (validation part)", "days: Regression (validation part)",
            "cond: Final metrics", "cond: Classification (validation part)"} <= set(titles)
    assert "cond: Regression (validation part)" not in titles and "price: Classification (validation part)" not in titles
    metrics = json.loads((run / "metrics.json").read_text())
    from nnctl.ui.fmt import format_number

    assert f"price r2 {format_number(metrics['validation']['price.r2'])}" in html
    assert all(f"val {name}" in html for name in ("price r2", "days r2", "cond accuracy"))  # each target's curve
    assert "predicted against actual" in html and "true \\ predicted" in html


# --- explain ---------------------------------------------------------------------------------
def test_explain_ranks_columns_for_each_target_by_its_own_metric(multi_run, tmp_path):
    from nnctl.commands.explain import Tally, _permutation
    from nnctl.commands.predict import truth_of
    from nnctl.runs.model import load_model
    from tests.cli_helpers import assert_clean_error

    run, data = multi_run
    out = cli("explain", run, data, "--json", "--repeats", "2", "--output", tmp_path / "importance.csv")
    assert out.exit_code == 0, out.stderr
    result = json.loads(out.stdout)
    assert list(result["targets"]) == ["price", "days", "cond"] and result["rows"] == 80
    assert [result["targets"][t]["metric"] for t in result["targets"]] == ["r2", "r2", "accuracy"]
    report = json.loads(cli("evaluate", run, data, "--json").stdout)
    for name, metric in (("price", "r2"), ("days", "r2"), ("cond", "accuracy")):
        assert result["targets"][name]["baseline"] == pytest.approx(report[f"{name}.{metric}"], rel=1e-6)
    # each target's ranking is what that target alone would get from the same shuffles
    model, frame = load_model(run), pd.read_csv(data)
    view = model.targets[2]
    tally = Tally(view, "accuracy")
    alone = _permutation(model, [tally], [(model.inputs(frame), [truth_of(view, frame, "data")])],
                         lambda X: [view.proba(model.network_outputs(X))], 2, 0, "data")[0]
    got = result["targets"]["cond"]["columns"]
    assert [c["column"] for c in got] == [c["column"] for c in alone["columns"]]
    np.testing.assert_allclose([c["importance"] for c in got], [c["importance"] for c in alone["columns"]], atol=1e-12)
    # days = exp(c / 2) + d: c and d rank above a and b
    assert {c["column"] for c in result["targets"]["days"]["columns"][:2]} == {"c", "d"}
    written = pd.read_csv(tmp_path / "importance.csv")
    assert list(written.columns) == ["target", "column", "importance", "std"] and len(written) == 12
    table = cli("explain", run, data, "--repeats", "1")
    assert table.exit_code == 0 and "cond: permutation importance: drop in accuracy" in table.stdout
    assert_clean_error(cli("explain", run, data, "--metric", "r2"), "names no target")


# --- conformal -------------------------------------------------------------------------------
def test_intervals_and_sets_per_target_from_each_targets_own_scores(multi_run, tmp_path):
    from nnctl.commands.conformal import half_width
    from nnctl.runs.model import load_model
    from nnctl.serving.app import predictions
    from nnctl.serving.bodies import request_options

    run, data = multi_run
    model = load_model(run)
    assert [v.conformal_scores is not None for v in model.targets] == [True, True, True]
    assert model.meta["targets"][2]["conformal"] == {"kind": "one_minus_true_class_probability", "n": 16}
    out = cli("predict", run, data, "--interval", "0.8", "--sets", "0.8")
    assert out.exit_code == 0, out.stderr
    frame = pd.read_csv(io.StringIO(out.stdout), keep_default_na=False)
    assert list(frame.columns) == ["price", "price_lower", "price_upper", "days", "days_lower", "days_upper",
                                   "cond", "cond_set"]
    q = half_width(model.targets[0], 0.8, "--interval")
    np.testing.assert_allclose(frame["price_upper"] - frame["price"], q, rtol=1e-9)
    np.testing.assert_allclose(frame["price"] - frame["price_lower"], q, rtol=1e-9)
    assert all(label in labels.split("|") for label, labels in zip(frame["cond"], frame["cond_set"]) if labels)
    served = predictions(model, pd.read_csv(data).head(2), request_options(False, None, None, [], 0.8, 0.8))
    assert served["lower"] == [{"price": a, "days": b} for a, b in zip(frame["price_lower"][:2], frame["days_lower"][:2])]
    assert served["prediction_sets"] == [{"cond": s.split("|") if s else []} for s in frame["cond_set"][:2]]
    report = json.loads(cli("evaluate", run, data, "--interval", "0.8", "--sets", "0.8", "--json").stdout)
    inside = ((frame["price_lower"] <= pd.read_csv(data)["price"]) & (pd.read_csv(data)["price"] <= frame["price_upper"]))
    assert report["price.level"] == 0.8 and report["price.coverage"] == pytest.approx(inside.mean())
    assert report["price.mean_width"] == pytest.approx(2 * q) and "cond.mean_set_size" in report
    assert "cond.mean_width" not in report and "price.mean_set_size" not in report
    high = cli("predict", run, data, "--interval", "0.99")
    assert high.exit_code == 0 and "every interval is infinite (target price)" in high.stderr


def test_a_target_without_scores_still_loads_and_damaged_scores_are_named(multi_run, tmp_path):
    from nnctl.errors import NnctlError
    from nnctl.runs.model import load_model

    run, _ = multi_run
    with np.load(run / "model.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arrays["meta"]))
    meta["targets"][1]["conformal"]["n"] = 3
    (tmp_path / "bad.npz").write_bytes(b"")
    with open(tmp_path / "bad.npz", "wb") as fh:
        np.savez(fh, **{**arrays, "meta": np.array(json.dumps(meta))})
    with pytest.raises(NnctlError, match=r"conformal.scores.1"):
        load_model(tmp_path / "bad.npz")


# --- calibration -----------------------------------------------------------------------------
def test_a_temperature_per_classification_target_changes_only_its_probabilities(multi_run, tmp_path):
    from nnctl.runs.model import load_model

    run, data = multi_run
    calibrated = train_run(run / "config.yaml", tmp_path / "runs", "training.calibration=temperature")
    metrics = json.loads((calibrated / "metrics.json").read_text())
    model, plain = load_model(calibrated), load_model(run)
    assert list(metrics["calibration"]) == ["cond"] and [v.temperature for v in model.targets][:2] == [1.0, 1.0]
    t = model.targets[2].temperature
    assert t == metrics["calibration"]["cond"]["temperature"] != 1.0
    X = model.inputs(pd.read_csv(data))
    raw = model.network.predict_logits(X)[:, 2:5].astype(np.float64)
    z = raw / t
    expected = np.exp(z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(model.targets[2].proba(model.network_outputs(X)),
                               expected / expected.sum(axis=1, keepdims=True), atol=1e-5)
    np.testing.assert_array_equal(model.network_outputs(X)[:, :2], model.network.predict_output(X)[:, :2])
    assert plain.targets[2].temperature == 1.0
    if __import__("importlib").util.find_spec("onnxruntime") and __import__("importlib").util.find_spec("onnx"):
        import onnxruntime as ort

        from nnctl.commands.export import export_model

        session = ort.InferenceSession(str(export_model(calibrated, tmp_path / "m.onnx")),
                                       providers=["CPUExecutionProvider"])
        raw_columns = pd.read_csv(data)[model.encoder.features].to_numpy(np.float32)
        proba = session.run(["cond_probabilities"], {"features": raw_columns})[0]
        np.testing.assert_allclose(proba, model.targets[2].proba(model.network_outputs(X)), atol=1e-5)
