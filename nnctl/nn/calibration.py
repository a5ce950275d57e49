"""Temperature scaling (Guo et al., 2017): one number T > 0 that divides the logits before the
softmax or sigmoid, fitted on held-out rows by minimizing their cross-entropy.

    p = softmax(z / T)        (rows, classes)
    p = sigmoid(z / T)        (rows, 1): the same as softmax([0, z] / T) over two columns

T > 1 softens overconfident probabilities, T < 1 sharpens timid ones; the argmax never moves,
so labels do not change. With β = 1/T the validation loss is convex in β:

    L(β)   = (1/n) Σᵢ [ log Σ_c e^{β z_ic} − β z_iyᵢ ]
    L'(β)  = (1/n) Σᵢ [ E_pᵢ[z_i] − z_iyᵢ ]              pᵢ = softmax(β zᵢ)
    L''(β) = (1/n) Σᵢ Var_pᵢ[z_i] ≥ 0

so L' rises monotonically and its one root is found by Newton's method on β, kept inside a
bracket that bisection (in log β) narrows whenever a Newton step would leave it.
"""
from __future__ import annotations

import numpy as np

T_RANGE = (1e-2, 1e2)  # a fitted temperature is kept in this range: outside it the data gave no optimum


def _two_columns(logits) -> np.ndarray:
    """(rows, k) logits in float64; a sigmoid's one column z becomes [0, z]."""
    z = np.asarray(logits, dtype=np.float64)
    return np.hstack([np.zeros_like(z), z]) if z.shape[1] == 1 else z


def temperature_loss(logits, y, beta: float) -> float:
    """L(β): the mean cross-entropy of softmax(β z) against class indices y (rows,)."""
    u = beta * _two_columns(logits)
    m = u.max(axis=1, keepdims=True)
    lse = np.log(np.exp(u - m).sum(axis=1)) + m[:, 0]
    return float(np.mean(lse - u[np.arange(len(y)), y]))


def temperature_derivatives(logits, y, beta: float) -> tuple[float, float]:
    """(L'(β), L''(β)) of `temperature_loss`: the mean of E_p[z] − z_y and of Var_p[z]."""
    z = _two_columns(logits)
    u = beta * z
    p = np.exp(u - u.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    mean = np.einsum("ij,ij->i", p, z)
    second = np.einsum("ij,ij->i", p, z * z)
    first = float(np.mean(mean - z[np.arange(len(y)), y]))
    return first, float(np.mean(np.maximum(second - mean * mean, 0.0)))


def fit_temperature(logits, y, t_range: tuple = T_RANGE, max_iter: int = 100) -> float:
    """The T in `t_range` that minimizes the cross-entropy of softmax(z / T) (or sigmoid(z / T)
    for one column) against class indices y. logits: (rows, classes) or (rows, 1). The same
    inputs always give the same T (no randomness, a fixed sequence of steps)."""
    y = np.asarray(y, dtype=np.int64)
    lo, hi = 1.0 / t_range[1], 1.0 / t_range[0]  # the bracket on β = 1/T
    if temperature_derivatives(logits, y, lo)[0] >= 0:
        return float(t_range[1])  # the loss only rises with β: as soft as allowed
    if temperature_derivatives(logits, y, hi)[0] <= 0:
        return float(t_range[0])  # it only falls (separable rows): as sharp as allowed
    beta = min(max(1.0, lo), hi)
    for _ in range(max_iter):
        first, second = temperature_derivatives(logits, y, beta)
        if first > 0:
            hi = beta
        else:
            lo = beta
        step = beta - first / second if second > 0 else np.nan
        new = step if lo < step < hi else float(np.sqrt(lo * hi))
        if abs(new - beta) <= 1e-12 * beta or first == 0:
            beta = new
            break
        beta = new
    return float(1.0 / beta)
