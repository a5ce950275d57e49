"""Issue 34, the second round: what the first build of several targets refused: the seeds
summary's names, predict's and serve's --spread, explain per target, --threshold per target."""
import json

import numpy as np
import pytest

from nnctl.sweep.cv import score_column
from nnctl.sweep.seeds import final_scores, main_metric, train_seeds
from tests.cli_helpers import assert_clean_error, cli, train_run
from tests.test_targets import multi, table  # noqa: F401  (the fixture and its table)


# --- seeds and cv summaries: the history's val_<target>_<metric> -------------------------------
def test_score_columns_are_historys_names():
    assert score_column("val", "accuracy") == "val_accuracy"
    assert score_column("val", "price.r2") == "val_price_r2"
    assert score_column("test", "a.b.rmse") == "test_a.b_rmse"  # a target's name may hold a dot
    scores = final_scores({"validation": {"loss": 0.5, "price.r2": 0.9, "cond.accuracy": 0.8, "cond.per_class": {}}})
    assert scores == {"val_loss": 0.5, "val_price_r2": 0.9, "val_cond_accuracy": 0.8}
    assert main_metric(list(scores), "price.r2") == "val_price_r2"


def test_a_seeds_summary_of_several_targets_uses_historys_names(multi, tmp_path):
    result = train_seeds(multi(), 2, [], runs_dir=tmp_path, workers=1)
    summary = json.loads((result["folder"] / "summary.json").read_text())
    assert summary["metric"] == "val_price_r2"
    assert {"val_price_r2", "val_days_r2", "val_cond_accuracy"} <= set(summary)
    assert not [k for k in summary if "." in k]
    header = (result["folder"] / "seeds.csv").read_text().splitlines()[0].split(",")
    assert "val_price_r2" in header and "val_cond_accuracy" in header


# --- an ensemble of three targets: a regression, three classes and two ------------------------
def _three_targets(folder, ensemble: int):
    """price (regression), cond (three classes) and sold (two classes), model.ensemble: K."""
    import pandas as pd

    frame = pd.read_csv(__import__("io").StringIO(table()))
    frame["sold"] = np.where(frame["a"] - frame["b"] > 0, "yes", "no")
    data = folder / "data.csv"
    frame.to_csv(data, index=False)
    config = folder / "config.yaml"
    config.write_text(f"data:\n  path: {data}\n  target: [price, cond, sold]\nmodel:\n  layers: [8]\n"
                      f"  ensemble: {ensemble}\ntraining:\n  iterations: 6\n  optimizer: adam\n  checkpoint_every: null\n")
    return train_run(config, folder / "runs"), data


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    return _three_targets(tmp_path_factory.mktemp("targets3"), 2)


@pytest.fixture(scope="module")
def one(tmp_path_factory):
    return _three_targets(tmp_path_factory.mktemp("targets1"), 1)


