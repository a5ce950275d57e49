"""Losses, each paired with the output activation it is defined on.

Every loss is a mean over the batch (and over outputs), as in PyTorch and Keras. `delta` is the
gradient of the loss with respect to the output layer's pre-activation `z` — for softmax +
cross-entropy and sigmoid + binary cross-entropy that is the fused, stable `(p - y) / n`.

Shapes: `z`, `a` and targets `y` are all (rows, outputs); for cross_entropy `y` is one-hot, for
binary_cross_entropy a column of 0/1. `w`, when given, is a (rows, 1) column of row weights
(class weights): each row's loss is multiplied by its weight and the loss stays the mean over
rows, L = Σ wᵢ·lᵢ / n, as Keras and scikit-learn define it; its delta is wᵢ times the row's own.
"""
from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import numpy as np

from .activations import identity, sigmoid

HUBER_DELTA = 1.0  # PyTorch's HuberLoss default


class Loss(NamedTuple):
    output: str  # name of the output activation
    task: str  # classification | regression
    forward: Callable  # (z, out) -> a, the output activation
    value: Callable  # (z, a, y, w=None) -> float
    delta: Callable  # (z, a, y, out) -> dL/dz written into out (unweighted; see `weighted`)


ROWS_PER_CLASS = 128  # from this many rows per class, softmax works a column at a time


def softmax(z, out):
    # Subtract each row's maximum so exp never overflows, and sum rows as a product with a
    # column of ones: max/sum(axis=1) reduce slowly over few columns. Ufuncs between a (rows,
    # classes) array and a (rows, 1) column run one inner loop per row, as slow as the rows are
    # many; with many rows per class (members' rows) the maximum, the shift and the division go
    # a column at a time (one loop over all rows per column: the same operations on the same
    # values, so the same bits). With fewer rows the calls per column cost more than they save.
    if z.ndim == 3:  # members (K, rows, outputs): K·rows rows of one matrix
        softmax(z.reshape(-1, z.shape[-1]), out.reshape(-1, out.shape[-1]))
        return out
    classes = z.shape[1]
    if len(z) < ROWS_PER_CLASS * classes or classes < 2:
        np.subtract(z, z[np.arange(len(z)), z.argmax(axis=1)][:, None], out=out)
        np.exp(out, out=out)
        out /= np.dot(out, _ones(classes, out.dtype))[:, None]
        return out
    top = np.maximum(z[:, 0], z[:, 1])  # the value at the argmax, NaN where a NaN is
    for j in range(2, classes):
        np.maximum(top, z[:, j], out=top)
    # the shift and the division as one call each over the transposed views, iterated in the
    # order given (order="C"): one inner loop per class over all rows, as a call per column would
    np.subtract(z.T, top, out=out.T, order="C")
    np.exp(out, out=out)
    total = np.dot(out, _ones(classes, out.dtype))
    np.divide(out.T, total, out=out.T, order="C")
    return out


@functools.lru_cache(maxsize=None)
def _ones(n: int, dtype) -> np.ndarray:
    ones = np.ones(n, dtype=dtype)
    ones.flags.writeable = False  # shared by every call
    return ones


def _mean(per_row, w) -> float:
    """Σ wᵢ·lᵢ / n over a (rows,) or (rows, k) array of losses."""
    if w is not None:
        per_row = per_row * (w if per_row.ndim == 2 else w[:, 0])
    return float(np.mean(per_row))


def cross_entropy(z, a, y, w=None):
    # -log of the probability given to the true class, read off the softmax already computed.
    # If that probability underflowed to 0, take the exact log-sum-exp form from the logits.
    if len(y) == 0:
        return float("nan")
    # a one-hot row holds a 1; smoothed labels (`smooth_labels`) never do: −Σ y·log p needs every class
    soft = y[0].max() < 1
    p_true = np.einsum("ij,ij->i", y, a)
    if not soft and np.minimum.reduce(p_true) > 0:
        logs = np.log(p_true, out=p_true)
        if w is not None:
            logs *= w[:, 0]
        return -float(np.add.reduce(logs)) / len(p_true)
    m = z.max(axis=1, keepdims=True)
    lse = np.log(np.exp(z - m).sum(axis=1)) + m[:, 0]
    return _mean(lse - (y * z).sum(axis=1), w)


def smooth_labels(y: np.ndarray, epsilon: float, classes: int) -> np.ndarray:
    """Label smoothing (Szegedy et al. 2016, PyTorch's `label_smoothing`): targets (rows,
    outputs), one-hot rows or a 0/1 column, become y · (1 − ε) + ε / classes. Softmax and
    sigmoid keep their fused delta, p − y, with the smoothed y."""
    return y * (1 - epsilon) + epsilon / classes


