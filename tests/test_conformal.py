"""Split conformal: the quantile, the scores training keeps in model.npz, predict's and
evaluate's --interval / --sets, export's outputs, and coverage on held-out rows."""
import json
import math

import numpy as np
import pandas as pd
import pytest

from nnctl.commands.conformal import SET_TOLERANCE, half_width
from nnctl.commands.predict import evaluate_csv, predict_csv
from nnctl.commands.train import RunOptions, train_config
from nnctl.config import load_config
from nnctl.nn.conformal import conformal_quantile, quantile_rank, set_coverage, true_class_scores
from nnctl.runs.model import load_model

from .cli_helpers import assert_clean_error, cli, train_run
from .conftest import CONFIGS, DATASETS

LEVELS = (0.8, 0.9)


# --- the quantile ----------------------------------------------------------------------------


def test_quantile_is_the_ceil_n_plus_one_times_level_th_smallest_score():
    scores = np.arange(1.0, 11.0)  # n = 10
    assert conformal_quantile(scores, 0.8) == 9.0  # ⌈11 · 0.8⌉ = ⌈8.8⌉ = 9
    assert conformal_quantile(scores, 0.9) == 10.0  # ⌈9.9⌉ = 10
    assert conformal_quantile(scores, 0.5) == 6.0  # ⌈5.5⌉ = 6
    assert conformal_quantile(scores, 0.95) == math.inf  # ⌈10.45⌉ = 11 > n: no finite score is enough
    assert conformal_quantile(np.array([0.25]), 0.5) == 0.25  # ⌈2 · 0.5⌉ = 1


def test_quantile_rank_is_not_pushed_up_by_floating_point():
    assert 100 * 0.55 > 55  # 55.00000000000001, whose ceiling is 56
    assert quantile_rank(99, 0.55) == 55
    assert quantile_rank(99, 0.9) == 90
    assert quantile_rank(19, 0.95) == 19
    assert quantile_rank(9, 0.8) == 8


def test_set_scores_are_one_minus_the_true_class_probability():
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.5, 0.4, 0.1]])
    np.testing.assert_allclose(true_class_scores(proba, np.array([0, 2, 1])), [0.3, 0.6, 0.7])
    # q = 0.6: classes with p >= 0.4 -> {0}, {1}, {0, 1}; row 1's true class 2 (p 0.3) is out
    covered, size = set_coverage(np.array([0, 2, 1]), proba, 0.6)
    assert covered == pytest.approx(2 / 3) and size == pytest.approx(4 / 3)


# --- runs ------------------------------------------------------------------------------------


def _train(tmp_path, data: str, target: str, *sets: str, name="run"):
    config = tmp_path / f"{name}.yaml"
    config.write_text(f"seed: 0\ndata:\n  path: {data}\n  target: {target}\n"
                      "model:\n  layers: [8]\ntraining:\n  optimizer: adam\n  learning_rate: 0.01\n"
                      "  iterations: 20\n  batch_size: 32\n")
    cfg = load_config(config, list(sets))
    return train_config(cfg, options=RunOptions(tmp_path / "runs", name, plot=False, cache=False)).run


@pytest.fixture(scope="module")
def diabetes_run(tmp_path_factory):
    return train_run(CONFIGS / "diabetes.yaml", tmp_path_factory.mktemp("diabetes"), "training.iterations=30")


@pytest.fixture(scope="module")
def iris_small(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("iris"), DATASETS / "iris.csv", "species")


def test_training_keeps_the_validation_scores_sorted_in_target_units(diabetes_run):
    model = load_model(diabetes_run)
    entry, scores = model.meta["conformal"], model.conformal_scores
    assert entry == {"kind": "absolute_residual", "n": len(scores)} and len(scores) == 88  # 0.2 of 442 rows
    assert scores.dtype == np.float64 and np.all(np.diff(scores) >= 0)
    # the residuals of validation.csv's rows, in the target's units (not standardized)
    val = pd.read_csv(diabetes_run / "validation.csv")
    truth, pred = val["target"], val["prediction"]
    np.testing.assert_allclose(scores, np.sort(np.abs(truth - pred)), atol=1e-4)  # the CSV keeps 7 digits
    assert scores[-1] > 20  # target units: progression spans 25..346


