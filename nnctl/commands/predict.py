"""`nnctl predict` and `nnctl evaluate`: a saved model on a table (CSV, a stream, or Parquet),
read in chunks of rows so memory stays bounded.

    predictions = predict_csv(run, "datasets/iris.csv")  # -> DataFrame
    report = evaluate_csv(run, "datasets/iris.csv")      # -> dict of metrics
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.targets import MULTI
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
    if isinstance(threshold, (str, dict)):  # TARGET=T from the command line, {target: T} from serve
        shown = threshold if isinstance(threshold, str) else ",".join(f"{k}={v:g}" for k, v in threshold.items())
        raise NnctlError(f"--threshold {shown} names a target, and this model has one", "--threshold",
                         "give the probability alone, e.g. --threshold 0.3")
    if not 0.0 <= threshold <= 1.0:
        raise NnctlError(f"--threshold must be a probability between 0 and 1, got {threshold}", "--threshold")
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
    if isinstance(positive, dict):  # {target: label}, from serve
        raise NnctlError(f"--positive names a target ({', '.join(map(str, positive))}), and this model has one",
                         "--positive", "give the label alone")
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


def effective_threshold(model, threshold=None, chosen: int = 1) -> tuple[float | None, int]:
    """(threshold, index of the class it refers to): --threshold with the class --positive
    names, else the threshold saved in the model (`evaluate --choose-threshold --save`), which
    refers to the model's own positive class, else none (the most probable class wins)."""
    if threshold is None and model.task == "classification" and getattr(model, "threshold", None) is not None:
        return model.threshold, 1
    return threshold, chosen


def saved_threshold_note(model, threshold) -> str | None:
    """The stderr line that says a saved threshold decides the labels (None when --threshold
    is given or the model has none). Several targets: a line for each target whose saved
    threshold decides, unless --threshold names it."""
    if model.targets is not None:
        from .targets import target_thresholds

        given = target_thresholds(model, threshold) if threshold is not None else {}
        lines = [f"note: {v.name} is {v.classes[1]} where p_{v.name}_{v.classes[1]} is at least {v.threshold:g}, "
                 "the threshold saved in the model (evaluate --choose-threshold --save); "
                 f"--threshold {v.name}=T overrides it"
                 for v in model.targets if v.threshold is not None and given.get(v.name, (None,))[0] is None]
        return "\n".join(lines) or None
    used, index = effective_threshold(model, threshold)
    if threshold is not None or used is None:
        return None
    label = model.classes[index]
    return (f"note: prediction is {label} where p_{label} is at least {used:g}, the threshold saved in the model "
            "(evaluate --choose-threshold --save); --threshold overrides it")


def predict_frames(model, data_path, proba: bool = False, chunk_rows: int | None = None, threshold=None,
                   keep=(), positive=None, interval: float | None = None, sets: float | None = None, ranges=None,
                   spread: bool = False, unknown: str | None = None):
    """DataFrames of predictions for the table, one per chunk of rows: the `keep` columns first,
    exactly as written; then `prediction` (original labels, or numbers for regression) and with
    `proba` one `p_<class>` column per class; with `interval` L (regression) `lower` and `upper`,
    with `sets` L (classification) `prediction_set`, the conformal interval or set at level L
    (see `commands/conformal.py`); with `spread` (an ensemble) the members' standard deviation,
    `spread` or `spread_<class>`. Columns are matched by name; extra columns are ignored,
    missing ones are an error. `ranges` (a `data.ranges.RangeCheck`) counts the rows far outside
    what training saw. `unknown` (error | ignore) overrides the model's `unknown_category`:
    ignore reads a category training never saw as the model trained with
    `unknown_category: ignore` would (all-zero one-hot, the zero row of an embedding)."""
    options = PredictOptions(proba, threshold, tuple(keep), positive, interval, sets, spread, unknown)
    chosen = check_options(model, options)
    keep = options.kept()
    as_text = [c for c in keep if c not in model.encoder.features]
    where = _where(data_path)
    for chunk in _chunks(model, data_path, options.columns(model), chunk_rows, as_text):
        yield predict_chunk(model, chunk, where, options, chosen, ranges)