def probability_delta(z, a, y, out):
    """(p - y) / n: the gradient wrt z of softmax + cross-entropy and of sigmoid + binary
    cross-entropy alike — the output nonlinearity's derivative cancels the loss's. With members
    (K, rows, outputs), n is the rows of one member: each member's own loss's gradient."""
    np.subtract(a, y, out=out)
    out *= 1.0 / a.shape[-2]
    return out


def _per_member(a) -> int:
    """The entries one member's mean loss is taken over: rows · outputs."""
    return a.shape[-2] * a.shape[-1]


def _bce_terms(z, a, y):
    # from the logit: max(z, 0) - z*y + log(1 + e^-|z|)
    return np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))


def binary_cross_entropy(z, a, y, w=None):
    return _mean(_bce_terms(z, a, y), w)


def _squared(z, a, y):
    diff = a - y
    return diff * diff


def mse(z, a, y, w=None):
    return _mean(_squared(z, a, y), w)


def mse_delta(z, a, y, out):
    np.subtract(a, y, out=out)
    out *= 2.0 / _per_member(a)
    return out


def _absolute(z, a, y):
    return np.abs(a - y)


def mae(z, a, y, w=None):
    return _mean(_absolute(z, a, y), w)


def mae_delta(z, a, y, out):
    np.subtract(a, y, out=out)
    np.sign(out, out=out)
    out /= _per_member(a)
    return out


def _huber_terms(z, a, y):
    err = np.abs(a - y)
    quadratic = np.minimum(err, HUBER_DELTA)
    return 0.5 * quadratic * quadratic + HUBER_DELTA * (err - quadratic)


def huber(z, a, y, w=None):
    return _mean(_huber_terms(z, a, y), w)


def huber_delta(z, a, y, out):
    np.subtract(a, y, out=out)
    np.clip(out, -HUBER_DELTA, HUBER_DELTA, out=out)
    out /= _per_member(a)
    return out


LOSSES: dict[str, Loss] = {
    "cross_entropy": Loss("softmax", "classification", softmax, cross_entropy, probability_delta),
    "binary_cross_entropy": Loss("sigmoid", "classification", sigmoid, binary_cross_entropy, probability_delta),
    "mse": Loss("identity", "regression", identity, mse, mse_delta),
    "mae": Loss("identity", "regression", identity, mae, mae_delta),
    "huber": Loss("identity", "regression", identity, huber, huber_delta),
}


def loss_for(task: str, n_classes: int | None, requested: str = "auto") -> str:
    """The loss name for a task: softmax + cross-entropy for several classes, one sigmoid unit
    + binary cross-entropy for two, MSE for regression, unless `requested` names another."""
    if task == "classification":
        # cross_entropy on two classes is the same model written with one sigmoid unit
        if n_classes == 2 and requested in ("auto", "cross_entropy", "binary_cross_entropy"):
            return "binary_cross_entropy"
        return "cross_entropy" if requested == "auto" else requested
    return "mse" if requested == "auto" else requested


# each loss's elementwise terms (z, a, y) -> an array like a, whose mean is the loss
_TERMS = {"binary_cross_entropy": _bce_terms, "mse": _squared, "mae": _absolute, "huber": _huber_terms}


def member_values(name: str, z, a, y, w=None) -> np.ndarray:
    """(K,) each member's own loss `name` (the mean over its rows, as the loss alone gives it)
    of (K, rows, outputs) arrays z, a and y; `w`: row weights (K, rows, 1) or None."""
    if name == "cross_entropy":
        soft = y.size and y[0, 0].max() < 1  # smoothed labels: −Σ y·log p needs every class
        p_true = np.einsum("kij,kij->ki", y, a)
        if not soft and p_true.size and np.minimum.reduce(p_true, axis=None) > 0:
            per_row = -np.log(p_true)
        else:  # a probability that underflowed to 0: the log-sum-exp form from the logits
            m = z.max(axis=-1, keepdims=True)
            per_row = np.log(np.exp(z - m).sum(axis=-1)) + m[..., 0] - (y * z).sum(axis=-1)
        if w is not None:
            per_row = per_row * w[..., 0]
        return per_row.mean(axis=1)
    terms = _TERMS[name](z, a, y)
    if w is not None:
        terms = terms * w
    return terms.mean(axis=(1, 2))
