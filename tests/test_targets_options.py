"""Several targets through the options that once refused them (issue 34): an ensemble's members
per target in metrics.json, report.importance per target, training.conformal: normalized, ONNX
--interval/--sets/--threshold, serve's threshold and positive, --choose-threshold, and the
report comparing runs. One trained run serves them all."""
import io
import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest

from tests.cli_helpers import assert_clean_error, cli
from tests.test_targets import multi, table  # noqa: F401  (the fixture and its table)

CONFIG = ("data:\n  path: {data}\n  target: [price, cond, sold]\nmodel:\n  layers: [8]\n  ensemble: 3\n"
          "training:\n  iterations: 30\n  optimizer: adam\n  checkpoint_every: null\n  conformal: normalized\n"
          "report:\n  importance: true\n")


@pytest.fixture(scope="module")
def trio(tmp_path_factory):
    """price (regression), cond (three classes), sold (two classes): three members, normalized
    conformal scores and permutation importance; (run, data)."""
    folder = tmp_path_factory.mktemp("options")
    frame = pd.read_csv(io.StringIO(table(200)))
    frame["sold"] = np.where(frame["a"] - frame["b"] > 0, "yes", "no")
    data = folder / "data.csv"
    frame.to_csv(data, index=False)
    config = folder / "config.yaml"
    config.write_text(CONFIG.format(data=data))
    from nnctl.commands.train import train_config
    from nnctl.config import load_config

    # the Python API without loss.png: drawing it would cost more than training
    return train_config(load_config(config), folder / "runs", plot=False).run, data


def _metrics(run) -> dict:
    return json.loads((run / "metrics.json").read_text())


def _validation_rows(run, data) -> pd.DataFrame:
    """The data rows training held out for validation (the ones the conformal scores are of)."""
    rows = pd.read_csv(run / "validation.csv")["row"].to_numpy()
    return pd.read_csv(data).iloc[rows - 1]  # `row` counts data rows from 1


# --- metrics.json members -------------------------------------------------------------------------
def test_members_of_each_target_score_alone_and_as_the_ensemble(trio):
    from nnctl.runs.model import load_model

    run, data = trio
    metrics = _metrics(run)
    members = metrics["members"]
    assert list(members) == ["price", "cond", "sold"]
    assert [len(members[t]["scores"]) for t in members] == [3, 3, 3]
    # the ensemble's score is the run's own validation score (no temperature here)
    assert members["price"]["ensemble"]["r2"] == pytest.approx(metrics["validation"]["price.r2"], abs=1e-6)
    assert members["cond"]["ensemble"]["accuracy"] == pytest.approx(metrics["validation"]["cond.accuracy"])
    # member k alone is the k-th member's own prediction of that target
    model, frame = load_model(run), _validation_rows(run, data)
    price = next(v for v in model.targets if v.name == "price")
    own = price.member_outputs(model.inputs(frame))[1, :, 0]
    truth = frame["price"].to_numpy()
    r2 = 1 - np.sum((truth - own) ** 2) / np.sum((truth - truth.mean()) ** 2)
    assert members["price"]["scores"][1]["r2"] == pytest.approx(r2, abs=1e-5)
    html = (run.parent / "r.html")
    assert cli("report", run, "--output", html).exit_code == 0
    titles = re.findall(r"<h2>(.*?)</h2>", html.read_text())
    assert {"price: The members", "sold: The members", "price: What the model relies on",
            "cond: What the model relies on"} <= set(titles)


# --- report.importance ----------------------------------------------------------------------------
def test_importance_of_each_target_by_its_own_metric(trio):
    from nnctl.commands.explain import explain

    run, data = trio
    table_ = pd.read_csv(run / "importance.csv")
    assert list(table_.columns) == ["target", "column", "importance", "std"]
    assert list(dict.fromkeys(table_["target"])) == ["price", "cond", "sold"]
    columns = ["a", "b", "c", "d", "days"]  # days is not a target here: a feature
    assert all(sorted(table_[table_["target"] == t]["column"]) == columns for t in ("price", "cond", "sold"))
    how = _metrics(run)["importance"]
    assert (how["price"]["metric"], how["cond"]["metric"], how["sold"]["metric"]) == ("r2", "accuracy", "accuracy")
    assert how["price"]["part"] == "validation"
    assert how["price"]["baseline"] == pytest.approx(_metrics(run)["validation"]["price.r2"], abs=1e-6)
    # what explain gives on the same rows with the same seed
    frame = _validation_rows(run, data)
    frame.to_csv(run.parent / "val.csv", index=False)
    from nnctl.runs.model import load_model

    again = explain(load_model(run), run.parent / "val.csv", seed=how["price"]["seed"])
    top = table_[table_["target"] == "price"].iloc[0]
    assert top["column"] == "a"  # price = 3a + b² + 10
    assert again["targets"]["price"]["columns"][0]["importance"] == pytest.approx(top["importance"], rel=1e-5)


