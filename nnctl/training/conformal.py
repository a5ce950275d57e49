"""Split conformal at the end of training: the validation part's nonconformity scores, kept in
model.npz (`conformal.scores`, meta `conformal: {"kind", "n"}`) so that `predict --interval`
and `--sets` can turn them into intervals and sets later (see `nn/conformal.py`).

The scores come from the saved `Model`'s own outputs, after anything that changes them (a
fitted temperature) is in its meta, so intervals and sets describe what predict gives.
"""
from __future__ import annotations

import numpy as np

from ..data.scaling import linked_output
from ..nn.conformal import CLASSIFICATION_SCORE, REGRESSION_SCORE, absolute_residuals, true_class_scores
from ..runs.model import CONFORMAL_SCORES


def validation_scores(model, dataset) -> tuple[str, np.ndarray] | None:
    """(kind, sorted float64 scores (n,)) on the dataset's validation part, or None without one
    (or when the model gives non-finite outputs there, which no interval can be built from).
    Regression residuals are |g(y) − g(ŷ)| with g the target transform's link (data/scaling.py):
    the target's own units for none and standard, log1p(y) or the normal scores otherwise."""
    if not len(dataset.X_val):
        return None
    if model.task == "regression":
        scaler = model.meta.get("target_scaler")
        truth = linked_output(np.asarray(dataset.y_val, dtype=np.float64).reshape(len(dataset.y_val), -1), scaler)
        predicted = linked_output(model.network_outputs(dataset.X_val), scaler)
        kind, scores = REGRESSION_SCORE, absolute_residuals(truth[:, 0], predicted[:, 0])
    else:
        kind = CLASSIFICATION_SCORE
        scores = true_class_scores(model.proba_from_inputs(dataset.X_val), dataset.y_val)
    return (kind, scores) if np.isfinite(scores).all() else None


def add_conformal(model, dataset) -> dict:
    """Put the validation scores on `model` (its meta and `conformal_scores`) and return the
    arrays model.npz keeps beside the layers' ({} without a validation part), so that the run
    writes its model once, scores included."""
    found = validation_scores(model, dataset)
    if found is None:
        return {}
    kind, scores = found
    model.meta["conformal"] = {"kind": kind, "n": int(len(scores))}
    model.conformal_scores = scores
    return {CONFORMAL_SCORES: scores}