def test_classification_scores_use_the_models_probabilities(iris_small):
    model = load_model(iris_small)
    assert model.meta["conformal"]["kind"] == "one_minus_true_class_probability"
    assert 0.0 <= model.conformal_scores[0] and model.conformal_scores[-1] <= 1.0


def test_predict_interval_adds_lower_and_upper_at_the_half_width(diabetes_run):
    out = predict_csv(diabetes_run, DATASETS / "diabetes.csv", interval=0.9)
    assert list(out.columns) == ["prediction", "lower", "upper"]
    q = conformal_quantile(load_model(diabetes_run).conformal_scores, 0.9)
    np.testing.assert_allclose(out["upper"] - out["prediction"], q)
    np.testing.assert_allclose(out["prediction"] - out["lower"], q)


def test_predict_sets_through_the_cli(iris_small, tmp_path):
    result = cli("predict", iris_small, DATASETS / "iris.csv", "--sets", "0.9", "--proba", "--keep", "species")
    assert result.exit_code == 0, result.stderr
    out = pd.read_csv(pd.io.common.StringIO(result.stdout), keep_default_na=False)
    assert list(out.columns) == ["species", "prediction", "p_setosa", "p_versicolor", "p_virginica", "prediction_set"]
    q = half_width(load_model(iris_small), 0.9, "--sets")
    for _, row in out.iterrows():
        expected = [c for c in ("setosa", "versicolor", "virginica") if 1 - row[f"p_{c}"] <= q + 1e-7]
        assert row["prediction_set"].split("|") == expected or (row["prediction_set"] == "" and not expected)
    covered = [s in row.split("|") for s, row in zip(out["species"], out["prediction_set"])]
    assert 0.8 <= np.mean(covered) <= 1.0


def test_evaluate_json_gives_coverage_and_width_or_set_size(diabetes_run, iris_small):
    result = cli("evaluate", diabetes_run, DATASETS / "diabetes.csv", "--interval", "0.8", "--json")
    report = json.loads(result.stdout)
    q = conformal_quantile(load_model(diabetes_run).conformal_scores, 0.8)
    assert report["level"] == 0.8 and report["mean_width"] == pytest.approx(2 * q)
    predictions = predict_csv(diabetes_run, DATASETS / "diabetes.csv", interval=0.8)
    truth = pd.read_csv(DATASETS / "diabetes.csv")["progression"]
    assert report["coverage"] == pytest.approx(np.mean((predictions.lower <= truth) & (truth <= predictions.upper)))
    sets = evaluate_csv(iris_small, DATASETS / "iris.csv", sets=0.9)
    assert {"coverage", "mean_set_size", "level"} <= set(sets) and "mean_width" not in sets
    assert 0 < sets["mean_set_size"] <= 3
    table = cli("evaluate", iris_small, DATASETS / "iris.csv", "--sets", "0.9")
    assert "coverage" in table.stdout and "mean_set_size" in table.stdout


# --- errors ----------------------------------------------------------------------------------


def test_a_run_without_a_validation_part_says_intervals_need_one(tmp_path):
    run = _train(tmp_path, DATASETS / "iris.csv", "species", "data.validation_split=0")
    model = load_model(run)
    assert "conformal" not in model.meta and model.conformal_scores is None  # loads as before
    for command in ("predict", "evaluate"):
        assert_clean_error(cli(command, run, DATASETS / "iris.csv", "--sets", "0.9"), "--sets",
                           "trained without a validation part", "data.validation_split")


