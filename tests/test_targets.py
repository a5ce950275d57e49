"""Several targets in one model (issue 34): the config, the heads' loss and its gradient, training,
model.npz, predict and evaluate."""
import json

import numpy as np
import pytest

from nnctl.config import load_config
from nnctl.errors import NnctlError
from nnctl.nn.heads import Head, MultiLoss
from nnctl.nn.layers import Activation, Dense
from nnctl.nn.network import Network
from tests.cli_helpers import assert_clean_error, cli, train_run


def table(rows: int = 80, seed: int = 0) -> str:
    """Two regression targets (price, days) and a three-class one (cond), from four features."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 4))
    price = 3 * X[:, 0] + X[:, 1] ** 2 + 10
    days = np.exp(0.5 * X[:, 2]) + X[:, 3]
    cond = np.where(X[:, 0] + X[:, 3] > 0.5, "good", np.where(X[:, 1] > 0, "fair", "poor"))
    lines = ["a,b,c,d,price,days,cond"] + [",".join(f"{v:.4f}" for v in x) + f",{p:.4f},{d:.4f},{c}"
                                         for x, p, d, c in zip(X, price, days, cond)]
    return "\n".join(lines) + "\n"


@pytest.fixture
def multi(write_csv, write_config):
    data = write_csv(table())

    def make(extra: str = "", target: str = "[price, days, cond]"):
        return write_config(f"data:\n  path: {data}\n  target: {target}\n{extra}"
                            "model:\n  layers: [8]\ntraining:\n  iterations: 6\n  optimizer: adam\n"
                            "  checkpoint_every: null\n")

    return make


# --- config ----------------------------------------------------------------------------------
@pytest.mark.parametrize("target, extra, fragment", [
    ("[price, price]", "", "lists the target 'price' twice"),
    ("[]", "", "is an empty list"),
    ("[price, cond]", "  features: [a, b, price]\n", "includes the target column 'price'"),
    ("[price, cond]", "  targets:\n    days: {task: regression}\n", "names 'days', which is not a target"),
    ("[price, cond]", "  positive_class: good\n", "set it per target"),
])
def test_bad_targets_are_one_clear_error(multi, target, extra, fragment):
    with pytest.raises(NnctlError, match=fragment):
        load_config(multi(extra, target))


@pytest.mark.parametrize("streaming", ["false", "true"])
def test_a_targets_positive_class_error_names_its_own_key(multi, tmp_path, streaming):
    path = multi("  targets:\n    cond: {positive_class: good}\n", "[price, cond]")
    result = cli("train", path, "--runs-dir", tmp_path / "runs", "--set", f"data.streaming={streaming}")
    assert_clean_error(result, "data.targets.cond.positive_class is for two classes; 'cond' has 3",
                       "leave data.targets.cond.positive_class out")


def test_a_metric_a_target_cannot_have_lists_the_ones_it_can(multi, tmp_path):
    result = cli("train", multi(target="[price, cond]"), "--runs-dir", tmp_path / "runs",
                 "--set", "training.early_stopping.metric=val_cond_r2")
    assert_clean_error(result, "r2 is not a metric of the classification target 'cond'",
                       "use one of val_cond_loss, val_cond_accuracy, val_cond_roc_auc, val_cond_f1, "
                       "val_cond_balanced_accuracy")


def test_target_weights_name_targets(multi, tmp_path):
    path = multi(target="[price, cond]")
    with pytest.raises(NnctlError, match="names 'days', which is not a target"):
        load_config(path, ["training.target_weights={days: 2}"])


def test_a_list_of_one_is_that_column(multi):
    assert load_config(multi(target="[price]")).data.target == "price"


def test_bad_target_in_the_cli_is_exit_2(multi):
    assert_clean_error(cli("train", multi(target="[price, price]")), "twice")


# --- the heads' loss and its gradient --------------------------------------------------------
def _heads_network(members=None, seed=0):
    rng = np.random.default_rng(seed)
    heads = [Head("price", "mse", 0, 1), Head("cond", "cross_entropy", 1, 4), Head("ok", "binary_cross_entropy", 4, 5)]
    loss = MultiLoss(heads, [0.7, 1.3, 0.5])
    lead = () if members is None else (members,)
    layers = [Dense(rng.normal(size=lead + (3, 6)), rng.normal(size=lead + (6,))), Activation("tanh"),
              Dense(rng.normal(size=lead + (6, 5)), rng.normal(size=lead + (5,)))]
    return Network(layers, loss)


def _targets(rows, rng):
    y = np.zeros((rows, 5))
    y[:, 0] = rng.normal(size=rows)
    y[np.arange(rows), 1 + rng.integers(0, 3, rows)] = 1
    y[:, 4] = rng.integers(0, 2, rows)
    return y


@pytest.mark.parametrize("members", [None, 2])
def test_multi_head_gradient_matches_central_differences(members):
    """float64: every parameter's gradient of Σ λ_t·L_t (row weights per block included)."""
    rng = np.random.default_rng(1)
    net = _heads_network(members)
    X, y = rng.normal(size=(7, 3)), _targets(7, rng)
    w = np.ones((7, 5))
    w[:, 1:4] = rng.uniform(0.5, 2, size=(7, 1))  # the classification's class weights
    net.forward(X, True)
    net.loss_value(y, w)
    grads = net.backward(y, w).copy()
    eps, numeric = 1e-6, np.empty_like(grads)
    for i in range(net.flat_params.size):
        keep = net.flat_params[i]
        net.flat_params[i] = keep + eps
        net.forward(X, True)
        up = net.loss_value(y, w)
        net.flat_params[i] = keep - eps
        net.forward(X, True)
        down = net.loss_value(y, w)
        net.flat_params[i] = keep
        numeric[i] = (up - down) / (2 * eps)
    np.testing.assert_allclose(grads, numeric, rtol=1e-6, atol=1e-8)


