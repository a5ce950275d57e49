"""`nnctl explain`: which of its columns a saved model relies on.

    result = explain_file(run, "datasets/iris.csv")                      # permutation importance
    result = explain_file(run, "datasets/iris.csv", method="gradient")   # gradient × input
    result["columns"]    # [{"column", "importance", "std"}, ...], most important first

Both work per *original* column: a one-hot group, or an embedded column, counts as one.

Permutation: the drop in a metric when one column's values are shuffled among the rows, so the
model sees that column's values but not their link to the rest of the row (Breiman 2001;
scikit-learn's `permutation_importance`). Encoding is row by row, so shuffling a column's
encoded inputs together is the same as shuffling the raw column and encoding it again: the
table is encoded once, as predict does, and each shuffle reuses it. The table is read in chunks
and shuffled within each; every metric but roc_auc and average_precision is summed over the
chunks exactly (a confusion matrix, log-loss and squared-error sums); those two are averaged over
chunks weighted by rows, exact when the table is one chunk.

Gradient: the mean over rows of |∂s/∂x_j · x_j| summed over a column's inputs, s the predicted
class's logit (the positive class's logit for two classes, the prediction in the target's units
for a regression), x the scaled inputs the network sees, by the network's own backward pass. An
embedded column's input is its code, which has no derivative: its looked-up row stands in for
it, each of its numbers an input.
"""
from __future__ import annotations

import numpy as np

from ..data.scaling import from_training
from ..errors import NnctlError, did_you_mean
from ..nn.embedding import Embedding
from ..nn.metrics import CLASSIFICATION_METRICS, REGRESSION_METRICS

METHODS = ("permutation", "gradient")
REPEATS, SEED = 5, 0
# the std of the mean falls as 1/√R: past this it no longer moves, and each repeat costs a pass
# over the file per column and (columns × repeats) summed stats in memory
MAX_REPEATS = 1000
LOWER_IS_BETTER = ("log_loss", "mse", "rmse", "mae")
CONFUSION = ("accuracy", "balanced_accuracy", "precision", "recall", "f1")


def column_blocks(model) -> list[tuple[str, slice]]:
    """(original column, the slice of its encoded inputs), in the model's input order."""
    encoder, blocks, start = model.encoder, [], 0
    for f in encoder.features:
        width = len(encoder.categories[f]) if f in encoder.categories and f not in encoder.embedding else 1
        blocks.append((f, slice(start, start + width)))
        start += width
    return blocks


def metric_choices(model) -> tuple:
    if model.task == "regression":
        return REGRESSION_METRICS
    return tuple(m for m in CLASSIFICATION_METRICS if m != "average_precision" or len(model.classes) == 2)


def check_metric(model, metric) -> str:
    """--metric, or the model's main metric (what training logs: accuracy or r2)."""
    from ..training.scoring import metric_name

    if metric is None:
        return metric_name(model.task)
    choices = metric_choices(model)
    if metric not in choices:
        raise NnctlError(f"unknown metric '{metric}' for this {model.task} model{did_you_mean(metric, choices)}",
                         "--metric", f"choose one of {', '.join(choices)}")
    return metric


class Tally:
    """One metric as sums that add up over chunks: `stats(y, out)` of a chunk, `value` of the
    summed stats. y: class indices or the target in its units; out: probabilities (rows,
    classes) or predictions in the target's units."""

    def __init__(self, model, metric: str):
        self.model, self.metric = model, metric
        self.sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
        if model.task == "regression":
            scaler = model.meta.get("target_scaler")
            # sums of squares around the training mean, not 0: no cancellation for a far-off mean
            self.shift = float(np.asarray(scaler["offset"]).reshape(-1)[0]) if scaler else 0.0

    def outputs(self, X):
        model = self.model
        return model.values_from_inputs(X) if model.task == "regression" else model.proba_from_inputs(X)

    def stats(self, y, out) -> np.ndarray:
        from ..nn import metrics

        n, name = float(len(y)), self.metric
        if self.model.task == "regression":
            error = np.asarray(out, dtype=np.float64).reshape(len(y)) - y
            t = y - self.shift
            return np.array([n, error @ error, np.abs(error).sum(), t.sum(), t @ t])
        if name in CONFUSION:
            k = len(self.model.classes)
            return metrics.confusion_matrix(y, out.argmax(axis=1), k).ravel().astype(np.float64)
        if name == "log_loss":
            return np.array([metrics.log_loss(y, out) * n, n])
        value = metrics.roc_auc(y, out) if name == "roc_auc" else metrics.average_precision(y == 1, out[:, 1])
        return np.array([value * n, n]) if np.isfinite(value) else np.zeros(2)

    def value(self, s) -> float:
        from ..nn.metrics import confusion_scores

        name = self.metric
        if self.model.task == "regression":
            n, sse, sae, total, squares = s
            if name in ("mse", "rmse", "mae"):
                mean = (sae if name == "mae" else sse) / n
                return float(np.sqrt(mean) if name == "rmse" else mean)
            ss_tot = squares - total * total / n
            return float(1 - sse / ss_tot if ss_tot > 0 else (1.0 if sse == 0 else 0.0))
        if name in CONFUSION:
            k = len(self.model.classes)
            return confusion_scores(s.reshape(k, k))[name]
        return float(s[0] / s[1]) if s[1] else float("nan")