@pytest.mark.parametrize("option,level,fragment", [
    ("--sets", "0.9", "--sets is for classification models"),
    ("--interval", "1", "strictly between 0 and 1"),
    ("--interval", "0", "strictly between 0 and 1"),
])
def test_wrong_task_or_level_is_refused(diabetes_run, option, level, fragment):
    for command in ("predict", "evaluate"):
        assert_clean_error(cli(command, diabetes_run, DATASETS / "diabetes.csv", option, level), option, fragment)


def test_interval_on_a_classifier_is_refused(iris_small):
    assert_clean_error(cli("predict", iris_small, DATASETS / "iris.csv", "--interval", "0.9"),
                       "--interval is for regression models", "--sets 0.9")


def test_a_keep_column_named_like_an_added_column_is_refused(diabetes_run, tmp_path):
    data = pd.read_csv(DATASETS / "diabetes.csv").assign(lower=1)
    data.to_csv(tmp_path / "d.csv", index=False)
    assert_clean_error(cli("predict", diabetes_run, tmp_path / "d.csv", "--interval", "0.9", "--keep", "lower"),
                       "--keep lower")


def test_a_label_holding_the_separator_is_refused(tmp_path):
    pd.DataFrame({"x": np.arange(40.0) % 7, "y": ["a|b", "c"] * 20}).to_csv(tmp_path / "d.csv", index=False)
    run = _train(tmp_path, tmp_path / "d.csv", "y")
    assert_clean_error(cli("predict", run, tmp_path / "d.csv", "--sets", "0.9"), "'a|b'", "--sets")


def test_too_few_validation_rows_give_infinite_intervals_and_say_so(tmp_path):
    rows = pd.DataFrame({"x": np.linspace(0, 1, 20), "y": np.linspace(0, 2, 20)})
    rows.to_csv(tmp_path / "d.csv", index=False)
    run = _train(tmp_path, tmp_path / "d.csv", "y", "model.task=regression")  # 4 validation rows
    result = cli("predict", run, tmp_path / "d.csv", "--interval", "0.9")
    assert result.exit_code == 0 and "needs at least 9 validation rows and this model had 4" in result.stderr
    out = pd.read_csv(pd.io.common.StringIO(result.stdout))
    assert np.isneginf(out["lower"]).all() and np.isposinf(out["upper"]).all()
    result = cli("evaluate", run, tmp_path / "d.csv", "--interval", "0.9", "--json")
    assert "had 4: every interval is infinite" in result.stderr
    report = json.loads(result.stdout)
    assert report["coverage"] == 1.0 and report["mean_width"] is None  # JSON has no infinity


# --- model.npz -------------------------------------------------------------------------------


def _rewrite(src, dst, meta_change=None, arrays_change=None):
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"]))
    if meta_change:
        meta_change(meta)
    arrays["meta"] = np.array(json.dumps(meta))
    if arrays_change:
        arrays_change(arrays)
    np.savez(dst, **arrays)
    return dst


@pytest.mark.parametrize("meta_change,arrays_change,fragment", [
    (None, lambda a: a.update({"conformal.scores": a["conformal.scores"][::-1].copy()}), "sorted"),
    (None, lambda a: a.update({"conformal.scores": -a["conformal.scores"]}), "sorted and within"),
    (None, lambda a: a.pop("conformal.scores"), "lacks `conformal.scores`"),
    (lambda m: m.pop("conformal"), None, "no `conformal` entry"),
    (lambda m: m["conformal"].update(kind="absolute_residual"), None, "one_minus_true_class_probability"),
    (lambda m: m["conformal"].update(n=3), None, "conformal.scores"),
    (None, lambda a: a.update({"conformal.scores": a["conformal.scores"].astype(np.float32)}), "float64"),
])
def test_a_damaged_conformal_part_is_refused(iris_small, tmp_path, meta_change, arrays_change, fragment):
    bad = _rewrite(iris_small / "model.npz", tmp_path / "model.npz", meta_change, arrays_change)
    assert_clean_error(cli("predict", bad, DATASETS / "iris.csv"), fragment)