# --- training.conformal: normalized -----------------------------------------------------------------
def test_normalized_intervals_of_each_regression_target_follow_its_members_spread(trio):
    from nnctl.commands.predict import evaluate, predict_csv
    from nnctl.runs.model import load_model

    run, data = trio
    model = load_model(run)
    price = next(v for v in model.targets if v.name == "price")
    assert price.meta["conformal"]["kind"] == "normalized_residual"
    frame = _validation_rows(run, data)
    frame.to_csv(run.parent / "val.csv", index=False)
    got = predict_csv(run, run.parent / "val.csv", interval=0.8, sets=0.8)
    spread = price.spread_from_inputs(model.inputs(frame))[:, 0]
    from nnctl.commands.conformal import half_width

    q = half_width(type("One", (), {"task": "regression", "conformal_scores": price.conformal_scores,
                                    "path": run})(), 0.8, "--interval")
    width = got["price_upper"] - got["price_lower"]
    np.testing.assert_allclose(width, 2 * q * (spread + price.meta["conformal"]["floor"]), rtol=1e-6)
    assert width.std() > 0  # the width follows each row's spread
    # split conformal covers at least the level on the rows it was calibrated on
    report = evaluate(model, run.parent / "val.csv", interval=0.8, sets=0.8)
    assert report["price.coverage"] >= 0.8 and report["cond.coverage"] >= 0.8 and report["sold.coverage"] >= 0.8
    inside = (frame["price"].to_numpy() >= got["price_lower"]) & (frame["price"].to_numpy() <= got["price_upper"])
    assert report["price.coverage"] == pytest.approx(inside.mean())


def test_normalized_conformal_of_several_targets_is_checked_per_target(multi):  # noqa: F811
    from nnctl.data.targets import MULTI, Target
    from nnctl.errors import NnctlError
    from nnctl.training.conformal import check_conformal

    path = multi("", "[price, cond]")
    path.write_text(path.read_text().replace("checkpoint_every: null\n",
                                             "checkpoint_every: null\n  conformal: normalized\n"))
    assert_clean_error(cli("train", path, "--runs-dir", path.parent / "runs"),
                       "target 'price': training.conformal: normalized divides residuals by the ensemble members'")
    cond = Target("cond", "classification", ["a", "b"])
    with pytest.raises(NnctlError, match="normalized is for regression targets"):
        check_conformal("normalized", MULTI, 2, None, [cond])
    with pytest.raises(NnctlError, match="target 'price': training.conformal: normalized needs"):
        check_conformal("normalized", MULTI, 2, None, [cond, Target("price", "regression", target_scaler={
            "kind": "log1p", "offset": [0.0], "scale": [1.0]})])
    check_conformal("normalized", MULTI, 2, None, [cond, Target("price", "regression")])  # taken


# --- export -------------------------------------------------------------------------------------------
def test_onnx_intervals_sets_and_thresholds_per_target_equal_predict(trio, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    from nnctl.commands.export import export_model
    from nnctl.commands.predict import predict_csv
    from nnctl.runs.model import load_model

    run, data = trio
    options = {"interval": 0.8, "sets": 0.8, "threshold": "sold=0.3"}
    path = export_model(run, tmp_path / "m.onnx", **options)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    assert names == ["price", "price_lower", "price_upper", "cond", "cond_probabilities", "cond_set",
                     "sold", "sold_probabilities", "sold_set"]
    model = load_model(run)
    frame = pd.read_csv(data)
    got = dict(zip(names, session.run(None, {"features": frame[model.encoder.features].to_numpy(np.float32)})))
    expected = predict_csv(run, data, proba=True, **options)
    for name in ("price", "price_lower", "price_upper"):
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got["sold_probabilities"], expected[["p_sold_no", "p_sold_yes"]], atol=1e-5)
    assert list(got["sold"]) == list(expected["sold"]) and list(got["cond"]) == list(expected["cond"])
    assert (expected["sold"] == np.where(expected["p_sold_yes"] >= 0.3, "yes", "no")).all()
    for name, classes in (("cond_set", ["fair", "good", "poor"]), ("sold_set", ["no", "yes"])):
        joined = ["|".join(c for c, inside in zip(classes, row) if inside) for row in got[name]]
        assert joined == list(expected[name].fillna(""))
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(props["threshold"]) == {"sold": 0.3}
    assert json.loads(props["conformal"])["price"]["outputs"] == ["price_lower", "price_upper"]
    assert_clean_error(cli("export", run, "--output", tmp_path / "x.onnx", "--threshold", "0.3"),
                       "with several targets, name the target it is for")
    assert_clean_error(cli("export", run, "--output", tmp_path / "x.onnx", "--threshold", "cond=0.3"),
                       "target 'cond': --threshold applies to two-class models")
    assert not (tmp_path / "x.onnx").exists()