def permutation_importance(model, parts, metric=None, repeats: int = REPEATS, seed: int = SEED,
                           where: str = "data") -> dict:
    """Permutation importance over `parts`, an iterable of (X, y) chunks: X encoded (rows,
    inputs), y as `Tally` takes it. Each repeat shuffles each column once within each chunk;
    `importance` is the mean of the repeats' drops (baseline − shuffled score, for a loss
    shuffled − baseline: larger always means more relied on) and `std` their standard
    deviation (numpy's, ddof 0, as scikit-learn's)."""
    metric = check_metric(model, metric)
    check_repeats(repeats)
    tally = Tally(model, metric)
    return _permutation(model, [tally], ((X, [y]) for X, y in parts), lambda X: [tally.outputs(X)], repeats, seed,
                        where)[0]


def targets_permutation_importance(model, parts, repeats: int = REPEATS, seed: int = SEED,
                                   where: str = "data") -> dict:
    """Several targets: `permutation_importance` of each target with its main metric (r2 or
    accuracy), from one forward pass per shuffle; `parts` yields (X, [y of each target]).
    {"method", "rows", "repeats", "seed", "targets": {target: {"metric", "baseline", "columns"}}}."""
    views = model.targets
    tallies = [Tally(view, check_metric(view, None)) for view in views]

    def outputs(X):
        out = model.network_outputs(X)
        return [v.values(out) if v.task == "regression" else v.proba(out) for v in views]

    results = _permutation(model, tallies, parts, outputs, repeats, seed, where)
    return {"method": "permutation", "rows": results[0]["rows"], "repeats": repeats, "seed": seed,
            "targets": {v.name: {k: r[k] for k in ("metric", "baseline", "columns")} for v, r in zip(views, results)}}


def _permutation(model, tallies, parts, outputs, repeats: int, seed: int, where: str) -> list[dict]:
    """Each tally's permutation result over `parts` (X, [y per tally]); `outputs(X)` gives each
    tally's outputs of one forward pass."""
    blocks = column_blocks(model)
    rng = np.random.default_rng(seed)
    base, shuffled, rows = None, None, 0
    for X, ys in parts:
        first = [t.stats(y, o) for t, y, o in zip(tallies, ys, outputs(X))]
        if base is None:
            base, shuffled = first, [np.zeros((len(blocks), repeats, len(f))) for f in first]
        else:
            base = [b + f for b, f in zip(base, first)]
        rows += len(X)
        work = X.copy()
        for c, (_, cols) in enumerate(blocks):
            for r in range(repeats):
                work[:, cols] = X[rng.permutation(len(X)), cols]
                for k, (t, y, o) in enumerate(zip(tallies, ys, outputs(work))):
                    shuffled[k][c, r] += t.stats(y, o)
            work[:, cols] = X[:, cols]
    if not rows:
        raise NnctlError("data file has no rows to explain", where)
    return [_dropped(t, b, sh, blocks, rows, repeats, seed) for t, b, sh in zip(tallies, base, shuffled)]


def _dropped(tally, base, shuffled, blocks, rows: int, repeats: int, seed: int) -> dict:
    baseline = tally.value(base)
    scores = np.array([[tally.value(s) for s in per_column] for per_column in shuffled])
    drops = tally.sign * (baseline - scores)
    importance = drops.mean(axis=1)
    # drops of +1/n and −1/n row (accuracy) cancel to ±1e-17 rather than 0: rounding, not
    # importance, which would show as "-2.220e-17" in the table and as a hairline bar
    scale = np.nanmax(np.abs(np.append(scores, baseline)), initial=0.0)
    importance[np.abs(importance) <= 1e-12 * scale] = 0.0
    return _result("permutation", tally.metric, blocks, importance, drops.std(axis=1), rows,
                   baseline=baseline, repeats=repeats, seed=seed)


