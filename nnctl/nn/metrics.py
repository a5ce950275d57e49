"""Scores of predictions, with scikit-learn's definitions.

Classification metrics take class indices `y_true`, `y_pred` (rows,) and, for log loss,
probabilities (rows, classes). Regression metrics take arrays of the same shape.
"""
from __future__ import annotations

import numpy as np

EPS = 1e-15  # probabilities are clipped to [EPS, 1 - EPS] for log loss, as scikit-learn did


def confusion_matrix(y_true, y_pred, n_classes: int) -> np.ndarray:
    """(classes, classes): row = true class, column = predicted class."""
    return np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def accuracy(y_true, y_pred) -> float:
    return float(np.mean(y_true == y_pred)) if len(y_true) else float("nan")


def _per_class(cm):
    tp = np.diag(cm).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(cm.sum(axis=0) > 0, tp / cm.sum(axis=0), 0.0)
        recall = np.where(cm.sum(axis=1) > 0, tp / cm.sum(axis=1), 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return precision, recall, f1


def log_loss(y_true, proba) -> float:
    p = np.clip(proba[np.arange(len(y_true)), y_true].astype(np.float64), EPS, 1 - EPS)
    return float(-np.mean(np.log(p)))


def classification_report(y_true, y_pred, proba, n_classes: int) -> dict:
    """accuracy, balanced_accuracy, macro precision/recall/F1 (over classes present in the
    truth or the predictions, as scikit-learn's labels=None), log_loss and the confusion matrix."""
    cm = confusion_matrix(y_true, y_pred, n_classes)
    present = (cm.sum(axis=0) + cm.sum(axis=1)) > 0
    precision, recall, f1 = _per_class(cm)
    in_truth = cm.sum(axis=1) > 0
    return {
        "accuracy": accuracy(y_true, y_pred),
        "balanced_accuracy": float(np.mean(recall[in_truth])),
        "precision": float(np.mean(precision[present])),
        "recall": float(np.mean(recall[present])),
        "f1": float(np.mean(f1[present])),
        "log_loss": log_loss(y_true, proba),
        "confusion_matrix": cm.tolist(),
    }


def r2(y_true, y_pred) -> float:
    """1 - SS_res / SS_tot, averaged over outputs (scikit-learn's uniform_average)."""
    y_true = np.asarray(y_true, dtype=np.float64).reshape(len(y_true), -1)
    y_pred = np.asarray(y_pred, dtype=np.float64).reshape(len(y_pred), -1)
    ss_res = ((y_true - y_pred) ** 2).sum(axis=0)
    ss_tot = ((y_true - y_true.mean(axis=0)) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        # scikit-learn: a constant truth scores 1.0 if predicted exactly, else 0.0
        score = np.where(ss_tot > 0, 1 - ss_res / ss_tot, np.where(ss_res == 0, 1.0, 0.0))
    return float(np.mean(score))


def regression_report(y_true, y_pred) -> dict:
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64).reshape(y_true.shape)
    mse = float(np.mean((y_true - y_pred) ** 2))
    return {"mse": mse, "rmse": float(np.sqrt(mse)), "mae": float(np.mean(np.abs(y_true - y_pred))),
            "r2": r2(y_true, y_pred)}


CLASSIFICATION_METRICS = ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "log_loss")
REGRESSION_METRICS = ("mse", "rmse", "mae", "r2")