# --- serve ---------------------------------------------------------------------------------------------
def test_serve_takes_a_threshold_and_positive_per_target(trio):
    from nnctl.commands.predict import predict_csv
    from nnctl.runs.model import load_model
    from nnctl.serving.app import predictions
    from nnctl.serving.bodies import Refusal, query_target_values, request_options

    run, data = trio
    model, frame = load_model(run), pd.read_csv(data)
    answer = predictions(model, frame, request_options(True, {"sold": 0.9}, {"sold": "no"}, []))
    expected = predict_csv(run, data, threshold="sold=0.9", positive="sold=no")
    assert [row["sold"] for row in answer["predictions"]] == list(expected["sold"])
    assert [row["cond"] for row in answer["predictions"]] == list(expected["cond"])
    # a CSV request's query string: <target>=<value>, as the command line gives it
    assert query_target_values("sold=0.9", model, "threshold") == {"sold": 0.9}
    assert query_target_values("sold=no", model, "positive") == {"sold": "no"}
    for threshold, fragment in (({"sold": "high"}, "'threshold' must be a number"),
                                ({"cond": 0.3}, "target 'cond': --threshold applies to two-class models"),
                                ({"nope": 0.3}, "names 'nope', which is not a target")):
        with pytest.raises(Refusal, match=fragment) as refused:
            predictions(model, frame.head(2), request_options(False, threshold, None, []))
        assert refused.value.status == 422


# --- --choose-threshold ------------------------------------------------------------------------------
def test_choose_threshold_of_a_two_class_target_and_save_it(trio, tmp_path):
    from nnctl.commands.predict import evaluate, predict_csv
    from nnctl.commands.threshold import choose_threshold, pick_threshold
    from nnctl.runs.model import load_model

    run, data = trio
    report = choose_threshold(load_model(run), data, "sold=recall=0.9")
    proba = predict_csv(run, data, proba=True)
    truth = pd.read_csv(data)["sold"].to_numpy()
    expected = pick_threshold(truth == "yes", proba["p_sold_yes"].to_numpy(), "recall", 0.9)
    assert report["sold.threshold"] == pytest.approx(expected) and report["sold.rule"] == "recall=0.9"
    assert report["sold.recall"] >= 0.9
    assert report["cond.accuracy"] == evaluate(load_model(run), data)["cond.accuracy"]  # the others as they were
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    out = cli("evaluate", copy, data, "--choose-threshold", "sold=recall=0.9", "--save")
    assert out.exit_code == 0, out.stderr
    assert f"threshold sold={report['sold.threshold']!r} saved in" in out.stderr
    saved = load_model(copy)
    assert next(v for v in saved.targets if v.name == "sold").threshold == pytest.approx(report["sold.threshold"])
    decided = predict_csv(copy, data, proba=True)
    assert (decided["sold"] == np.where(decided["p_sold_yes"] >= report["sold.threshold"], "yes", "no")).all()
    assert evaluate(saved, data)["sold.recall"] == pytest.approx(report["sold.recall"])
    assert predict_csv(copy, data, threshold="sold=0.99")["sold"].eq("no").mean() > 0.5  # --threshold overrides it


@pytest.mark.parametrize("rule, fragment", [
    ("f1", "with several targets, name the target it is for"),
    ("cond=f1", "target 'cond': --choose-threshold applies to two-class targets; this one has 3 classes"),
    ("price=youden", "target 'price': --choose-threshold applies to two-class targets; this one has a regression"),
    ("nope=f1", "names 'nope', which is not a target"),
])
def test_bad_choose_threshold_of_several_targets_is_one_clear_error(trio, rule, fragment):
    run, data = trio
    assert_clean_error(cli("evaluate", run, data, "--choose-threshold", rule), fragment)


# --- the report comparing runs ------------------------------------------------------------------------
def test_report_compares_runs_of_several_targets_a_row_per_target(trio, tmp_path):
    run, _ = trio
    out = cli("report", run, run, "--output", tmp_path / "both.html")
    assert out.exit_code == 0, out.stderr
    html = (tmp_path / "both.html").read_text()
    validation = _metrics(run)["validation"]
    from nnctl.ui.fmt import format_number

    for target, metric in (("price", "r2"), ("cond", "accuracy"), ("sold", "accuracy")):
        assert html.count(f"{run.name} · {target}</td>") == 2
        assert f"{metric} {format_number(validation[f'{target}.{metric}'])}" in html