@dataclass(frozen=True)
class PredictOptions:
    """What a prediction adds beyond the labels, shared by `nnctl predict` and `nnctl serve`.
    New per-row outputs (conformal `interval` / `sets`) become fields here, checked in
    `check_options` and written in `predict_chunk`, so both commands get them at once."""
    proba: bool = False
    threshold: float | None = None
    keep: tuple = ()
    positive: str | None = None
    interval: float | None = None  # conformal level: `lower`, `upper` (regression)
    sets: float | None = None  # conformal level: `prediction_set` (classification)
    spread: bool = False  # an ensemble's members' standard deviation: `spread` or `spread_<class>`
    unknown: str | None = None  # error | ignore: an unseen category; None: the model's unknown_category

    def conformal(self, model):
        """The conformal columns these options add (none without `interval`/`sets`)."""
        from .conformal import conformal_columns

        return conformal_columns(model, self.interval, self.sets)

    def kept(self) -> list:
        return list(dict.fromkeys(self.keep))

    def columns(self, model) -> list:
        """The input columns a table must have: the model's features, then the kept ones."""
        return list(dict.fromkeys(model.encoder.features + self.kept()))


def check_options(model, options: PredictOptions) -> int:
    """Refuse options this model cannot honour, before any row is read; the positive class's
    index."""
    if model.targets is not None:
        from .targets import check_multi_options

        return check_multi_options(model, options)
    if options.proba and model.task == "regression":
        raise NnctlError("--proba gives class probabilities, but this model is a regression", str(model.path),
                         "leave out --proba: the prediction column holds the predicted values")
    check_threshold(model, options.threshold)
    chosen = positive_index(model, options.positive)
    if options.spread:
        require_members(model)
    taken = set(options.kept())
    added = options.conformal(model).names + tuple(spread_names(model) if options.spread else ())
    for name in ("prediction", *(f"p_{c}" for c in (model.classes or []) if options.proba), *added):
        if name in taken:
            raise NnctlError(f"--keep {name} would give the output two '{name}' columns", "--keep",
                             "rename that column in the input")
    return chosen


def predict_chunk(model, chunk, where: str, options: PredictOptions, chosen: int = 1, ranges=None):
    """One DataFrame of rows (with the model's feature columns) -> their predictions, as
    `predict_frames` describes; `where` names the rows' source in errors."""
    import pandas as pd

    keep = options.kept()
    frame = pd.DataFrame(prediction_columns(model, chunk, where, options, chosen, ranges), index=range(len(chunk)))
    if keep:
        frame = pd.concat([chunk[keep].reset_index(drop=True), frame], axis=1)
    return frame


def prediction_columns(model, chunk, where: str, options: PredictOptions, chosen: int = 1, ranges=None) -> dict:
    """`predict_chunk`'s prediction columns (not the kept ones) as {name: array}, in order:
    what `nnctl serve` answers from without building a DataFrame it would only take apart.
    `ranges`: a `data.ranges.RangeCheck` the chunk's inputs are counted in (or None)."""
    X = model.inputs(chunk, where, options.unknown)
    if ranges is not None:
        ranges.add(X, chunk.index)
    if model.targets is not None:
        from .targets import multi_prediction_columns

        return multi_prediction_columns(model, X, options.proba, options)
    conformal = options.conformal(model)
    spread = model.spread_from_inputs(X) if options.spread or conformal.needs_spread else None
    columns = {}
    if model.task == "regression":
        values = model.values_from_inputs(X)
        if values.ndim == 1:
            columns["prediction"] = values
        else:
            for i in range(values.shape[1]):
                columns[f"prediction_{i}"] = values[:, i]
        conformal.add(columns, values, None if spread is None else spread[:, 0])
        shown = values.dtype
    else:
        p = model.proba_from_inputs(X)
        decided = decide(model, p, *effective_threshold(model, options.threshold, chosen))
        columns["prediction"] = np.asarray(model.classes, dtype=object)[decided]
        if options.proba:
            for i, c in enumerate(model.classes):
                columns[f"p_{c}"] = p[:, i]
        conformal.add(columns, p)
        shown = p.dtype
    if options.spread:
        # in the precision of the column it describes (float32 probabilities get no 17 digits)
        columns.update(zip(spread_names(model), spread.T.astype(shown)))
    return columns


