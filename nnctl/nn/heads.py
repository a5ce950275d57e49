"""Several heads on one body: each target's block of output columns, with its own output
activation and loss.

    z (rows, Σ outputs) = [z_price | z_days | z_condition]  →  softmax / sigmoid / identity per block

The heads read the body's last hidden layer through one dense layer whose columns are the heads'
blocks side by side: block t's weights get only target t's gradient, so it is exactly a dense
head per target, computed as one product. The loss is the weighted sum

    L = Σ_t λ_t · L_t(z[:, s_t:e_t], y[:, s_t:e_t])

where λ_t = weight_t / scale_t: `scale_t` is target t's loss at initialization (so that a loss
of a different kind or unit counts alike at the start) and `weight_t` the user's weight
(training.target_weights, 1 by default). Its gradient is each block's own delta times λ_t.

Targets `y` are in the loss's form side by side, as z: one-hot columns for cross_entropy, a 0/1
column for binary_cross_entropy, values for a regression. Row weights `w` are (rows, Σ outputs):
each block's columns hold its target's class weight of the row (1 without).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .losses import LOSSES, member_values


class Head(NamedTuple):
    name: str  # the target's column
    loss: str  # a name in LOSSES; its output activation is the head's
    start: int  # its first output column
    stop: int  # one past its last


class MultiLoss:
    """The Loss of several heads (same fields as losses.Loss: output, task, forward, value,
    delta), with λ per head (`weights`, each already divided by its loss's initial scale)."""

    output = "multi"
    task = "multitarget"

    def __init__(self, heads: list[Head], weights=None):
        self.heads = list(heads)
        self.weights = np.ones(len(heads)) if weights is None else np.asarray(weights, dtype=np.float64)
        self.scales = np.ones(len(heads))  # each loss at initialization, which `weights` are divided by

    @property
    def name(self) -> str:
        return "multi"

    def _blocks(self, *arrays):
        for head, lam in zip(self.heads, self.weights):
            part = slice(head.start, head.stop)
            yield head, float(lam), [None if a is None else a[..., part] for a in arrays]

    def forward(self, z, out):
        """Each block through its head's output activation, into `out` (same shape as z)."""
        for head, _, (zs, os_) in self._blocks(z, out):
            # a block is a strided view: its activation works on a contiguous copy
            block = np.ascontiguousarray(zs)
            os_[...] = LOSSES[head.loss].forward(block, np.empty_like(block))
        return out

    def parts(self, z, a, y, w=None) -> list[float]:
        """Each head's own loss (unweighted by λ), a mean over the rows."""
        values = []
        for head, _, (zs, as_, ys, ws) in self._blocks(z, a, y, w):
            values.append(LOSSES[head.loss].value(np.ascontiguousarray(zs), np.ascontiguousarray(as_),
                                                  np.ascontiguousarray(ys),
                                                  None if ws is None else np.ascontiguousarray(ws[..., :1])))
        return values

    def value(self, z, a, y, w=None) -> float:
        """L = Σ λ_t · L_t."""
        return float(sum(lam * v for lam, v in zip(self.weights, self.parts(z, a, y, w))))

    def delta(self, z, a, y, out):
        """dL/dz: each block's own delta times its λ (row weights are applied by the caller)."""
        for head, lam, (zs, as_, ys, os_) in self._blocks(z, a, y, out):
            block = np.empty(zs.shape, dtype=out.dtype)
            LOSSES[head.loss].delta(np.ascontiguousarray(zs), np.ascontiguousarray(as_), np.ascontiguousarray(ys),
                                    block)
            np.multiply(block, lam, out=os_)
        return out

    def member_values(self, z, a, y, w=None) -> np.ndarray:
        """(K,) each member's Σ λ_t · L_t of (K, rows, outputs) arrays."""
        total = 0.0
        for head, lam, (zs, as_, ys, ws) in self._blocks(z, a, y, w):
            total = total + lam * member_values(head.loss, zs, as_, ys, None if ws is None else ws[..., :1])
        return total

    def logits(self, a: np.ndarray) -> np.ndarray:
        """Pre-head values whose heads give the outputs `a`: per block, as Network.output_logits."""
        from .network import head_logits

        z = np.empty_like(a)
        for head, _, (as_, zs) in self._blocks(a, z):
            zs[...] = head_logits(LOSSES[head.loss].output, as_)
        return z
