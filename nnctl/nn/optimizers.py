"""Optimizers: PyTorch's update equations, each a class that owns its state.

Each optimizer owns its state (velocities, moments, step count) and has one method, `step`,
that updates the parameters in place from their gradients and the learning rate. Hyper-parameters
are plain arguments named as PyTorch names them (`Adam(params, betas=(0.9, 0.999), eps=1e-8,
weight_decay=0.0)`). `weight_decay` is PyTorch's: `g + weight_decay * W` where decay applies
(weight matrices, not biases); for AdamW (`decoupled=True`) it is the decoupled form
`W *= 1 - lr * weight_decay`. Gradients are modified in place; parameters, gradients and state
share one dtype.

Per member: K networks' parameters as one (K, P) array (a population's, member-major) may each
have their own learning rate and weight decay. `lr` and `weight_decay` are then (K, 1) arrays
that broadcast over each member's row, so K members with K rates are still a few whole-array
operations, and member k's row follows exactly the update it would alone: given in float64,
each factor they make (`lr / (1 - b1^t)`, `lr * l2`) is rounded to the parameters' dtype once
(`_own`), as a run alone's Python float is.
"""
from __future__ import annotations

import math

import numpy as np


def _own(factor, like):
    """`factor` in `like`'s dtype: a per-member (K, 1) array computed in float64 is then rounded
    once, as NumPy rounds a run alone's Python float, and the update's arithmetic stays in
    float32 (a float64 array would promote it)."""
    return factor.astype(like.dtype, copy=False) if isinstance(factor, np.ndarray) else factor


class Optimizer:
    """`params`: arrays updated in place. `STATE` names the lists of arrays (one per parameter
    array) that carry over from step to step; with the step count `t` they are everything needed
    to continue exactly where an optimizer stopped (`state` / `load_state`). `decay`: per array, whether l2 applies — True/False,
    or a 0/1 mask of the array's shape (a network's flat parameters mix weights and biases).
    By default weight matrices (2-d) are decayed and bias vectors are not."""

    def __init__(self, params, weight_decay=0.0, decay=None):
        self.params = params
        self.decay = decay if decay is not None else [p.ndim == 2 for p in params]
        self.l2 = weight_decay
        self.decays = bool(np.any(weight_decay))  # a float, or (K, 1) per member: tested once, not per step
        self.scratch = [np.empty_like(p) for p in params]
        self.t = 0

    STATE: tuple = ()

    def state(self) -> dict:
        """{'velocities0': array, ...} copies of the state, plus the step count as 't'."""
        arrays = {f"{name}{i}": a.copy() for name in self.STATE for i, a in enumerate(getattr(self, name))}
        return {"t": self.t, **arrays}

    def load_state(self, state: dict) -> None:
        """Continue from `state()`'s result; a missing array or another shape is a ValueError."""
        for name in self.STATE:
            for i, a in enumerate(getattr(self, name)):
                saved = state.get(f"{name}{i}")
                if saved is None:
                    raise ValueError(f"{name}{i} is missing")
                if saved.shape != a.shape:
                    raise ValueError(f"{name}{i} has shape {saved.shape}, the optimizer's is {a.shape}")
                np.copyto(a, saved)
        self.t = int(state["t"])

    def _weights_only(self, i, values, factor):
        """scratch[i] = factor * values where weight decay applies, 0 elsewhere (or None)."""
        mask, s = self.decay[i], self.scratch[i]
        if mask is False or mask is None:
            return None
        np.multiply(values, factor, out=s)
        if mask is not True:
            s *= mask
        return s

    def _decayed(self, i, g):
        if self.decays:
            s = self._weights_only(i, self.params[i], _own(self.l2, g))
            if s is not None:
                g += s
        return g

    def step(self, grads, lr) -> None:
        """One update of every array from `grads` at learning rate `lr` (a float, or (K, 1) per
        member of (K, P) arrays)."""
        self.t += 1
        for i, (p, g) in enumerate(zip(self.params, grads)):
            self._update(i, p, self._decayed(i, g), lr)

    def _update(self, i, p, g, lr):  # pragma: no cover - every optimizer defines it
        raise NotImplementedError