def test_multi_loss_is_the_weighted_sum_of_each_heads_own():
    rng = np.random.default_rng(2)
    net = _heads_network()
    X, y = rng.normal(size=(9, 3)), _targets(9, rng)
    a = net.forward(X).copy()
    z = net._ws(None).z
    from nnctl.nn.losses import LOSSES

    own = [LOSSES["mse"].value(z[:, :1], a[:, :1], y[:, :1]),
           LOSSES["cross_entropy"].value(np.ascontiguousarray(z[:, 1:4]), np.ascontiguousarray(a[:, 1:4]),
                                         np.ascontiguousarray(y[:, 1:4])),
           LOSSES["binary_cross_entropy"].value(z[:, 4:], a[:, 4:], y[:, 4:])]
    assert net.loss_value(y) == pytest.approx(0.7 * own[0] + 1.3 * own[1] + 0.5 * own[2], rel=1e-12)
    np.testing.assert_allclose(a[:, 1:4].sum(axis=1), 1.0)  # softmax on its block only
    assert ((a[:, 4] > 0) & (a[:, 4] < 1)).all()


def test_members_predict_each_members_heads():
    nets = [_heads_network(seed=s) for s in (3, 4)]
    stacked = Network.stack(nets)
    X = np.random.default_rng(5).normal(size=(4, 3))
    np.testing.assert_allclose(stacked.predict_members(X), np.stack([n.predict_output(X) for n in nets]),
                               rtol=1e-12)