def range_check(model, data_path, strict: bool = False):
    """A `data.ranges.RangeCheck` for the rows of `data_path` (see `data/ranges.py`):
    `predict_frames`, `evaluate` and serve count in it; with `strict` the first row far outside
    what training saw is an NnctlError."""
    from ..data.ranges import RangeCheck

    return RangeCheck(model.encoder, _where(data_path), strict)


def require_members(model) -> None:
    """--spread's NnctlError for a model of one member."""
    if model.network.members is None:
        raise NnctlError("--spread is the members' disagreement, and this model has one member", str(model.path),
                         "train an ensemble (model.ensemble: 8) to get a spread per row")


def spread_names(model) -> list[str]:
    """`--spread`'s columns: `spread` (regression; `spread_<i>` for several outputs), or one
    `spread_<class>` per class."""
    if model.task == "regression":
        outputs = len((model.meta.get("target_scaler") or {}).get("offset", [0]))
        return ["spread"] if outputs == 1 else [f"spread_{i}" for i in range(outputs)]
    return [f"spread_{c}" for c in model.classes]


def _where(data_path) -> str:
    from ..data.csvfile import STDIN

    return "stdin" if str(data_path) == STDIN else str(data_path)


def predict_csv(model_path, data_path, proba: bool = False, threshold=None, keep=(), positive=None,
                interval: float | None = None, sets: float | None = None, spread: bool = False,
                unknown: str | None = None):
    """All predictions for a table as one DataFrame (see `predict_frames`)."""
    import pandas as pd

    from ..runs.model import load_model

    model = load_model(model_path)
    frames = list(predict_frames(model, data_path, proba, threshold=threshold, keep=keep, positive=positive,
                                 interval=interval, sets=sets, spread=spread, unknown=unknown))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"prediction": []})


def evaluate(model, data_path, threshold=None, chunk_rows: int | None = None, given_as="the DATA argument",
             positive=None, interval: float | None = None, sets: float | None = None, ranges=None) -> dict:
    """Every metric of a loaded model on a labelled table (scikit-learn's definitions): for
    classification accuracy, balanced_accuracy, precision, recall, f1 (the positive class's with
    two classes, macro with more), log_loss, roc_auc,
    average_precision (two classes, of `positive_class`: the model's, or `positive`), per_class
    and the confusion matrix with its labels; for regression mse, rmse, mae, r2. With `interval`
    or `sets` L, the conformal intervals' or sets' `level`, `coverage` and `mean_width` or
    `mean_set_size`. `ranges`: as `predict_frames`'."""
    from .conformal import conformal_columns

    if model.targets is not None:
        from .targets import check_multi_options, multi_evaluate

        options = PredictOptions(threshold=threshold, positive=positive, interval=interval, sets=sets)
        check_multi_options(model, options)
        return multi_evaluate(model, data_path, chunk_rows, given_as, ranges, options)
    check_threshold(model, threshold)
    positive_index(model, positive)  # an unknown label is refused before the file is read
    conformal = conformal_columns(model, interval, sets)
    # normalized intervals: each row's width follows its members' spread
    spreads = [] if conformal.needs_spread else None
    y, out = labelled_outputs(model, data_path, chunk_rows, given_as, ranges, spreads)
    spread = np.concatenate(spreads) if spreads else None
    return {**score_outputs(model, y, out, threshold, positive), **conformal.coverage(y, out, spread)}


def labelled_outputs(model, data_path, chunk_rows: int | None = None, given_as="the DATA argument", ranges=None,
                     spreads: list | None = None):
    """(truth, outputs) of a loaded model on a labelled table: class indices and probabilities
    (rows, classes), or the target and the predictions in the target's units. `spreads`, if
    given, gets each chunk's members' spread of the first output (an ensemble's), in the same pass."""
    truths, outputs = [], []
    for X, y in labelled_chunks(model, data_path, chunk_rows, given_as, ranges):
        truths.append(y)
        outputs.append(model.values_from_inputs(X) if model.task == "regression" else model.proba_from_inputs(X))
        if spreads is not None:
            spreads.append(model.spread_from_inputs(X)[:, 0])
    if not sum(len(y) for y in truths):  # a header-only file is one chunk of no rows
        raise NnctlError("data file has no rows to evaluate", _where(data_path))
    return np.concatenate(truths), np.concatenate(outputs)


