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


def balanced_accuracy(y_true, y_pred, n_classes: int) -> float:
    """The mean recall over the classes present in y_true (scikit-learn's balanced_accuracy_score)."""
    cm = confusion_matrix(y_true, y_pred, n_classes)
    in_truth = cm.sum(axis=1) > 0
    return float(np.mean(_per_class(cm)[1][in_truth]))


def f1_score(y_true, y_pred, n_classes: int) -> float:
    """scikit-learn's f1_score: with two classes the F1 of the second (average="binary"), with
    more the mean over the classes present in the truth or the predictions (average="macro")."""
    cm = confusion_matrix(y_true, y_pred, n_classes)
    scores = _per_class(cm)[2]
    if n_classes == 2:
        return float(scores[1])
    return float(np.mean(scores[(cm.sum(axis=0) + cm.sum(axis=1)) > 0]))


def log_loss(y_true, proba) -> float:
    p = np.clip(proba[np.arange(len(y_true)), y_true].astype(np.float64), EPS, 1 - EPS)
    return float(-np.mean(np.log(p)))


def classification_report(y_true, y_pred, proba, n_classes: int, labels=None) -> dict:
    """accuracy, balanced_accuracy, precision/recall/F1 (scikit-learn's defaults: with two
    classes the second's, average="binary", as `f1_score` and val_f1; with more the macro mean
    over classes present in the truth or the predictions, as labels=None), log_loss, roc_auc
    (one-vs-rest macro for several classes), brier and ece (see `brier_score`,
    `expected_calibration_error`), average_precision (two classes), per_class (keyed by
    `labels`) and the confusion matrix."""
    cm = confusion_matrix(y_true, y_pred, n_classes)
    return {
        **confusion_scores(cm),
        "log_loss": log_loss(y_true, proba),
        "roc_auc": roc_auc(y_true, proba),
        **({"average_precision": average_precision(y_true == 1, proba[:, 1])} if n_classes == 2 else {}),
        "brier": brier_score(y_true, proba),
        "ece": expected_calibration_error(y_true, proba),
        "per_class": per_class(cm, labels if labels is not None else range(n_classes)),
        "confusion_matrix": cm.tolist(),
    }


ECE_BINS = 15  # equal-width confidence bins, as Guo et al. (2017) and most papers since


def brier_score(y_true, proba) -> float:
    """Mean squared distance between the probabilities (rows, classes) and the one-hot truth.

    Several classes: (1/n) Σᵢ Σ_c (p_ic − [yᵢ = c])², Brier's own definition (from 0 to 2).
    Two classes: (1/n) Σᵢ (p_i1 − [yᵢ = 1])², scikit-learn's `brier_score_loss` of the positive
    class (from 0 to 1), which is exactly half the sum over both columns."""
    proba = np.asarray(proba, dtype=np.float64)
    if len(y_true) == 0:
        return float("nan")
    rows = np.arange(len(y_true))
    # Σ_c (p_c − onehot_c)² = Σ_c p_c² − 2 p_true + 1, without building the one-hot matrix
    per_row = np.einsum("ij,ij->i", proba, proba) - 2 * proba[rows, y_true] + 1
    return float(np.mean(per_row) / (2 if proba.shape[1] == 2 else 1))