def test_a_loaded_models_meta_saved_without_its_scores_loads_without_a_conformal_part(iris_small, tmp_path):
    from nnctl.runs.model import save_model

    model = load_model(iris_small)
    save_model(tmp_path / "model.npz", model.network, model.meta)
    again = load_model(tmp_path / "model.npz")
    assert "conformal" not in again.meta and again.conformal_scores is None
    save_model(tmp_path / "kept.npz", model.network, model.meta, {"conformal.scores": model.conformal_scores})
    np.testing.assert_array_equal(load_model(tmp_path / "kept.npz").conformal_scores, model.conformal_scores)


# --- export ----------------------------------------------------------------------------------


def test_export_interval_matches_predict(diabetes_run, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    result = cli("export", diabetes_run, "--interval", "0.9", "--output", tmp_path / "m.onnx")
    assert result.exit_code == 0, result.stderr
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    data = pd.read_csv(DATASETS / "diabetes.csv")
    X = data.drop(columns="progression").to_numpy(np.float32)
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"features": X})))
    expected = predict_csv(diabetes_run, DATASETS / "diabetes.csv", interval=0.9)
    for name in ("lower", "upper"):
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-4, atol=1e-3)
    props = {p.key: p.value for p in __import__("onnx").load(str(tmp_path / "m.onnx")).metadata_props}
    assert json.loads(props["conformal"])["level"] == 0.9


