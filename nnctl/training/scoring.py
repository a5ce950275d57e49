"""Targets in the loss's form, and a network's loss and metric on a part of the data."""
from __future__ import annotations

import numpy as np

from ..nn.metrics import r2
from ..nn.network import MLP


def metric_name(task: str) -> str:
    """The metric logged beside the loss: accuracy for classification, R² for regression."""
    return "accuracy" if task == "classification" else "r2"


def targets_for(network: MLP, y: np.ndarray) -> np.ndarray:
    """Targets in the form the network's loss takes: one-hot rows for cross_entropy, a column
    of 0/1 for binary_cross_entropy, floats for regression — all (rows, outputs)."""
    if network.loss_name == "cross_entropy":
        onehot = np.zeros((len(y), network.sizes[-1]), dtype=network.dtype)
        onehot[np.arange(len(y)), y.astype(np.int64, copy=False)] = 1
        return onehot
    return y.astype(network.dtype, copy=False).reshape(len(y), -1)


def score(network: MLP, task: str, X: np.ndarray, y: np.ndarray, targets=None) -> tuple[float, float]:
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
