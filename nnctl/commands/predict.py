"""`nnctl predict` and `nnctl evaluate`: a saved model on a table (CSV, a stream, or Parquet),
read in chunks of rows so memory stays bounded.

    predictions = predict_csv(run, "datasets/iris.csv")  # -> DataFrame
    report = evaluate_csv(run, "datasets/iris.csv")      # -> dict of metrics
"""
from __future__ import annotations

import numpy as np

from ..errors import NnctlError, did_you_mean

PREDICT_CHUNK_CELLS = 20_000_000  # cells parsed at a time: about 160 MB as float64


def _chunks(model, data_path, columns, chunk_rows=None, as_text=(), given_as="the DATA argument"):
    """The table in chunks of rows, sized by its column count so memory stays bounded however
    long or wide the file is."""
    from ..data.tables import open_table, read_table

    table = open_table(data_path, None, given_as=given_as)
    if chunk_rows is None:
        chunk_rows = max(1000, PREDICT_CHUNK_CELLS // max(len(table.header), 1))
    return read_table(table, columns=columns, chunksize=chunk_rows, decimal=model.encoder.decimal, as_text=as_text)


def check_threshold(model, threshold) -> None:
    """--threshold is a probability, for two-class models."""
    if threshold is None:
        return
    if not 0.0 <= threshold <= 1.0:
        raise NnctlError(f"--threshold must be a probability between 0 and 1, got {threshold:g}", "--threshold")
    if model.task == "regression":
        raise NnctlError("--threshold turns a class probability into a class, but this model is a regression "
                         "(it predicts numbers): leave --threshold out", "--threshold")
    if len(model.classes) != 2:
        raise NnctlError(f"--threshold applies to two-class models; this one has {len(model.classes)} classes",
                         "--threshold", "leave it out: the predicted class is the most probable one")


def positive_index(model, positive=None) -> int:
    """Where the positive class is in `model.classes`: the one thresholds, ROC and PR refer to.
    `positive` (a label, from --positive) overrides the model's own, which training put second."""
    if positive is None:
        return 1
    if model.task != "classification" or len(model.classes) != 2:
        kind = "a regression" if model.task == "regression" else f"{len(model.classes)} classes"
        raise NnctlError(f"--positive applies to two-class models; this one has {kind}", "--positive")
    from ..data.encoding import label_index

    index = label_index(positive, model.classes)
    if index is None:
        raise NnctlError(f"--positive '{positive}' is not a class of this model", "--positive",
                         f"its classes: {', '.join(map(str, model.classes))}")
    return index


def decide(model, proba: np.ndarray, threshold=None, positive: int = 1) -> np.ndarray:
    """Class indices: the most probable class, or for two classes with a threshold T the
    positive class (index `positive`) whenever its probability is at least T."""
    if threshold is None:
        return proba.argmax(axis=1)
    return np.where(proba[:, positive] >= threshold, positive, 1 - positive).astype(np.int64)


def predict_frames(model, data_path, proba: bool = False, chunk_rows: int | None = None, threshold=None,
                   keep=(), positive=None):
    """DataFrames of predictions for the table, one per chunk of rows: the `keep` columns first,
    exactly as written; then `prediction` (original labels, or numbers for regression) and with
    `proba` one `p_<class>` column per class. Columns are matched by name; extra columns are
    ignored, missing ones are an error."""
    import pandas as pd

    if proba and model.task == "regression":
        raise NnctlError("--proba gives class probabilities, but this model is a regression", str(model.path),
                         "leave out --proba: the prediction column holds the predicted values")
    check_threshold(model, threshold)
    chosen = positive_index(model, positive)
    keep = list(dict.fromkeys(keep))
    taken = set(keep)
    for name in ("prediction", *(f"p_{c}" for c in (model.classes or []) if proba)):
        if name in taken:
            raise NnctlError(f"--keep {name} would give the output two '{name}' columns", "--keep",
                             "rename that column in the input")
    columns = list(dict.fromkeys(model.encoder.features + keep))
    as_text = [c for c in keep if c not in model.encoder.features]
    where = _where(data_path)
    for chunk in _chunks(model, data_path, columns, chunk_rows, as_text):
        yield predict_frame(model, chunk, where, proba, threshold, keep, chosen)


def predict_frame(model, chunk, where: str, proba: bool = False, threshold=None, keep=(), chosen: int = 1):
    """The predictions for one DataFrame of rows, as `predict_frames` gives them (the MLflow
    pyfunc calls this too, so both predict alike); `chosen` is `positive_index`'s answer."""
    import pandas as pd

    X = model.inputs(chunk, where)
    frame = chunk[list(keep)].reset_index(drop=True) if keep else pd.DataFrame(index=range(len(chunk)))
    if model.task == "regression":
        values = model.values_from_inputs(X)
        if values.ndim == 1:
            frame["prediction"] = values
        else:
            for i in range(values.shape[1]):
                frame[f"prediction_{i}"] = values[:, i]
    else:
        p = model.proba_from_inputs(X)
        frame["prediction"] = pd.Series(np.asarray(model.classes, dtype=object)[decide(model, p, threshold, chosen)],
                                        dtype=object)
        if proba:
            for i, c in enumerate(model.classes):
                frame[f"p_{c}"] = p[:, i]
    return frame


def _where(data_path) -> str:
    from ..data.csvfile import STDIN

    return "stdin" if str(data_path) == STDIN else str(data_path)


def predict_csv(model_path, data_path, proba: bool = False, threshold=None, keep=(), positive=None):
    """All predictions for a table as one DataFrame (see `predict_frames`)."""
    import pandas as pd

    from ..runs.model import load_model

    model = load_model(model_path)
    frames = list(predict_frames(model, data_path, proba, threshold=threshold, keep=keep, positive=positive))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"prediction": []})