def test_export_sets_matches_predict(iris_small, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    assert cli("export", iris_small, "--sets", "0.8", "--output", tmp_path / "m.onnx").exit_code == 0
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    X = pd.read_csv(DATASETS / "iris.csv").drop(columns="species").to_numpy(np.float32)
    inside = session.run(["prediction_set"], {"features": X})[0]
    expected = predict_csv(iris_small, DATASETS / "iris.csv", sets=0.8)["prediction_set"].fillna("")
    classes = np.array(["setosa", "versicolor", "virginica"], dtype=object)
    assert ["|".join(classes[row]) for row in inside] == list(expected)


def test_export_without_a_validation_part_or_for_the_wrong_task_is_refused(diabetes_run, tmp_path):
    pytest.importorskip("onnx")
    assert_clean_error(cli("export", diabetes_run, "--sets", "0.9", "--output", tmp_path / "m.onnx"),
                       "--sets is for classification")
    assert not (tmp_path / "m.onnx").exists()


# --- coverage on held-out rows ---------------------------------------------------------------


def _tables():
    """(name, DataFrame, target, extra --set) for the bundled tables and scikit-learn's."""
    from sklearn import datasets as sk

    tables = [("iris", pd.read_csv(DATASETS / "iris.csv"), "species"),
              ("diabetes", pd.read_csv(DATASETS / "diabetes.csv"), "progression"),
              ("breast_cancer", pd.read_csv(DATASETS / "breast_cancer.csv"), "diagnosis")]
    for name, loader in (("sk_diabetes", sk.load_diabetes), ("sk_breast_cancer", sk.load_breast_cancer),
                         ("sk_wine", sk.load_wine)):
        frame = loader(as_frame=True).frame
        tables.append((name, frame, "target"))
    return tables


def _held_out_scores(tmp_path, name, frame, target, seed):
    """Train a small model on 40% of the rows (with a validation file of 20%, whose scores
    model.npz must hold); return the nonconformity scores of the other 60%, the held-out rows,
    computed through nnctl's evaluate path."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(frame))
    cut1, cut2 = int(0.4 * len(frame)), int(0.6 * len(frame))
    train, val, rest = (frame.iloc[order[:cut1]], frame.iloc[order[cut1:cut2]], frame.iloc[order[cut2:]])
    for part, rows in (("train", train), ("val", val), ("rest", rest)):
        rows.to_csv(tmp_path / f"{name}-{part}-{seed}.csv", index=False)
    task = "regression" if "diabetes" in name else "classification"
    run = _train(tmp_path, tmp_path / f"{name}-train-{seed}.csv", target, f"model.task={task}",
                 f"data.validation_path={tmp_path / f'{name}-val-{seed}.csv'}", f"seed={seed}",
                 name=f"{name}-{seed}")
    model = load_model(run)
    from nnctl.commands.predict import labelled_outputs

    def scores(part):
        y, out = labelled_outputs(model, tmp_path / f"{name}-{part}-{seed}.csv")
        if task == "regression":
            return np.abs(y - out)
        return 1 - out[np.arange(len(y)), y].astype(np.float64)

    # training encodes the validation file through the dataset, predict through the model's
    # encoder: the same float32 inputs to within rounding
    np.testing.assert_allclose(model.conformal_scores, np.sort(scores("val")), rtol=1e-5, atol=1e-5)
    return run, scores("rest"), tmp_path / f"{name}-rest-{seed}.csv"


@pytest.mark.parametrize("name,frame,target", _tables(), ids=[t[0] for t in _tables()])
def test_held_out_coverage_is_within_three_points_of_the_level(tmp_path, name, frame, target):
    """Finite-sample: for three seeds (each its own split and initial weights), the held-out rows
    are cut 400 times into a calibration half and a test half; the mean test coverage of the
    calibration half's quantile must be within 3 points of the level. One nnctl evaluate of the
    model's own stored quantile on the held-out file agrees with the scores it is built from."""
    means = {level: [] for level in LEVELS}
    for seed in range(3):
        run, held_out, rest_file = _held_out_scores(tmp_path, name, frame, target, seed)
        rng = np.random.default_rng(100 + seed)
        n = len(held_out) // 2
        for level in LEVELS:
            draws = []
            for _ in range(400):
                order = rng.permutation(len(held_out))
                q = conformal_quantile(np.sort(held_out[order[:n]]), level)
                draws.append(np.mean(held_out[order[n:]] <= q))
            means[level].append(np.mean(draws))
            option = "interval" if "diabetes" in name else "sets"
            report = evaluate_csv(run, rest_file, **{option: level})
            q = half_width(load_model(run), level, f"--{option}") + (SET_TOLERANCE if option == "sets" else 0)
            assert report["coverage"] == pytest.approx(np.mean(held_out <= q))
    for level in LEVELS:
        assert abs(np.mean(means[level]) - level) <= 0.03, (name, level, means[level])


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_stored_quantile_covers_a_large_synthetic_held_out_set(tmp_path, task):
    """End to end: the model's own validation scores (500 rows) against 20,000 fresh rows from
    the same distribution, over three seeds: evaluate's coverage is within 3 points."""
    rng = np.random.default_rng(7)

    def rows(n):
        x = rng.normal(size=(n, 3))
        signal = x[:, 0] + np.sin(2 * x[:, 1])
        if task == "regression":
            y = signal + rng.normal(scale=0.5 + 0.5 * np.abs(x[:, 2]), size=n)  # noise that varies by row
        else:
            y = np.array(["a", "b", "c"], dtype=object)[np.digitize(signal + rng.normal(scale=0.7, size=n), [-0.7, 0.7])]
        return pd.DataFrame({"x0": x[:, 0], "x1": x[:, 1], "x2": x[:, 2], "y": y})

    rows(2000).to_csv(tmp_path / "train.csv", index=False)
    rows(20000).to_csv(tmp_path / "fresh.csv", index=False)
    option = "interval" if task == "regression" else "sets"
    coverage = {level: [] for level in LEVELS}
    for seed in range(3):
        run = _train(tmp_path, tmp_path / "train.csv", "y", f"model.task={task}", "data.validation_split=0.25",
                     f"seed={seed}", name=f"s{seed}")
        assert load_model(run).meta["conformal"]["n"] == 500
        for level in LEVELS:
            coverage[level].append(evaluate_csv(run, tmp_path / "fresh.csv", **{option: level})["coverage"])
    for level in LEVELS:
        assert abs(np.mean(coverage[level]) - level) <= 0.03, (level, coverage[level])