def gradient_importance(model, parts, where: str = "data") -> dict:
    """Mean |∂s/∂x · x| per original column over `parts`, an iterable of encoded X chunks;
    `std` is its spread over the rows (not an uncertainty of the mean)."""
    network, blocks = model.network, column_blocks(model)
    if network.members is not None:
        raise NnctlError(f"gradient importance of an ensemble of {network.members} members is not defined yet",
                         "--method", "use --method permutation")
    first = network.layers[0]
    embedded = isinstance(first, Embedding)
    places = _embedded_places(first, blocks) if embedded else [cols for _, cols in blocks]
    total = np.zeros(len(blocks))
    squares = np.zeros(len(blocks))
    rows = 0
    for X in parts:
        inputs, grad = network.input_gradient(X, _seed(model, X), at=1 if embedded else 0)
        contribution = np.abs(inputs.astype(np.float64) * grad)
        per_row = np.stack([contribution[:, cols].sum(axis=1) for cols in places], axis=1)
        total += per_row.sum(axis=0)
        squares += (per_row * per_row).sum(axis=0)
        rows += len(X)
    if not rows:
        raise NnctlError("data file has no rows to explain", where)
    mean = total / rows
    std = np.sqrt(np.maximum(squares / rows - mean * mean, 0.0))
    output = {"softmax": "predicted class's logit", "sigmoid": f"logit of class {model.classes[1]}" if
              model.classes else "logit"}.get(network.output_head, "prediction")
    return _result("gradient", "gradient_x_input", blocks, mean, std, rows, output=output)


def _seed(model, X) -> np.ndarray | None:
    """Which output to differentiate: the predicted class's logit for softmax; the one logit
    for sigmoid; the prediction in the target's units for a regression (its scale)."""
    network = model.network
    if network.output_head == "softmax":
        predicted = network.predict_output(X).argmax(axis=1)
        return np.eye(network.n_outputs, dtype=network.dtype)[predicted]
    scaler = model.meta.get("target_scaler")
    if model.task == "regression" and scaler:
        return np.asarray(scaler["scale"], dtype=network.dtype)
    return None


def _embedded_places(layer, blocks) -> list[slice]:
    """Where each original column sits in the embedding layer's output: `keep` (the inputs that
    are not codes, in order), then each code column's looked-up row."""
    places = []
    ends = np.cumsum([0] + layer.widths)
    for _, cols in blocks:
        if cols.start in layer.columns:
            k = layer.columns.index(cols.start)
            places.append(slice(len(layer.keep) + ends[k], len(layer.keep) + ends[k + 1]))
        else:
            start = int(np.searchsorted(layer.keep, cols.start))
            places.append(slice(start, start + cols.stop - cols.start))
    return places


def _result(method, metric, blocks, importance, std, rows, **more) -> dict:
    order = np.argsort(-importance, kind="stable")
    columns = [{"column": blocks[i][0], "importance": float(importance[i]), "std": float(std[i])} for i in order]
    return {"method": method, "metric": metric, "columns": columns, "rows": int(rows), **more}


def check_repeats(repeats) -> None:
    if not 1 <= repeats <= MAX_REPEATS:
        raise NnctlError(f"--repeats must be at least 1 and at most {MAX_REPEATS}, got {repeats}", "--repeats",
                         f"the default is {REPEATS}: more repeats give a smaller std of the mean")


def check_options(method: str, metric=None, repeats=None, seed=None) -> None:
    """--method is one of METHODS; --metric, --repeats and --seed belong to permutation."""
    if method not in METHODS:
        raise NnctlError(f"unknown method '{method}'{did_you_mean(method, METHODS)}", "--method",
                         f"choose {' or '.join(METHODS)}")
    if method == "gradient":
        given = [flag for flag, value in (("--metric", metric), ("--repeats", repeats), ("--seed", seed))
                 if value is not None]
        if given:
            raise NnctlError(f"{given[0]} applies to --method permutation; the gradient method uses neither "
                             "a metric nor random shuffles", given[0], f"leave {given[0]} out")
    else:
        if repeats is not None:
            check_repeats(repeats)
        if seed is not None and seed < 0:
            raise NnctlError(f"--seed must be a whole number of 0 or more, got {seed}", "--seed",
                             "e.g. --seed 0 (a seed only picks the shuffles; any other number is as good)")