# --- training, model.npz, predict, evaluate -------------------------------------------------
def test_train_predict_evaluate_several_targets(multi, tmp_path, write_csv):
    run = train_run(multi(), tmp_path / "runs")
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["validation"]) >= {"loss", "price.r2", "days.r2", "cond.accuracy"}
    assert metrics["targets"] == ["price", "days", "cond"]
    history = (run / "history.csv").read_text().splitlines()[0].split(",")
    assert {"val_price_r2", "val_days_r2", "val_cond_accuracy"} <= set(history)
    with np.load(run / "model.npz") as npz:
        meta = json.loads(str(npz["meta"]))
    assert [t["name"] for t in meta["targets"]] == ["price", "days", "cond"]
    assert [t["output"] for t in meta["targets"]] == ["identity", "identity", "softmax"]
    assert [t["columns"] for t in meta["targets"]] == [[0, 1], [1, 2], [2, 5]]
    assert meta["targets"][0]["target_scaler"]["kind"] == "standard"
    assert meta["targets"][2]["classes"] == ["fair", "good", "poor"]
    assert meta["heads"] == {"price": [2], "days": [2], "cond": [2]}

    data = tmp_path / "data.csv"
    out = cli("predict", run, data, "--proba")
    assert out.exit_code == 0, out.stderr
    header = out.stdout.splitlines()[0].split(",")
    assert header == ["price", "days", "cond", "p_cond_fair", "p_cond_good", "p_cond_poor"]
    first = out.stdout.splitlines()[1].split(",")
    assert first[2] in ("fair", "good", "poor")
    assert sum(map(float, first[3:])) == pytest.approx(1, abs=1e-5)

    report = json.loads(cli("evaluate", run, data, "--json").stdout)
    assert report["task"] == "multitarget" and report["rows"] == 80
    assert {"price.rmse", "price.r2", "days.mae", "cond.accuracy", "cond.f1"} <= set(report)
    assert cli("evaluate", run, data, "--fail-under", "price.r2=-100").exit_code == 0
    missed = cli("evaluate", run, data, "--fail-over", "price.rmse=0.000001")
    assert missed.exit_code == 1 and "price.rmse" in missed.stderr
    assert_clean_error(cli("evaluate", run, data, "--fail-under", "accuracy=0.5"), "unknown metric")


def test_predictions_match_single_output_blocks(multi, tmp_path):
    """Each target's column is its block of the network's outputs, in its own units."""
    from nnctl.commands.predict import predict_csv
    from nnctl.data.scaling import from_training
    from nnctl.runs.model import load_model

    run = train_run(multi(), tmp_path / "runs")
    model = load_model(run)
    import pandas as pd

    df = pd.read_csv(tmp_path / "data.csv")
    out = model.network.predict_output(model.inputs(df))
    frame = predict_csv(run, tmp_path / "data.csv")
    price = from_training(out[:, :1].astype(np.float64), model.meta["targets"][0]["target_scaler"])[:, 0]
    np.testing.assert_allclose(frame["price"].to_numpy(), price, rtol=1e-6)
    assert list(frame["cond"]) == list(np.array(["fair", "good", "poor"], dtype=object)[out[:, 2:5].argmax(axis=1)])


def test_other_commands_refuse_several_targets_clearly(multi, tmp_path):
    run = train_run(multi(), tmp_path / "runs")
    assert_clean_error(cli("predict", run, tmp_path / "data.csv", "--threshold", "0.5"),
                       "with several targets, name the target it is for")


# --- training: resume, early stopping, members, sweeps, gradcheck and trace -------------------
def _arrays(run) -> dict:
    with np.load(run / "model.npz", allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def test_an_interrupted_multi_target_run_resumes_bit_identical(multi, tmp_path):
    from nnctl.commands.train import resume_run, train_config

    config = multi("  validation_split: 0.25\n")
    sets = ["training.iterations=8", "training.batch_size=16", "model.ensemble=2", "training.checkpoint_every=1",
            "training.early_stopping={metric: val_cond_accuracy, patience: 20}"]
    straight = train_config(load_config(config, sets), tmp_path / "a", "m", plot=False)
    calls = {"n": 0}

    def stop_after_13_batches():  # 4 batches an epoch: mid epoch 4
        calls["n"] += 1
        return calls["n"] >= 13

    cut = train_config(load_config(config, sets), tmp_path / "b", "m", plot=False, should_stop=stop_after_13_batches)
    assert cut.status == "interrupted"
    resumed = resume_run(cut.run, (), tmp_path / "b", plot=False)
    a, b = _arrays(straight.run), _arrays(resumed.run)
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].tobytes() == b[k].tobytes(), k
    history = lambda run: [line.rsplit(",", 1)[0] for line in (run / "history.csv").read_text().splitlines()]
    assert history(straight.run) == history(resumed.run)
    assert "val_cond_accuracy" in history(straight.run)[0]


