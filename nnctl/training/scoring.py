"""Targets in the loss's form, and a network's loss and metric on a part of the data."""
from __future__ import annotations

import numpy as np

from ..errors import NnctlError
from ..nn.metrics import r2
from ..nn.network import Network


def metric_name(task: str) -> str:
    """The metric logged beside the loss: accuracy for classification, R² for regression."""
    return "accuracy" if task == "classification" else "r2"


def targets_for(network: Network, y: np.ndarray) -> np.ndarray:
    """Targets in the form the network's loss takes: one-hot rows for cross_entropy, a column
    of 0/1 for binary_cross_entropy, floats for regression — all (rows, outputs)."""
    if network.loss_name == "cross_entropy":
        onehot = np.zeros((len(y), network.n_outputs), dtype=network.dtype)
        onehot[np.arange(len(y)), y.astype(np.int64, copy=False)] = 1
        return onehot
    return y.astype(network.dtype, copy=False).reshape(len(y), -1)


def score(network: Network, task: str, X: np.ndarray, y: np.ndarray, targets=None) -> tuple[float, float]:
    """(loss, accuracy or R²) of the network on (X, y), X: (rows, inputs); one forward pass in
    chunks of rows. `targets` is `targets_for(network, y)`, when the caller already has it."""
    if len(X) == 0:
        return float("nan"), float("nan")
    t = targets_for(network, y) if targets is None else targets
    total, correct = 0.0, 0
    outputs = np.empty(t.shape, dtype=network.dtype) if task == "regression" else None
    for start, out in network.forward_chunks(X):
        end = start + len(out)
        total += network.loss_value(t[start:end]) * len(out)
        if task == "regression":
            outputs[start:end] = out
        else:
            predicted = out.argmax(axis=1) if out.shape[1] > 1 else (out[:, 0] > 0.5)
            correct += int(np.count_nonzero(predicted == y[start:end]))
    if task == "regression":
        return total / len(X), r2(t, outputs)
    return total / len(X), correct / len(X)


def class_weights(setting, dataset) -> np.ndarray | None:
    """One weight per class from `training.class_weight`: None, `balanced` (n_rows / (n_classes ·
    count_c) over the training part, as scikit-learn), or {label: weight} (labels unnamed there
    weigh 1). A label the data does not have is an NnctlError naming the ones it has."""
    if setting is None:
        return None
    if dataset.task != "classification":
        raise NnctlError("training.class_weight is for classification, but this is a regression",
                         "training.class_weight", "remove it, or set model.task: classification")
    from ..data.encoding import category_label

    n_classes = len(dataset.classes)
    if setting == "balanced":
        counts = np.bincount(dataset.y_train, minlength=n_classes).astype(np.float64)
        return len(dataset.y_train) / (n_classes * np.maximum(counts, 1))
    labels = [category_label(c) for c in dataset.classes]
    for label in setting:
        if label not in labels:
            raise NnctlError(f"training.class_weight names '{label}', which is not a label of column "
                             f"'{dataset.target}'", "training.class_weight", f"its labels: {', '.join(labels)}")
    return np.array([setting.get(label, 1.0) for label in labels])


def row_weights(setting, dataset, y: np.ndarray, dtype) -> np.ndarray | None:
    """(rows, 1) weights of rows whose class indices are `y`, or None without class weights."""
    weights = class_weights(setting, dataset)
    return None if weights is None else weights[y].astype(dtype).reshape(-1, 1)
