"""`nnctl predict` and `nnctl evaluate`: a saved model on a CSV, read in chunks of rows.

    predictions = predict_csv(run, "datasets/iris.csv")  # -> DataFrame
    report = evaluate_csv(run, "datasets/iris.csv")      # -> dict of metrics
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import NnctlError, did_you_mean


PREDICT_CHUNK_CELLS = 20_000_000  # cells parsed at a time: about 160 MB as float64


def _chunks(model, data_path, columns, chunk_rows=None):
    """The CSV (or `-` for stdin) in chunks of rows, sized by its column count so memory stays
    bounded however long or wide the file is."""
    from ..data.csvfile import read_csv, sniff

    csv_file = sniff(data_path, None, given_as="the DATA argument")
    if chunk_rows is None:
        chunk_rows = max(1000, PREDICT_CHUNK_CELLS // max(len(csv_file.header), 1))
    return read_csv(csv_file, columns=columns, chunksize=chunk_rows, decimal=model.encoder.decimal)


def predict_frames(model, data_path, proba: bool = False, chunk_rows: int | None = None):
    """DataFrames of predictions for the CSV, one per chunk of rows: `prediction` (original
    labels, or numbers for regression) and with `proba` one `p_<class>` column per class.
    Columns are matched by name; extra columns are ignored, missing ones are an error."""
    import pandas as pd

    if proba and model.task == "regression":
        raise NnctlError("--proba gives class probabilities, but this model is a regression", str(model.path),
                         "leave out --proba: the prediction column holds the predicted values")
    where = _where(data_path)
    for chunk in _chunks(model, data_path, model.encoder.features, chunk_rows=chunk_rows):
        X = model.inputs(chunk, where)
        if model.task == "regression":
            values = model.values_from_inputs(X)
            frame = pd.DataFrame({"prediction": values} if values.ndim == 1 else
                                 {f"prediction_{i}": values[:, i] for i in range(values.shape[1])})
        else:
            p = model.proba_from_inputs(X)
            frame = pd.DataFrame({"prediction": pd.Series(model.labels(p), dtype=object)})
            if proba:
                for i, c in enumerate(model.classes):
                    frame[f"p_{c}"] = p[:, i]
        yield frame


def _where(data_path) -> str:
    from ..data.csvfile import STDIN

    return "stdin" if str(data_path) == STDIN else str(data_path)


def predict_csv(model_path, data_path, proba: bool = False):
    """All predictions for a CSV as one DataFrame (see `predict_frames`)."""
    import pandas as pd

    from ..runs.model import load_model

    model = load_model(model_path)
    frames = list(predict_frames(model, data_path, proba))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"prediction": []})


def evaluate_csv(model_path, data_path, chunk_rows: int | None = None) -> dict:
    """Every metric of the model on a labelled CSV (scikit-learn's definitions): for
    classification accuracy, balanced_accuracy, precision, recall, f1 (macro), log_loss and the
    confusion matrix with its labels; for regression mse, rmse, mae, r2."""
    from ..data.encoding import category_label
    from ..nn.metrics import classification_report, regression_report
    from ..runs.model import load_model

    model = load_model(model_path)
    target = model.meta["target"]
    where = _where(data_path)
    truths, outputs = [], []
    index = {category_label(c): i for i, c in enumerate(model.classes or [])}
    for chunk in _chunks(model, data_path, list(dict.fromkeys(model.encoder.features + [target])), chunk_rows):
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
    y, out = np.concatenate(truths), np.concatenate(outputs)
    report = {"task": model.task, "rows": int(len(y))}
    if model.task == "regression":
        return {**report, **regression_report(y, out)}
    metrics = classification_report(y, out.argmax(axis=1), out, len(model.classes))
    return {**report, **metrics, "labels": model.classes}


def check_thresholds(report: dict, fail_under: dict, fail_over: dict) -> list[str]:
    """Messages for every missed threshold: `fail_under` {metric: lowest passing value},
    `fail_over` {metric: highest passing value}. An unknown metric name is an NnctlError."""
    from ..nn.metrics import CLASSIFICATION_METRICS, REGRESSION_METRICS

    valid = CLASSIFICATION_METRICS if report["task"] == "classification" else REGRESSION_METRICS
    missed = []
    for flag, limits in (("--fail-under", fail_under), ("--fail-over", fail_over)):
        for name, limit in limits.items():
            if name not in valid:
                raise NnctlError(f"unknown metric '{name}'{did_you_mean(name, valid)}", flag,
                                 f"valid metrics for {report['task']}: {', '.join(valid)}")
            value = report[name]
            if flag == "--fail-under" and not value >= limit:
                missed.append(f"{name} {value:.4f} is under {limit:g}")
            if flag == "--fail-over" and not value <= limit:
                missed.append(f"{name} {value:.4f} is over {limit:g}")
    return missed