def evaluate(model, data_path, threshold=None, chunk_rows: int | None = None, given_as="the DATA argument",
             positive=None) -> dict:
    """Every metric of a loaded model on a labelled table (scikit-learn's definitions): for
    classification accuracy, balanced_accuracy, precision, recall, f1 (macro), log_loss, roc_auc,
    average_precision (two classes, of `positive_class`: the model's, or `positive`), per_class
    and the confusion matrix with its labels; for regression mse, rmse, mae, r2."""
    check_threshold(model, threshold)
    positive_index(model, positive)  # an unknown label is refused before the file is read
    y, out = labelled_outputs(model, data_path, chunk_rows, given_as)
    return score_outputs(model, y, out, threshold, positive)


def labelled_outputs(model, data_path, chunk_rows: int | None = None, given_as="the DATA argument"):
    """(truth, outputs) of a loaded model on a labelled table: class indices and probabilities
    (rows, classes), or the target and the predictions in the target's units."""
    from ..data.encoding import category_label

    target = model.meta["target"]
    where = _where(data_path)
    truths, outputs = [], []
    index = {category_label(c): i for i, c in enumerate(model.classes or [])}
    for chunk in _chunks(model, data_path, list(dict.fromkeys(model.encoder.features + [target])), chunk_rows,
                         given_as=given_as):
        if chunk[target].isna().any():
            raise NnctlError(f"target column '{target}' has missing values", where, "drop those rows to evaluate")
        X = model.inputs(chunk, where)
        if model.task == "regression":
            truths.append(chunk[target].to_numpy(dtype=np.float64))
            outputs.append(model.values_from_inputs(X))
        else:
            keys = [category_label(v) for v in chunk[target]]
            unknown = [k for k in keys if k not in index]
            if unknown:
                raise NnctlError(f"label '{unknown[0]}' in column '{target}' is not a class the model knows", where,
                                 f"its classes: {', '.join(map(str, model.classes))}")
            truths.append(np.array([index[k] for k in keys], dtype=np.int64))
            outputs.append(model.proba_from_inputs(X))
    if not truths:
        raise NnctlError("data file has no rows to evaluate", where)
    return np.concatenate(truths), np.concatenate(outputs)


