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
                                   where: str = "data", metrics: dict | None = None) -> dict:
    """Several targets: `permutation_importance` of each target with its main metric (r2 or
    accuracy), or of the targets `metrics` ({target: metric}) names with theirs, from one forward
    pass per shuffle; `parts` yields (X, [y of each of those targets]).
    {"method", "rows", "repeats", "seed", "targets": {target: {"metric", "baseline", "columns"}}}."""
    views = [v for v in model.targets if metrics is None or v.name in metrics]
    tallies = [Tally(view, check_metric(view, None if metrics is None else metrics[view.name])) for view in views]

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
    `std` is its spread over the rows (not an uncertainty of the mean). For an ensemble s is the
    members' mean (`Network.input_gradient`); where each member embeds the codes with its own
    table, the products are summed over the members before |·|, as the mean's linearization is."""
    network, blocks = model.network, column_blocks(model)
    [(mean, std)], rows = _gradient_x_input(model, parts, [lambda X: _seed(model, X)], where)
    output = {"softmax": "predicted class's logit", "sigmoid": f"logit of class {model.classes[1]}" if
              model.classes else "logit"}.get(network.output_head, "prediction")
    if network.members is not None:
        output = f"the {network.members} members' mean {output}"
    return _result("gradient", "gradient_x_input", blocks, mean, std, rows, output=output)


def targets_gradient_importance(model, parts, where: str = "data") -> dict:
    """Several targets: `gradient_importance` of each target's own output, its block of the last
    layer (its predicted class's logit, its positive class's logit, or its prediction in its
    units), from one pass over `parts`. {"method", "rows", "targets": {target: {"metric",
    "output", "columns"}}}."""
    views, blocks = model.targets, column_blocks(model)
    spreads, rows = _gradient_x_input(model, parts, [lambda X, v=v: _target_seed(model, v, X) for v in views], where)
    own = {}
    for view, (mean, std) in zip(views, spreads):
        output = ("prediction" if view.task == "regression" else f"logit of class {view.classes[1]}"
                  if len(view.classes) == 2 else "predicted class's logit")
        if model.network.members is not None:
            output = f"the {model.network.members} members' mean {output}"
        result = _result("gradient", "gradient_x_input", blocks, mean, std, rows, output=output)
        own[view.name] = {k: result[k] for k in ("metric", "output", "columns")}
    return {"method": "gradient", "rows": rows, "targets": own}


def _gradient_x_input(model, parts, seeders, where: str):
    """([(mean, std) of |∂s/∂x · x| per original column, one per seeder], rows): each
    seeder(X) gives `Network.input_gradient`'s seed of one output s."""
    network, blocks = model.network, column_blocks(model)
    first = network.layers[0]
    embedded = isinstance(first, Embedding)
    places = _embedded_places(first, blocks) if embedded else [cols for _, cols in blocks]
    total = np.zeros((len(seeders), len(blocks)))
    squares = np.zeros((len(seeders), len(blocks)))
    rows = 0
    for X in parts:
        for k, seeder in enumerate(seeders):
            inputs, grad = network.input_gradient(X, seeder(X), at=1 if embedded else 0)
            product = inputs.astype(np.float64) * grad
            contribution = np.abs(product.sum(axis=0) if product.ndim == 3 else product)
            per_row = np.stack([contribution[:, cols].sum(axis=1) for cols in places], axis=1)
            total[k] += per_row.sum(axis=0)
            squares[k] += (per_row * per_row).sum(axis=0)
        rows += len(X)
    if not rows:
        raise NnctlError("data file has no rows to explain", where)
    mean = total / rows
    std = np.sqrt(np.maximum(squares / rows - mean * mean, 0.0))
    return list(zip(mean, std)), rows


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


