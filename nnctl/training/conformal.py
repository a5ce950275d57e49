"""Split conformal at the end of training: the validation part's nonconformity scores, kept in
model.npz (`conformal.scores`, meta `conformal: {"kind", "n"}`) so that `predict --interval`
and `--sets` can turn them into intervals and sets later (see `nn/conformal.py`).

The scores come from the saved `Model`'s own outputs, after anything that changes them (a
fitted temperature) is in its meta, so intervals and sets describe what predict gives.
"""
from __future__ import annotations

import numpy as np

from ..data.scaling import is_linear, linked_output
from ..errors import NnctlError
from ..nn.conformal import (CLASSIFICATION_SCORE, NORMALIZED_SCORE, REGRESSION_SCORE, absolute_residuals,
                            normalized_residuals, spread_floor, true_class_scores)
from ..runs.model import CONFORMAL_SCORES, target_scores_name


def check_conformal(how: str, task: str, members: int | None, target_scaler: dict | None = None,
                    targets=None) -> None:
    """training.conformal: normalized divides by the members' spread of a regression value, so
    it needs a regression and an ensemble, and a target in its own units or standardized (a
    log1p or quantile target's residuals are measured in another space than the spread);
    refused before training starts. Several targets (`targets`, the dataset's): each regression
    target is checked so, and classification targets keep 1 − p(class)."""
    if how != "normalized":
        return
    if targets is not None:
        regressions = [t for t in targets if t.task == "regression"]
        if not regressions:
            raise NnctlError("training.conformal: normalized is for regression targets (intervals), and this run "
                             "has none", "training.conformal",
                             "leave it at absolute: prediction sets use 1 − p(class)")
        for t in regressions:
            try:
                check_conformal(how, t.task, members, t.target_scaler)
            except NnctlError as exc:
                raise NnctlError(f"target '{t.name}': {exc.message}", exc.where, exc.hint)
        return
    if task == "regression" and not is_linear(target_scaler):
        raise NnctlError(f"training.conformal: normalized needs data.target_transform none or standard, not "
                         f"{target_scaler['kind']}", "training.conformal",
                         "leave training.conformal at absolute (intervals are then made in the transform's space)")
    if task != "regression":
        raise NnctlError("training.conformal: normalized is for regression (intervals); this run is a "
                         f"{task}", "training.conformal", "leave it at absolute: prediction sets use 1 − p(class)")
    if not members:
        raise NnctlError("training.conformal: normalized divides residuals by the ensemble members' spread, and "
                         "this model has one member", "training.conformal",
                         "set model.ensemble to 2 or more (e.g. 8), or leave training.conformal at absolute")


def validation_scores(model, dataset, how: str = "absolute") -> tuple[dict, np.ndarray] | None:
    """(meta entry without `n`, sorted float64 scores (n,)) on the dataset's validation part, or
    None without one (or when the model gives non-finite outputs there, which no interval can be
    built from). Regression residuals are |g(y) − g(ŷ)| with g the target transform's link
    (data/scaling.py): the target's own units for none and standard, log1p(y) or the normal
    scores otherwise; `how` = normalized divides them by the members' spread plus a floor
    (`nn/conformal.py`; only with none or standard, see check_conformal)."""
    if not len(dataset.X_val):
        return None
    if model.task == "regression":
        scaler = model.meta.get("target_scaler")
        truth = linked_output(np.asarray(dataset.y_val, dtype=np.float64).reshape(len(dataset.y_val), -1), scaler)
        values = linked_output(model.network_outputs(dataset.X_val), scaler)[:, 0]
        if how == "normalized":
            spread = model.spread_from_inputs(dataset.X_val)[:, 0]
            floor = spread_floor(spread)
            entry, scores = {"kind": NORMALIZED_SCORE, "floor": floor}, normalized_residuals(truth[:, 0], values, spread, floor)
        else:
            entry, scores = {"kind": REGRESSION_SCORE}, absolute_residuals(truth[:, 0], values)
    else:
        entry = {"kind": CLASSIFICATION_SCORE}
        scores = true_class_scores(model.proba_from_inputs(dataset.X_val), dataset.y_val)
    return (entry, scores) if np.isfinite(scores).all() else None


def add_conformal(model, dataset, how: str = "absolute") -> dict:
    """Put the validation scores on `model` (its meta and `conformal_scores`) and return the
    arrays model.npz keeps beside the layers' ({} without a validation part), so that the run
    writes its model once, scores included."""
    found = validation_scores(model, dataset, how)
    if found is None:
        return {}
    entry, scores = found
    model.meta["conformal"] = {**entry, "n": int(len(scores))}
    model.conformal_scores = scores
    return {CONFORMAL_SCORES: scores}


def add_target_conformal(model, dataset, how: str = "absolute") -> dict:
    """Several targets: each target's validation scores, as `validation_scores` makes one
    target's (absolute residuals in its link's space, normalized by its members' spread under
    `how` = normalized, or 1 − p of the true class), in its meta entry (`targets[j].conformal`)
    and `conformal.scores.<j>`; {} without a validation part."""
    if not len(dataset.X_val):
        return {}
    outputs, kept = model.network_outputs(dataset.X_val), {}
    y = np.asarray(dataset.y_val, dtype=np.float64).reshape(len(dataset.X_val), -1)
    for j, view in enumerate(model.targets):
        if view.task == "regression":
            scaler = view.meta.get("target_scaler")
            truth = linked_output(y[:, j:j + 1], scaler)[:, 0]
            values = linked_output(view.block(outputs), scaler)[:, 0]
            if how == "normalized":
                spread = view.spread_from_inputs(dataset.X_val)[:, 0]
                floor = spread_floor(spread)
                entry = {"kind": NORMALIZED_SCORE, "floor": floor}
                scores = normalized_residuals(truth, values, spread, floor)
            else:
                entry, scores = {"kind": REGRESSION_SCORE}, absolute_residuals(truth, values)
        else:
            entry, scores = {"kind": CLASSIFICATION_SCORE}, true_class_scores(view.proba(outputs), y[:, j].astype(np.int64))
        if np.isfinite(scores).all():
            model.meta["targets"][j]["conformal"] = {**entry, "n": int(len(scores))}
            kept[target_scores_name(j)] = scores
    model.target_scores = {j: kept[target_scores_name(j)] for j in range(len(model.meta["targets"]))
                           if target_scores_name(j) in kept}
    return kept