def explain(model, data_path, method: str = "permutation", metric=None, repeats=None, seed=None,
            chunk_rows: int | None = None, given_as="the DATA argument") -> dict:
    """Importance of each original column of a loaded model on a table (read in chunks): see
    `permutation_importance` (the table needs the target column) and `gradient_importance`.
    Several targets: `targets_permutation_importance`, each target with its main metric."""
    from .predict import _chunks, _where, labelled_chunks

    check_options(method, metric, repeats, seed)
    if model.targets is not None:
        return _explain_targets(model, data_path, method, metric, repeats, seed, chunk_rows, given_as)
    if method == "gradient":
        where = _where(data_path)
        frames = _chunks(model, data_path, list(model.encoder.features), chunk_rows, given_as=given_as)
        return gradient_importance(model, (model.inputs(frame, where) for frame in frames), where)
    check_metric(model, metric)  # before the file is read
    parts = labelled_chunks(model, data_path, chunk_rows, given_as)
    result = permutation_importance(model, parts, metric, REPEATS if repeats is None else repeats,
                                    SEED if seed is None else seed, _where(data_path))
    _check_measurable(result, _where(data_path))
    return result


def _explain_targets(model, data_path, method, metric, repeats, seed, chunk_rows, given_as) -> dict:
    from ..data.targets import not_yet
    from .predict import _chunks, _where, truth_of

    for flag, given in (("--method gradient", method == "gradient"), ("--metric", metric is not None)):
        if given:
            raise not_yet(f"explain {flag}", str(model.path), f"leave {flag.split()[0]} out: permutation importance "
                          "ranks the columns for each target by its own metric (r2 or accuracy)")
    where, views = _where(data_path), model.targets
    columns = list(dict.fromkeys(model.encoder.features + [v.name for v in views]))
    parts = ((model.inputs(chunk, where), [truth_of(v, chunk, where) for v in views])
             for chunk in _chunks(model, data_path, columns, chunk_rows, given_as=given_as))
    result = targets_permutation_importance(model, parts, REPEATS if repeats is None else repeats,
                                            SEED if seed is None else seed, where)
    for own in result["targets"].values():
        _check_measurable({**own, "rows": result["rows"]}, where)
    return result


def _check_measurable(result: dict, where: str) -> None:
    """A permutation result that measures nothing is an error, not a table of zeros or nulls:
    one row (every shuffle leaves it in place), or a metric undefined on the file (roc_auc or
    average_precision where a class has no rows)."""
    if result["rows"] < 2:
        raise NnctlError(f"permutation importance needs at least 2 rows to shuffle, and the file has "
                         f"{result['rows']}", where, "give more rows, or use --method gradient, which works per row")
    if not np.isfinite(result["baseline"]):
        metric = result["metric"]
        raise NnctlError(f"--metric {metric} is undefined on this file: a class it ranks against the others has "
                         "no rows in it", where, "give rows of every class, or choose another --metric (the "
                         "default, accuracy, is defined on any rows)")


def explain_file(model_path, data_path, method: str = "permutation", metric=None, repeats=None, seed=None,
                 chunk_rows: int | None = None) -> dict:
    """`explain` of the model saved at `model_path` (a run folder or its model.npz)."""
    from ..runs.model import load_model

    return explain(load_model(model_path), data_path, method, metric, repeats, seed, chunk_rows)


def importance_frame(result: dict):
    """The result's columns as a DataFrame: column, importance, std (what --output writes);
    several targets: a `target` column first, each target's columns in turn."""
    import pandas as pd

    if "targets" in result:
        rows = [{"target": name, **c} for name, own in result["targets"].items() for c in own["columns"]]
        return pd.DataFrame(rows, columns=["target", "column", "importance", "std"])
    return pd.DataFrame(result["columns"], columns=["column", "importance", "std"])


IMPORTANCE_NEEDS_PART = ("report.importance is on, but this run has neither a test part (data.test_path) nor a "
                         "validation part: no importance.csv is written")


def run_importance(model, dataset, test_path, seed: int = SEED) -> dict | None:
    """What `train` records when `report.importance` is on: permutation importance with the
    model's main metric on the test part (data.test_path) if there is one, else on the
    validation part; None when there is neither. Adds `part` to the result."""
    from .predict import labelled_chunks

    if test_path:
        parts, part = labelled_chunks(model, test_path, given_as="data.test_path"), "test"
    elif len(dataset.X_val):
        y = np.asarray(dataset.y_val)
        if model.task == "regression":  # the dataset holds it scaled; metrics are in its units
            y = from_training(y.astype(np.float64).reshape(len(y), -1), model.meta.get("target_scaler"))[:, 0]
        parts, part = [(dataset.X_val, y)], "validation"
    else:
        return None
    return {**permutation_importance(model, parts, None, REPEATS, seed, where=f"the {part} part"), "part": part}