def _target_seed(model, view, X) -> np.ndarray:
    """`_seed` of one target of several: zero outside its block of the outputs; in it, a one-hot
    of its predicted class (softmax), 1 on its one logit (two classes), or its scale (a
    regression, so s is its prediction in its units, the identity transform's derivative)."""
    network = model.network
    seed = np.zeros((len(X), network.n_outputs), dtype=network.dtype)
    if view.task == "classification" and len(view.classes) > 2:
        predicted = view.block(network.predict_output(X)).argmax(axis=1)
        seed[np.arange(len(X)), view.start + predicted] = 1.0
    else:
        scaler = view.spec.get("target_scaler") if view.task == "regression" else None
        seed[:, view.start] = np.asarray(scaler["scale"]).reshape(-1)[0] if scaler else 1.0
    return seed


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
    """Several targets: each target's own importance (`targets_gradient_importance`, or
    `targets_permutation_importance` with each target's main metric); `--metric
    <target>.<metric>` ranks that one target by that metric."""
    from .predict import _chunks, _where, truth_of

    where, views = _where(data_path), model.targets
    if method == "gradient":
        frames = _chunks(model, data_path, list(model.encoder.features), chunk_rows, given_as=given_as)
        return targets_gradient_importance(model, (model.inputs(frame, where) for frame in frames), where)
    metrics = target_metrics(model, metric)  # before the file is read
    columns = list(dict.fromkeys(model.encoder.features + [v.name for v in views if v.name in metrics]))
    parts = ((model.inputs(chunk, where), [truth_of(v, chunk, where) for v in views if v.name in metrics])
             for chunk in _chunks(model, data_path, columns, chunk_rows, given_as=given_as))
    result = targets_permutation_importance(model, parts, REPEATS if repeats is None else repeats,
                                            SEED if seed is None else seed, where, metrics)
    for own in result["targets"].values():
        _check_measurable({**own, "rows": result["rows"]}, where)
    return result


def target_metrics(model, metric) -> dict:
    """{target: metric} that explain ranks: each target with its main metric (r2 or accuracy),
    or the one target `--metric <target>.<metric>` names, with that metric."""
    views = {v.name: v for v in model.targets}
    if metric is None:
        return {name: check_metric(v, None) for name, v in views.items()}
    name, _, own = metric.rpartition(".")
    if name not in views:
        raise NnctlError(f"--metric '{metric}' names no target of this model: give it as <target>.<metric>",
                         "--metric", f"e.g. {next(iter(views))}.{check_metric(next(iter(views.values())), None)}; "
                         f"the targets are {', '.join(views)}")
    choices = metric_choices(views[name])
    if own not in choices:
        raise NnctlError(f"unknown metric '{own}' for the {views[name].task} target '{name}'"
                         f"{did_you_mean(own, choices)}", "--metric",
                         f"choose one of {', '.join(f'{name}.{c}' for c in choices)}")
    return {name: own}


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

    if model.targets is not None:
        return _run_targets_importance(model, dataset, test_path, seed)
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


def _run_targets_importance(model, dataset, test_path, seed: int) -> dict | None:
    """Several targets: `run_importance` of each target with its main metric (r2 or accuracy),
    from one forward pass per shuffle; the result as `targets_permutation_importance` gives it,
    with `part`."""
    from .predict import _chunks, truth_of

    views = model.targets
    if test_path:
        where, part = "data.test_path", "test"
        columns = list(dict.fromkeys(model.encoder.features + [v.name for v in views]))
        parts = ((model.inputs(chunk, where), [truth_of(v, chunk, where) for v in views])
                 for chunk in _chunks(model, test_path, columns, None, given_as=where))
    elif len(dataset.X_val):
        part, y = "validation", np.asarray(dataset.y_val, dtype=np.float64).reshape(len(dataset.X_val), -1)
        # the dataset holds each regression target scaled, each class as its index
        truths = [from_training(y[:, j:j + 1], v.spec.get("target_scaler"))[:, 0] if v.task == "regression"
                  else y[:, j].astype(np.int64) for j, v in enumerate(views)]
        parts = [(dataset.X_val, truths)]
    else:
        return None
    return {**targets_permutation_importance(model, parts, REPEATS, seed, f"the {part} part"), "part": part}