def reliability_bins(y_true, proba, n_bins: int = ECE_BINS) -> dict:
    """The top-class confidence max_c p_ic of each row, sorted into `n_bins` equal-width bins
    ((k/B, (k+1)/B], the first one closed at 0): per bin `lower`, `upper` (n_bins,), `count`,
    and the mean `confidence` and `accuracy` (the share of rows whose argmax is the truth) of its
    rows, nan for an empty bin. Two classes use the top class too, max(p, 1 − p), so the
    confidence never falls under 1/2 and binary and multi-class models read alike."""
    proba = np.asarray(proba, dtype=np.float64)
    confidence = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == y_true).astype(np.float64)
    index = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    count = np.bincount(index, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(index, confidence, n_bins) / count
        accuracy_ = np.bincount(index, correct, n_bins) / count
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return {"lower": edges[:-1], "upper": edges[1:], "count": count, "confidence": mean_confidence,
            "accuracy": accuracy_}


def expected_calibration_error(y_true, proba, n_bins: int = ECE_BINS) -> float:
    """ECE = Σ_b (n_b / n) · |accuracy_b − confidence_b| over `reliability_bins`: how far, on
    average over the rows, the top-class confidence is from how often that class is right."""
    if len(y_true) == 0:
        return float("nan")
    bins = reliability_bins(y_true, proba, n_bins)
    used = bins["count"] > 0
    gap = np.abs(bins["accuracy"][used] - bins["confidence"][used])
    return float(np.sum(bins["count"][used] * gap) / len(y_true))


def confusion_scores(cm) -> dict:
    """accuracy, balanced_accuracy and precision/recall/F1 from a confusion matrix (classes,
    classes), as `classification_report` defines them: with two classes the second's
    (average="binary"), so that a threshold chosen for its F1 raises `f1`; with more the macro
    mean over the classes present in the truth or the predictions. Confusion matrices add up,
    so these scores of a table read in chunks are exact from the sum of the chunks' matrices."""
    cm = np.asarray(cm)
    present = (cm.sum(axis=0) + cm.sum(axis=1)) > 0
    precision, recall, f1 = _per_class(cm)
    total = cm.sum()

    def headline(scores) -> float:
        return float(scores[1]) if len(cm) == 2 else float(np.mean(scores[present]))

    return {"accuracy": float(np.trace(cm) / total) if total else float("nan"),
            "balanced_accuracy": float(np.mean(recall[cm.sum(axis=1) > 0])),
            "precision": headline(precision), "recall": headline(recall), "f1": headline(f1)}


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of `values`, ties sharing their average rank."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    ranks = np.empty(len(values))
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def roc_auc_binary(positive, score) -> float:
    """Area under the ROC curve: the probability that a random positive row scores above a
    random negative one (ties count half), by the Mann-Whitney rank sum; nan with one class."""
    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(np.asarray(score, dtype=np.float64))
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_auc(y_true, proba) -> float:
    """Binary: the AUC of the second class's probability. Several classes: the mean of each
    class against the rest (scikit-learn's multi_class="ovr", average="macro"); nan when a class
    is absent from y_true."""
    if proba.shape[1] == 2:
        return roc_auc_binary(y_true == 1, proba[:, 1])
    return float(np.mean([roc_auc_binary(y_true == c, proba[:, c]) for c in range(proba.shape[1])]))


def average_precision(positive, score) -> float:
    """Σ (R_n − R_{n−1}) · P_n over the distinct score thresholds, highest first: the area under
    the precision-recall curve as scikit-learn computes it; nan without positives."""
    positive = np.asarray(positive, dtype=bool)
    if not positive.any():
        return float("nan")
    recall, precision = pr_curve(positive, score)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _ranked(positive, score):
    """Cumulative true and false positives at each distinct score, highest first."""
    positive = np.asarray(positive, dtype=bool)
    order = np.argsort(-np.asarray(score, dtype=np.float64), kind="mergesort")
    hits, s = positive[order], np.asarray(score, dtype=np.float64)[order]
    last = np.r_[np.flatnonzero(s[1:] != s[:-1]), len(s) - 1]
    tp = np.cumsum(hits)[last]
    return tp, (last + 1) - tp


def threshold_counts(positive, score) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds, tp, fp): each distinct score, highest first, with the true and false
    positives of predicting positive wherever the score is at least it."""
    s = np.unique(np.asarray(score, dtype=np.float64))[::-1]
    tp, fp = _ranked(positive, score)
    return s, tp, fp


def roc_curve(positive, score) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) at each threshold, from (0, 0) to (1, 1)."""
    tp, fp = _ranked(positive, score)
    return np.r_[0.0, fp / max(fp[-1], 1)], np.r_[0.0, tp / max(tp[-1], 1)]


def pr_curve(positive, score) -> tuple[np.ndarray, np.ndarray]:
    """(recall, precision) at each threshold, highest threshold first."""
    tp, fp = _ranked(positive, score)
    return tp / max(tp[-1], 1), tp / (tp + fp)


def per_class(cm, labels) -> dict:
    """{label: {precision, recall, f1, support}} from a confusion matrix."""
    precision, recall, f1 = _per_class(cm)
    support = cm.sum(axis=1)
    return {str(label): {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(n)}
            for label, p, r, f, n in zip(labels, precision, recall, f1, support)}


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


CLASSIFICATION_METRICS = ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "log_loss", "roc_auc",
                          "average_precision", "brier", "ece")
REGRESSION_METRICS = ("mse", "rmse", "mae", "r2")
