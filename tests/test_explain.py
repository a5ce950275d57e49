"""explain's Python API: permutation importance and gradient × input per original column, on a
table where the truth is known, against scikit-learn's permutation_importance, and read in chunks."""
import numpy as np
import pandas as pd
import pytest

from nnctl.commands.explain import column_blocks, explain, permutation_importance
from nnctl.commands.predict import evaluate, labelled_chunks
from nnctl.commands.train import train_config
from nnctl.config import load_config
from nnctl.nn.embedding import Embedding
from nnctl.runs.model import load_model

from .conftest import DATASETS


def _two_that_matter(rows, seed):
    """a and b decide the class; n1..n3 are noise, c a categorical noise column."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({f"n{i}": rng.normal(size=rows) for i in (1, 2)})
    df["a"] = rng.normal(size=rows)
    df["n3"] = rng.normal(size=rows)
    df["c"] = rng.choice(["red", "green", "blue"], size=rows)
    df["b"] = rng.normal(size=rows)
    df["y"] = np.where(df["a"] - 1.5 * df["b"] > 0, "yes", "no")
    return df


def _train(tmp_path, df, data="", model="", training=""):
    """A model trained on `df` (saved as train.csv); `data`, `model`, `training`: more lines of
    those sections."""
    path = tmp_path / "train.csv"
    df.to_csv(path, index=False)
    config = tmp_path / "config.yaml"
    config.write_text(f"seed: 1\ndata:\n  path: {path}\n  target: y\n  categorical: [c]\n  validation_split: 0.0\n"
                      f"{data}model:\n  layers: [8]\n{model}training:\n  optimizer: adam\n  learning_rate: 0.02\n"
                      f"  iterations: 60\n  batch_size: 32\n  checkpoint_every: null\n{training}")
    return load_model(train_config(load_config(config), runs_dir=tmp_path / "runs", plot=False).run)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("synthetic")
    # l2 keeps the model from leaning on the noise columns; over 8 draws of this table, 31 of the
    # 32 noise intervals included 0 (and a, b ranked first in all): this draw is one of them
    model = _train(tmp, _two_that_matter(400, 0), training="  l2: 0.01\n")
    held_out = tmp / "held_out.csv"
    _two_that_matter(300, 1).to_csv(held_out, index=False)
    return model, held_out


def test_permutation_ranks_the_two_columns_that_matter_first_and_the_noise_near_zero(synthetic):
    model, held_out = synthetic
    result = explain(model, held_out, repeats=10)
    assert (result["method"], result["metric"], result["repeats"], result["seed"], result["rows"]) == \
        ("permutation", "accuracy", 10, 0, 300)
    columns = result["columns"]
    assert {c["column"] for c in columns[:2]} == {"a", "b"}
    assert columns[0]["column"] == "b"  # it weighs 1.5 times a
    assert all(c["importance"] > 0.15 for c in columns[:2])
    for c in columns[2:]:  # noise: its interval of mean ± 2 std includes 0
        assert c["importance"] - 2 * c["std"] <= 0 <= c["importance"] + 2 * c["std"], c
    # the one-hot group c=blue, c=green, c=red is one column
    assert sorted(c["column"] for c in columns) == ["a", "b", "c", "n1", "n2", "n3"]


def test_gradient_ranks_the_two_columns_that_matter_first(synthetic):
    model, held_out = synthetic
    result = explain(model, held_out, method="gradient")
    assert (result["method"], result["metric"], result["rows"]) == ("gradient", "gradient_x_input", 300)
    assert {c["column"] for c in result["columns"][:2]} == {"a", "b"}
    top, noise = result["columns"][1]["importance"], result["columns"][2]["importance"]
    assert top > 3 * noise


def test_the_same_seed_gives_the_same_importance_and_another_seed_another(synthetic):
    model, held_out = synthetic
    first, again = explain(model, held_out, seed=3), explain(model, held_out, seed=3)
    other = explain(model, held_out, seed=4)
    assert first["columns"] == again["columns"]
    assert first["columns"] != other["columns"]


def test_shuffling_a_columns_encoded_inputs_is_encoding_the_shuffled_raw_column(tmp_path):
    """Encoding is row by row (categories, the fill of missing values, scaling), so explain may
    shuffle the encoded block instead of re-encoding the table for every shuffle."""
    df = _two_that_matter(120, 2)
    df.loc[[3, 50], "a"] = np.nan
    df.loc[[7, 8], "c"] = None
    model = _train(tmp_path, df, data="  missing: mean\n")
    order = np.random.default_rng(0).permutation(len(df))
    X = model.inputs(df)
    for column, cols in column_blocks(model):
        shuffled = df.copy()
        shuffled[column] = df[column].to_numpy()[order]
        expected = X.copy()
        expected[:, cols] = X[order, cols]
        np.testing.assert_array_equal(model.inputs(shuffled), expected)


def _baseline(model, path, metric, chunk_rows):
    return permutation_importance(model, labelled_chunks(model, path, chunk_rows), metric, repeats=1)["baseline"]


@pytest.mark.parametrize("kind", ["binary", "iris", "regression"])
def test_summed_metrics_read_in_chunks_are_evaluates_exactly(kind, synthetic, tmp_path):
    if kind == "binary":
        model, path = synthetic
    elif kind == "iris":
        df = pd.read_csv(DATASETS / "iris.csv").rename(columns={"species": "y"}).assign(c="red")
        model, path = _train(tmp_path, df), tmp_path / "train.csv"
    else:
        df = _two_that_matter(200, 3).assign(y=lambda d: 3 * d["a"] - d["b"] + 100)
        model, path = _train(tmp_path, df, model="  task: regression\n"), tmp_path / "train.csv"
    report = evaluate(model, path, chunk_rows=37)  # the same chunks: the same float32 predictions
    exact = [m for m in report if m in ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "log_loss",
                                         "mse", "rmse", "mae", "r2")]
    assert len(exact) in (4, 6)
    for metric in exact:  # 37-row chunks: the sums of chunks give the whole table's score
        assert _baseline(model, path, metric, 37) == pytest.approx(report[metric], rel=1e-9, abs=1e-12), metric
    whole = evaluate(model, path)
    for metric in ("roc_auc", "average_precision"):  # exact in one chunk; averaged over chunks otherwise
        if metric in whole:
            assert _baseline(model, path, metric, None) == pytest.approx(whole[metric], rel=1e-12)


def test_permutation_agrees_with_scikit_learns_over_a_wrapper_of_the_same_model(tmp_path):
    from sklearn.base import BaseEstimator, RegressorMixin
    from sklearn.datasets import load_diabetes
    from sklearn.inspection import permutation_importance as sklearn_importance

    df = load_diabetes(as_frame=True).frame.rename(columns={"target": "y"})
    path = tmp_path / "diabetes.csv"
    df.to_csv(path, index=False)
    config = tmp_path / "config.yaml"
    config.write_text(f"data:\n  path: {path}\n  target: y\n  validation_split: 0.0\nmodel:\n  task: regression\n"
                      "  layers: [16]\ntraining:\n  optimizer: adam\n  learning_rate: 0.01\n  iterations: 100\n"
                      "  checkpoint_every: null\n")
    model = load_model(train_config(load_config(config), runs_dir=tmp_path / "runs", plot=False).run)

    class Wrapper(RegressorMixin, BaseEstimator):
        """The nnctl Model as a fitted scikit-learn regressor: predict on a DataFrame."""

        def fit(self, X, y):
            return self

        def predict(self, X):
            return model.predict(X)

    X = df.drop(columns="y")
    theirs = sklearn_importance(Wrapper(), X, df["y"], scoring="r2", n_repeats=10, random_state=0)
    ours = {c["column"]: c["importance"] for c in explain(model, path, repeats=10)["columns"]}
    spearman = pd.Series([ours[c] for c in X.columns]).corr(pd.Series(theirs.importances_mean), method="spearman")
    assert spearman >= 0.9, spearman


def test_an_embedded_column_is_one_column_for_both_methods(tmp_path):
    df = _two_that_matter(200, 4)
    model = _train(tmp_path, df, data="  embedding: {c: 2}\n")
    assert isinstance(model.network.layers[0], Embedding)
    for method in ("permutation", "gradient"):
        result = explain(model, tmp_path / "train.csv", method=method)
        assert sorted(c["column"] for c in result["columns"]) == ["a", "b", "c", "n1", "n2", "n3"]
        assert {c["column"] for c in result["columns"][:2]} == {"a", "b"}
        embedded = next(c for c in result["columns"] if c["column"] == "c")
        assert np.isfinite(embedded["importance"]) and embedded["std"] >= 0
    # gradient × input of the looked-up rows: not 0, as the code's own (underivable) input would give
    assert next(c for c in explain(model, tmp_path / "train.csv", method="gradient")["columns"]
                if c["column"] == "c")["importance"] > 0


def test_an_ensembles_gradient_importance_is_of_its_members_mean(tmp_path):
    model = _train(tmp_path, _two_that_matter(200, 0), model="  ensemble: 3\n", training="  dtype: float64\n")
    held_out = tmp_path / "held_out.csv"
    _two_that_matter(50, 1).to_csv(held_out, index=False)
    result = explain(model, held_out, method="gradient")
    assert result["output"] == "the 3 members' mean logit of class yes"
    assert {c["column"] for c in result["columns"][:2]} == {"a", "b"}
    # gradient × input of the members' mean logit: their gradients, each alone, averaged before |·|
    X = model.inputs(pd.read_csv(held_out), "held_out.csv")
    grad = np.mean([model.network.member(k).input_gradient(X)[1] for k in range(3)], axis=0)
    cols = dict(column_blocks(model))["a"]
    a = next(c for c in result["columns"] if c["column"] == "a")
    assert a["importance"] == pytest.approx(np.abs(X[:, cols] * grad[:, cols]).sum(axis=1).mean(), rel=1e-9)