def test_early_stopping_watches_a_targets_metric(multi, tmp_path):
    run = train_run(multi(), tmp_path / "runs", "training.iterations=60",
                    "training.early_stopping={metric: val_days_loss, patience: 2, min_delta: 0.5}")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "early_stopped" and metrics["saved_because"] == "best val_days_loss"
    assert "val_days_loss" in (run / "history.csv").read_text().splitlines()[0]


@pytest.mark.parametrize("metric, fragment", [("val_price_accuracy", "not a metric of the regression target"),
                                              ("val_size_r2", "not a column of these targets")])
def test_a_metric_these_targets_lack_is_one_clear_error(multi, tmp_path, metric, fragment):
    result = cli("train", multi(), "--runs-dir", tmp_path / "runs", "--quiet",
                 "--set", f"training.early_stopping.metric={metric}")
    assert_clean_error(result, fragment)


def test_members_of_several_targets_predict_their_mean(multi, tmp_path):
    from nnctl.runs.model import load_model

    run = train_run(multi(), tmp_path / "runs", "model.ensemble=3")
    model = load_model(run)
    assert model.network.members == 3 and model.meta["format_version"] == 3
    import pandas as pd

    X = model.inputs(pd.read_csv(tmp_path / "data.csv"))
    np.testing.assert_allclose(model.network_outputs(X), model.network.predict_members(X).mean(axis=0), rtol=1e-5)


def test_a_sweep_scores_trials_by_a_targets_metric(multi, tmp_path, write_config):
    config = multi()
    sweep = write_config(f"config: {config}\nmethod: random\ntrials: 1\nmetric: val_cond_accuracy\n"
                         "parameters:\n  training.learning_rate: {values: [0.02]}\n", "sweep.yaml")
    result = cli("sweep", sweep, "--runs-dir", tmp_path / "runs", "--quiet")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(next((tmp_path / "runs").glob("*/summary.json")).read_text())
    assert summary["goal"] == "maximize" and 0 <= summary["best"]["value"] <= 1


def test_gradcheck_and_trace_walk_every_head(multi):
    gradcheck = cli("gradcheck", multi())
    assert gradcheck.exit_code == 0 and "all gradients match" in gradcheck.stdout
    trace = cli("trace", multi())
    assert trace.exit_code == 0, trace.stderr
    for line in ("price: mse of identity(out2[:, 0:1])", "days: mse of identity(out2[:, 1:2])",
                 "cond: cross_entropy of softmax(out2[:, 2:5])"):
        assert line in trace.stdout


def test_the_benchmark_table_has_two_regressions_and_three_classes(tmp_path):
    from tests.conftest import load_benchmark

    bench = load_benchmark("targets")
    first, again = bench.synthesize(60), bench.synthesize(60)
    assert first.equals(again)
    assert sorted(first["condition"].unique()) == ["fair", "good", "poor"]
    assert first["price"].dtype.kind == "f" and first["days"].dtype.kind == "f"


def test_label_smoothing_smooths_each_classification_head_only():
    from nnctl.training.multiscore import smooth_heads

    net = _heads_network()
    t = _targets(6, np.random.default_rng(7))
    smoothed = smooth_heads(net, t, 0.1)
    np.testing.assert_array_equal(smoothed[:, 0], t[:, 0])  # the regression's values stay
    np.testing.assert_allclose(smoothed[:, 1:4], t[:, 1:4] * 0.9 + 0.1 / 3)
    np.testing.assert_allclose(smoothed[:, 4], t[:, 4] * 0.9 + 0.1 / 2)


def test_several_targets_train_with_label_smoothing(multi, tmp_path):
    run = train_run(multi(), tmp_path / "runs", "training.label_smoothing=0.1")
    assert json.loads((run / "metrics.json").read_text())["validation"]["cond.accuracy"] > 0


def test_the_bundled_two_target_config_trains_and_predicts_both(tmp_path):
    from .conftest import CONFIGS, DATASETS

    run = train_run(CONFIGS / "iris-two-targets.yaml", tmp_path / "runs", "training.iterations=3")
    head = cli("predict", run, DATASETS / "iris.csv").stdout.splitlines()
    assert head[0] == "species,petal_width" and len(head) == 151
    species, width = head[1].split(",")
    assert species in {"setosa", "versicolor", "virginica"} and np.isfinite(float(width))