def test_spread_of_each_target_is_its_members_standard_deviation(members):
    import pandas as pd

    from nnctl.commands.predict import predict_csv
    from nnctl.runs.model import load_model
    from nnctl.serving.app import predictions
    from nnctl.serving.bodies import request_options

    run, data = members
    frame = predict_csv(run, data, proba=True, spread=True)
    assert list(frame.columns) == ["price", "price_spread", "cond", "p_cond_fair", "p_cond_good", "p_cond_poor",
                                   "spread_cond_fair", "spread_cond_good", "spread_cond_poor",
                                   "sold", "p_sold_no", "p_sold_yes", "spread_sold_no", "spread_sold_yes"]
    model = load_model(run)
    table_ = pd.read_csv(data)
    each = model.network.predict_members(model.inputs(table_)).astype(np.float64)  # (2, rows, 1 + 3 + 1)
    price, cond = model.targets[0], model.targets[1]
    np.testing.assert_allclose(frame["price_spread"], price.values(each).std(axis=0), rtol=1e-6)
    np.testing.assert_allclose(frame["spread_cond_good"], each[:, :, 2].std(axis=0), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(frame["spread_sold_no"], frame["spread_sold_yes"], atol=1e-9)  # 1 - p spreads as p
    assert frame["spread_cond_good"].dtype == frame["p_cond_good"].dtype == np.float32  # no 17 digits
    assert frame["price_spread"].gt(0).all()
    assert cond.name == "cond"
    served = predictions(model, table_.head(2), request_options(False, None, None, [], spread=True))
    assert served["spread"][1] == {"price": pytest.approx(frame["price_spread"][1]),
                                   "cond": pytest.approx({c: frame[f"spread_cond_{c}"][1] for c in ("fair", "good", "poor")}),
                                   "sold": pytest.approx({c: frame[f"spread_sold_{c}"][1] for c in ("no", "yes")})}
    out = cli("predict", run, data, "--spread")
    assert out.exit_code == 0, out.stderr
    assert out.stdout.splitlines()[0] == "price,price_spread,cond,spread_cond_fair,spread_cond_good,spread_cond_poor,sold,spread_sold_no,spread_sold_yes"


def test_spread_of_several_targets_needs_members(multi, tmp_path):
    run = train_run(multi(), tmp_path / "runs")
    assert_clean_error(cli("predict", run, tmp_path / "data.csv", "--spread"), "this model has one member")


# --- explain per target ----------------------------------------------------------------------
def test_gradient_of_each_target_matches_central_differences(one):
    """Each target's gradient × input is that of its own output alone (its prediction in its
    units, its predicted class's logit, its one logit), against central differences in float64."""
    import pandas as pd

    from nnctl.commands.explain import column_blocks, explain
    from nnctl.runs.model import load_model

    run, data = one
    model = load_model(run)
    result = explain(model, data, method="gradient")
    assert list(result["targets"]) == ["price", "cond", "sold"] and result["rows"] == 80
    assert [result["targets"][t]["output"] for t in result["targets"]] == \
        ["prediction", "predicted class's logit", "logit of class yes"]
    net = model.network.astype(np.float64)
    X = model.inputs(pd.read_csv(data)).astype(np.float64)
    price, cond, sold = model.targets
    scale = np.asarray(price.spec["target_scaler"]["scale"]).reshape(-1)[0]
    predicted = cond.start + net.predict_logits(X)[:, cond.start:cond.stop].argmax(axis=1)
    rows = np.arange(len(X))
    outputs = {"price": lambda z: z[:, price.start] * scale, "cond": lambda z: z[rows, predicted],
               "sold": lambda z: z[:, sold.start]}
    eps = 1e-6
    for name, s in outputs.items():
        grad = np.empty_like(X)
        for j in range(X.shape[1]):
            step = np.zeros(X.shape[1])
            step[j] = eps
            grad[:, j] = (s(net.predict_logits(X + step)) - s(net.predict_logits(X - step))) / (2 * eps)
        expected = {col: np.abs(X[:, cols] * grad[:, cols]).sum(axis=1).mean() for col, cols in column_blocks(model)}
        got = {c["column"]: c["importance"] for c in result["targets"][name]["columns"]}
        assert got == pytest.approx(expected, rel=2e-3, abs=1e-6), name
    out = cli("explain", run, data, "--method", "gradient")
    assert out.exit_code == 0, out.stderr
    assert "cond: gradient × input: predicted class's logit" in out.stdout


def test_gradient_of_several_targets_of_an_ensemble_is_of_the_members_mean(members):
    import pandas as pd

    from nnctl.commands.explain import column_blocks, explain
    from nnctl.runs.model import load_model

    run, data = members
    model = load_model(run)
    result = explain(model, data, method="gradient")
    assert result["targets"]["price"]["output"] == "the 2 members' mean prediction"
    net = model.network.astype(np.float64)
    X = model.inputs(pd.read_csv(data)).astype(np.float64)
    price = model.targets[0]
    scale = np.asarray(price.spec["target_scaler"]["scale"]).reshape(-1)[0]
    eps, grad = 1e-6, np.empty_like(X)
    for j in range(X.shape[1]):
        step = np.zeros(X.shape[1])
        step[j] = eps
        up, down = net.predict_members(X + step), net.predict_members(X - step)
        grad[:, j] = (up[..., price.start].mean(axis=0) - down[..., price.start].mean(axis=0)) * scale / (2 * eps)
    expected = {col: np.abs(X[:, cols] * grad[:, cols]).sum(axis=1).mean() for col, cols in column_blocks(model)}
    got = {c["column"]: c["importance"] for c in result["targets"]["price"]["columns"]}
    assert got == pytest.approx(expected, rel=2e-3, abs=1e-6)


def test_explain_metric_names_one_target_and_its_metric(one, tmp_path):
    from nnctl.commands.explain import explain
    from nnctl.runs.model import load_model

    run, data = one
    model = load_model(run)
    result = explain(model, data, metric="price.rmse", repeats=2)
    assert list(result["targets"]) == ["price"] and result["targets"]["price"]["metric"] == "rmse"
    report = json.loads(cli("evaluate", run, data, "--json").stdout)
    assert result["targets"]["price"]["baseline"] == pytest.approx(report["price.rmse"], rel=1e-6)
    auc = explain(model, data, metric="sold.roc_auc", repeats=1)["targets"]["sold"]
    assert auc["baseline"] == pytest.approx(report["sold.roc_auc"], rel=1e-6)
    assert_clean_error(cli("explain", run, data, "--metric", "rmse"), "names no target")
    assert_clean_error(cli("explain", run, data, "--metric", "price.accuracy"), "for the regression target 'price'")
    assert_clean_error(cli("explain", run, data, "--metric", "cond.average_precision"), "unknown metric")


# --- --threshold and --positive of a two-class target ------------------------------------------
def test_threshold_and_positive_of_a_two_class_target(one):
    import pandas as pd

    from nnctl.commands.predict import evaluate, predict_csv
    from nnctl.runs.model import load_model

    run, data = one
    plain = predict_csv(run, data, proba=True)
    low = predict_csv(run, data, proba=True, threshold="sold=0.05")
    assert (low["sold"] == np.where(plain["p_sold_yes"] >= 0.05, "yes", "no")).all()
    assert (low["sold"] == "yes").sum() > (plain["sold"] == "yes").sum()
    assert low.drop(columns="sold").equals(plain.drop(columns="sold"))  # the other targets are untouched
    flipped = predict_csv(run, data, threshold="sold=0.9", positive="sold=no")
    assert (flipped["sold"] == np.where(plain["p_sold_no"] >= 0.9, "no", "yes")).all()
    model = load_model(run)
    report = evaluate(model, data, threshold="sold=0.05")
    truth = pd.read_csv(data)["sold"]
    assert report["sold.accuracy"] == pytest.approx((low["sold"] == truth).mean())
    assert report["sold.threshold"] == 0.05 and report["cond.accuracy"] == evaluate(model, data)["cond.accuracy"]
    assert evaluate(model, data, positive="sold=no")["sold.positive_class"] == "no"
    out = cli("predict", run, data, "--threshold", "sold=0.05")
    assert out.exit_code == 0, out.stderr
    assert [line.split(",")[2] for line in out.stdout.splitlines()[1:]] == list(low["sold"])
    assert "sold is yes where p_sold_yes is at least 0.05" in out.stderr
    assert cli("evaluate", run, data, "--threshold", "sold=0.05", "--fail-under", "sold.accuracy=0").exit_code == 0


@pytest.mark.parametrize("args, fragment", [
    (["--threshold", "0.3"], "with several targets, name the target it is for"),
    (["--threshold", "cond=0.3"], "target 'cond': --threshold applies to two-class models; this one has 3 classes"),
    (["--threshold", "price=0.3"], "target 'price': --threshold turns a class probability into a class"),
    (["--threshold", "sold=2"], "target 'sold': --threshold must be a probability between 0 and 1"),
    (["--threshold", "sold=x"], "the threshold must be a probability"),
    (["--threshold", "days=0.3"], "names 'days', which is not a target"),
    (["--positive", "sold=maybe"], "target 'sold': --positive 'maybe' is not a class"),
    (["--positive", "no"], "with several targets, name the target"),
    (["--threshold", "abc"], "invalid value for '--threshold'"),
])
def test_bad_thresholds_of_several_targets_are_one_clear_error(one, args, fragment):
    run, data = one
    assert_clean_error(cli("predict", run, data, *args), fragment)


def test_a_target_threshold_on_a_model_of_one_target_is_one_clear_error(tmp_path, write_csv, write_config):
    data = write_csv("a,y\n" + "".join(f"{i % 7},{'yes' if i % 2 else 'no'}\n" for i in range(30)))
    run = train_run(write_config(f"data:\n  path: {data}\n  target: y\nmodel:\n  layers: [4]\n"
                                 "training:\n  iterations: 2\n  checkpoint_every: null\n"), tmp_path / "runs")
    assert_clean_error(cli("predict", run, data, "--threshold", "y=0.3"), "names a target, and this model has one")


def test_serve_refuses_a_bare_threshold_of_several_targets(one):
    import pandas as pd

    from nnctl.runs.model import load_model
    from nnctl.serving.app import predictions
    from nnctl.serving.bodies import Refusal, request_options

    run, data = one
    with pytest.raises(Refusal, match="name the target it is for") as refused:
        predictions(load_model(run), pd.read_csv(data).head(2), request_options(False, 0.3, None, []))
    assert refused.value.status == 422