def score_outputs(model, y, out, threshold=None, positive=None) -> dict:
    """`evaluate`'s report from `labelled_outputs`; `positive`: the label two-class metrics
    refer to (default the model's positive class)."""
    from ..nn.metrics import classification_report, regression_report

    report = {"task": model.task, "rows": int(len(y))}
    if model.task == "regression":
        return {**report, **regression_report(y, out)}
    labels = list(model.classes)
    if len(labels) == 2:
        if positive_index(model, positive) == 0:  # the metrics take the second class as positive: swap
            y, out, labels = 1 - y, out[:, ::-1], labels[::-1]
        report["positive_class"] = labels[1]
    if threshold is not None:
        report["threshold"] = threshold
    metrics = classification_report(y, decide(model, out, threshold), out, len(labels), labels)
    return {**report, **metrics, "labels": labels}


def evaluate_csv(model_path, data_path, chunk_rows: int | None = None, threshold=None, positive=None) -> dict:
    """`evaluate` of the model saved at `model_path` (a run folder or its model.npz)."""
    from ..runs.model import load_model

    return evaluate(load_model(model_path), data_path, threshold, chunk_rows, positive=positive)


PER_CLASS = ("precision", "recall", "f1")


def check_thresholds(report: dict, fail_under: dict, fail_over: dict) -> list[str]:
    """Messages for every missed threshold: `fail_under` {metric: lowest passing value},
    `fail_over` {metric: highest passing value}; a metric is a name of the report or, for
    classification, `per_class.<label>.<precision|recall|f1>`. An unknown metric name or label
    is an NnctlError."""
    from ..nn.metrics import CLASSIFICATION_METRICS, REGRESSION_METRICS

    classification = report["task"] == "classification"
    valid = [m for m in (CLASSIFICATION_METRICS if classification else REGRESSION_METRICS) if m in report]
    missed = []
    for flag, limits in (("--fail-under", fail_under), ("--fail-over", fail_over)):
        for name, limit in limits.items():
            if classification and name.startswith("per_class."):
                value = _per_class_value(report, name, flag)
            elif name not in valid:
                shown = valid + ["per_class.<label>.<precision|recall|f1>"] if classification else valid
                raise NnctlError(f"unknown metric '{name}'{did_you_mean(name, valid)}", flag,
                                 f"valid metrics for this model: {', '.join(shown)}")
            else:
                value = report[name]
            if flag == "--fail-under" and not (value is not None and value >= limit):
                missed.append(f"{name} {_shown(value)} is under {limit:g}")
            if flag == "--fail-over" and not (value is not None and value <= limit):
                missed.append(f"{name} {_shown(value)} is over {limit:g}")
    return missed


def _per_class_value(report: dict, name: str, flag: str) -> float:
    """The value of `per_class.<label>.<metric>`; the label may itself hold dots (1.5)."""
    label, dot, metric = name[len("per_class."):].rpartition(".")
    labels = list(report["per_class"])
    if not dot:
        raise NnctlError(f"'{name}' needs a class and a metric", flag,
                         f"e.g. {flag} per_class.{labels[-1]}.recall=0.9; per-class metrics: {', '.join(PER_CLASS)}")
    if label not in labels:
        raise NnctlError(f"'{name}' names class '{label}', which this model does not have"
                         f"{did_you_mean(label, labels)}", flag,
                         f"its classes: {', '.join(labels)}; e.g. {flag} per_class.{labels[-1]}.recall=0.9")
    if metric not in PER_CLASS:
        raise NnctlError(f"unknown per-class metric '{metric}' in '{name}'{did_you_mean(metric, PER_CLASS)}", flag,
                         f"per-class metrics: {', '.join(PER_CLASS)}, as in per_class.{label}.recall")
    return report["per_class"][label][metric]


def _shown(value) -> str:
    return "undefined" if value is None or value != value else f"{value:.4f}"
