"""An ensemble's members on its validation part, for metrics.json's `members` and the report:
each member's score alone against the ensemble's, and how much they disagree row by row.

    metrics["members"] = member_scores(model, X_val, y_val)
"""
from __future__ import annotations

import numpy as np

SPREAD_BINS = 20  # the histogram of the per-row spread that metrics.json keeps for the report
QUANTILES = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)


def member_scores(model, X: np.ndarray, y: np.ndarray) -> dict:
    """{"scores": [{metric: value, ...} per member], "ensemble": {...}, "row_spread": {...}} on
    the rows X (encoded) with targets y (class indices, or regression targets as training saw
    them). Scores are accuracy and log loss (classification) or r2 and rmse in the target's
    units (regression), every member's and the ensemble's from uncalibrated probabilities (a
    temperature is the ensemble's alone, and would make the comparison unfair). `row_spread` is
    the members' std per row of the probability of the class the ensemble predicts, or of the
    prediction (its first output) for a regression: its mean, quantiles and histogram."""
    members = model.member_outputs(X)  # (K, rows, outputs): probabilities, or target units
    mean = members.mean(axis=0)
    if model.task == "regression":
        from ..data.scaling import from_training

        truth = from_training(np.asarray(y, dtype=np.float64).reshape(len(y), -1), model.meta.get("target_scaler"))
        score = _regression_scores
        spread = members[..., 0].std(axis=0)
        of = "the prediction"
    else:
        truth = np.asarray(y).astype(np.int64).reshape(-1)
        score = _classification_scores
        predicted = mean.argmax(axis=1)
        spread = members[:, np.arange(len(predicted)), predicted].std(axis=0)
        of = "the probability of the predicted class"
    return {"part": "validation", "rows": int(len(truth)),
            "scores": [score(truth, out) for out in members], "ensemble": score(truth, mean),
            "row_spread": _distribution(spread, of)}


def _classification_scores(y: np.ndarray, proba: np.ndarray) -> dict:
    picked = np.clip(proba[np.arange(len(y)), y], 1e-15, 1.0)
    return {"accuracy": float(np.mean(proba.argmax(axis=1) == y)), "log_loss": float(-np.mean(np.log(picked)))}


def _regression_scores(y: np.ndarray, out: np.ndarray) -> dict:
    from ..nn.metrics import regression_report

    report = regression_report(y, out)  # as evaluate scores it
    return {"r2": float(report["r2"]), "rmse": float(report["rmse"])}


def _distribution(values: np.ndarray, of: str) -> dict:
    values = values[np.isfinite(values)]
    if not len(values):
        return {"of": of, "mean": None, "quantiles": {}, "histogram": None}
    low, high = float(values.min()), float(values.max())
    counts, _ = np.histogram(values, bins=SPREAD_BINS, range=(low, high if high > low else low + 1e-12))
    return {"of": of, "mean": float(values.mean()),
            "quantiles": {str(q): float(v) for q, v in zip(QUANTILES, np.quantile(values, QUANTILES))},
            "histogram": {"low": low, "high": high, "counts": counts.tolist()}}