def labelled_chunks(model, data_path, chunk_rows: int | None = None, given_as="the DATA argument", ranges=None):
    """(inputs, truth) of a labelled table, one chunk of rows at a time: the encoded inputs
    (rows, inputs) and the class indices, or the target in its units."""
    from ..data.encoding import category_label

    target = model.meta["target"]
    where = _where(data_path)
    index = {category_label(c): i for i, c in enumerate(model.classes or [])}
    for chunk in _chunks(model, data_path, list(dict.fromkeys(model.encoder.features + [target])), chunk_rows,
                         given_as=given_as):
        y = truth_of(model, chunk, where, index)
        X = model.inputs(chunk, where)
        if ranges is not None:
            ranges.add(X, chunk.index)
        yield X, y


def truth_of(model, chunk, where: str, index: dict | None = None) -> np.ndarray:
    """The target column of a chunk as evaluate scores it: values (regression) or class indices
    (`index`: label -> index, made from `model.classes` when None); `model` may be one target
    of several (runs.model.TargetView)."""
    from ..data.encoding import category_label

    target = model.meta["target"]
    if chunk[target].isna().any():
        raise NnctlError(f"target column '{target}' has missing values", where, "drop those rows to evaluate")
    if model.task == "regression":
        return chunk[target].to_numpy(dtype=np.float64)
    if index is None:
        index = {category_label(c): i for i, c in enumerate(model.classes)}
    keys = [category_label(v) for v in chunk[target]]
    unknown = [k for k in keys if k not in index]
    if unknown:
        raise NnctlError(f"label '{unknown[0]}' in column '{target}' is not a class the model knows", where,
                         f"its classes: {', '.join(map(str, model.classes))}")
    return np.array([index[k] for k in keys], dtype=np.int64)


def score_outputs(model, y, out, threshold=None, positive=None) -> dict:
    """`evaluate`'s report from `labelled_outputs`; `positive`: the label two-class metrics
    refer to (default the model's positive class)."""
    from ..nn.metrics import classification_report, regression_report

    report = {"task": model.task, "rows": int(len(y))}
    if model.task == "regression":
        return {**report, **regression_report(y, out)}
    labels = list(model.classes)
    chosen = positive_index(model, positive)
    threshold, index = effective_threshold(model, threshold, chosen)
    predicted = decide(model, out, threshold, index)
    if len(labels) == 2:
        if chosen == 0:  # the metrics take the second class as positive: swap
            y, out, labels, predicted = 1 - y, out[:, ::-1], labels[::-1], 1 - predicted
        report["positive_class"] = labels[1]
    if threshold is not None:
        report["threshold"] = threshold
    metrics = classification_report(y, predicted, out, len(labels), labels)
    return {**report, **metrics, "labels": labels}


def evaluate_csv(model_path, data_path, chunk_rows: int | None = None, threshold=None, positive=None,
                 interval: float | None = None, sets: float | None = None) -> dict:
    """`evaluate` of the model saved at `model_path` (a run folder or its model.npz)."""
    from ..runs.model import load_model

    return evaluate(load_model(model_path), data_path, threshold, chunk_rows, positive=positive, interval=interval,
                    sets=sets)


PER_CLASS = ("precision", "recall", "f1")


def check_thresholds(report: dict, fail_under: dict, fail_over: dict) -> list[str]:
    """Messages for every missed threshold: `fail_under` {metric: lowest passing value},
    `fail_over` {metric: highest passing value}; a metric is a name of the report or, for
    classification, `per_class.<label>.<precision|recall|f1>`. An unknown metric name or label
    is an NnctlError."""
    from ..nn.metrics import CLASSIFICATION_METRICS, REGRESSION_METRICS

    classification = report["task"] == "classification"
    valid = [m for m in (CLASSIFICATION_METRICS if classification else REGRESSION_METRICS) if m in report]
    if report["task"] == MULTI:
        from .targets import threshold_names

        valid = threshold_names(report)
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