class SGD(Optimizer):
    """p -= lr * g"""

    def _update(self, i, p, g, lr):
        np.multiply(g, _own(lr, g), out=self.scratch[i])
        p -= self.scratch[i]


class Momentum(Optimizer):
    """v = momentum * v + g;  p -= lr * v   (nesterov: p -= lr * (g + momentum * v))"""

    def __init__(self, params, momentum=0.9, nesterov=False, weight_decay=0.0, decay=None):
        super().__init__(params, weight_decay, decay)
        self.momentum, self.nesterov = momentum, nesterov
        self.velocities = [np.zeros_like(p) for p in params]

    STATE = ("velocities",)

    def _update(self, i, p, g, lr):
        v, s = self.velocities[i], self.scratch[i]
        v *= self.momentum
        v += g
        if self.nesterov:
            np.multiply(v, self.momentum, out=s)
            s += g
        else:
            np.copyto(s, v)
        s *= _own(lr, s)
        p -= s


class Adam(Optimizer):
    """m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2;
    p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)   (PyTorch's form)"""

    def __init__(self, params, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False, decay=None):
        super().__init__(params, 0.0 if decoupled else weight_decay, decay)
        (self.beta1, self.beta2), self.eps = betas, eps
        self.decoupled_l2 = weight_decay if decoupled else 0.0
        self.decouples = bool(np.any(self.decoupled_l2))
        self.ms = [np.zeros_like(p) for p in params]
        self.vs = [np.zeros_like(p) for p in params]
        self._c1 = self._c2_sqrt = 1.0  # bias corrections of the step being taken

    STATE = ("ms", "vs")

    def step(self, grads, lr):
        self._c1 = 1.0 - self.beta1 ** (self.t + 1)
        self._c2_sqrt = math.sqrt(1.0 - self.beta2 ** (self.t + 1))
        super().step(grads, lr)

    def _update(self, i, p, g, lr):
        m, v, s = self.ms[i], self.vs[i], self.scratch[i]
        if self.decouples:  # AdamW: W -= lr * l2 * W, weights only
            shrink = self._weights_only(i, p, _own(lr * self.decoupled_l2, p))
            if shrink is not None:
                p -= shrink
        m *= self.beta1
        np.multiply(g, 1.0 - self.beta1, out=s)
        m += s
        v *= self.beta2
        np.multiply(g, g, out=s)
        s *= 1.0 - self.beta2
        v += s
        np.sqrt(v, out=s)
        s /= self._c2_sqrt
        s += self.eps
        np.divide(m, s, out=s)
        s *= _own(lr / self._c1, s)
        p -= s


class RMSprop(Optimizer):
    """v = alpha*v + (1-alpha)*g^2;  p -= lr * g / (sqrt(v) + eps)"""

    def __init__(self, params, alpha=0.99, eps=1e-8, weight_decay=0.0, decay=None):
        super().__init__(params, weight_decay, decay)
        self.alpha, self.eps = alpha, eps
        self.square_avgs = [np.zeros_like(p) for p in params]

    STATE = ("square_avgs",)

    def _update(self, i, p, g, lr):
        v, s = self.square_avgs[i], self.scratch[i]
        v *= self.alpha
        np.multiply(g, g, out=s)
        s *= 1.0 - self.alpha
        v += s
        np.sqrt(v, out=s)
        s += self.eps
        np.divide(g, s, out=s)
        s *= _own(lr, s)
        p -= s


# name -> (class, fixed arguments): the names users choose from
OPTIMIZERS = {
    "sgd": (SGD, {}),
    "momentum": (Momentum, {}),
    "nesterov": (Momentum, {"nesterov": True}),
    "adam": (Adam, {}),
    "adamw": (Adam, {"decoupled": True}),
    "rmsprop": (RMSprop, {}),
}
