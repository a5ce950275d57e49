"""Normalization layers: batch norm and layer norm, as PyTorch's `BatchNorm1d` and `LayerNorm`.

Both standardize their input and then scale and shift it by learned arrays:

    x̂ = (x - μ) / √(σ² + eps),    out = γ ⊙ x̂ + β        γ (gamma): (units,), β (beta): (units,)

They differ in what μ and σ² are taken over:
- batch norm: each column over the batch's rows (in training), or the running statistics kept
  while training (in evaluation: a row's output then does not depend on the others);
- layer norm: each row over its columns, the same in training and evaluation.

σ² is the biased variance (divided by n), as PyTorch normalizes. γ and β are not decayed by l2.
"""
from __future__ import annotations

import numpy as np

from .layers import Layer, register

EPS = 1e-5
MOMENTUM = 0.1
ONE_ROW = "Expected more than 1 value per channel when training"  # PyTorch's words, kept


class _Norm(Layer):
    """What both share: γ and β of `units` columns, eps, and the buffers."""

    def __init__(self, gamma, beta, eps: float = EPS):
        super().__init__()
        gamma = np.asarray(gamma)
        beta = np.asarray(beta, dtype=gamma.dtype)
        if gamma.ndim != 1 or beta.shape != gamma.shape:
            raise ValueError(f"gamma {gamma.shape} and beta {beta.shape} are not a {self.type} layer")
        self.eps = float(eps)
        self.params = {"gamma": gamma, "beta": beta}
        self.decay = {"gamma": False, "beta": False}
        self.attach(self.params, {"gamma": np.zeros_like(gamma), "beta": np.zeros_like(beta)})

    @classmethod
    def fresh(cls, units: int, dtype=np.float32) -> "_Norm":
        """γ = 1, β = 0 (and running mean 0, running variance 1): PyTorch's initial values."""
        return cls(np.ones(units, dtype=dtype), np.zeros(units, dtype=dtype))

    def attach(self, params, grads):
        super().attach(params, grads)
        self.gamma, self.beta, self.dgamma, self.dbeta = params["gamma"], params["beta"], grads["gamma"], grads["beta"]

    def units(self, fan_in):
        if fan_in != self.gamma.shape[0]:
            raise ValueError(f"a {self.type} layer of {self.gamma.shape[0]} units cannot take {fan_in}")
        return fan_in

    def buffers(self, fan_in):
        return {"out": fan_in, "xhat": fan_in}

    def backward_buffers(self, fan_in):
        return {"dx": fan_in}

    def _scale_shift(self) -> np.ndarray:
        """out = γ ⊙ x̂ + β, written into the out buffer."""
        out = np.multiply(self.xhat, self.gamma, out=self.out)
        out += self.beta
        return out

    def _param_grads(self, delta) -> None:
        """∂L/∂γ = Σ_rows delta ⊙ x̂,  ∂L/∂β = Σ_rows delta  (dx is scratch here)."""
        np.multiply(delta, self.xhat, out=self.dx)
        np.dot(self.ones, self.dx, out=self.dgamma)
        np.dot(self.ones, delta, out=self.dbeta)


@register
class BatchNorm(_Norm):
    """Batch normalization over the rows of a batch, per column (`torch.nn.BatchNorm1d`).

    training: μ, σ² = the batch's column mean and biased variance; then
        running_mean ← (1 - momentum)·running_mean + momentum·μ
        running_var  ← (1 - momentum)·running_var  + momentum·σ²·n/(n - 1)   (unbiased, as PyTorch)
    evaluation: μ, σ² = running_mean, running_var.

    backward, training (n rows, g = delta ⊙ γ; μ and σ² depend on every row):
        ∂L/∂x = (1/n)·(1/√(σ² + eps))·(n·g - Σ_rows g - x̂ ⊙ Σ_rows g ⊙ x̂)
    evaluation (μ, σ² are constants): ∂L/∂x = g / √(running_var + eps).
    A batch of one row cannot be normalized in training: its variance is 0 and x̂ is 0."""

    type = "batch_norm"

    def __init__(self, gamma, beta, running_mean=None, running_var=None, eps: float = EPS,
                 momentum: float = MOMENTUM):
        super().__init__(gamma, beta, eps)
        units, dtype = self.gamma.shape[0], self.gamma.dtype
        self.momentum = float(momentum)
        mean = np.zeros(units, dtype) if running_mean is None else np.asarray(running_mean, dtype=dtype)
        var = np.ones(units, dtype) if running_var is None else np.asarray(running_var, dtype=dtype)
        if mean.shape != (units,) or var.shape != (units,):
            raise ValueError(f"running statistics {mean.shape}, {var.shape} do not fit {units} units")
        self.state = {"running_mean": mean, "running_var": var}
        self.training = False  # the mode of the last forward pass, which backward follows

    def attach(self, params, grads):
        super().attach(params, grads)
        # per-column scratch, (units,), in the network's dtype: made once, so a batch allocates nothing
        units, dtype = self.gamma.shape[0], self.gamma.dtype
        self._mean, self._var, self._inv_std, self._coef = (np.empty(units, dtype) for _ in range(4))

    @classmethod
    def from_saved(cls, settings, arrays):
        return cls(arrays["gamma"], arrays["beta"], arrays["running_mean"], arrays["running_var"], **settings)

    def settings(self):
        return {"eps": self.eps, "momentum": self.momentum}

    def describe(self):
        return "batch norm"

    def forward(self, x, training=False):
        self.x, self.training = x, training
        # read through `state`: the network re-casts those arrays to its dtype
        running_mean, running_var = self.state["running_mean"], self.state["running_var"]
        mean, var, inv_std = self._mean, self._var, self._inv_std
        if training:
            n = x.shape[0]
            if n < 2:
                raise ValueError(ONE_ROW)
            np.mean(x, axis=0, out=mean)
            xc = np.subtract(x, mean, out=self.xhat)
            np.einsum("ij,ij->j", xc, xc, out=var)
            var /= n
            running_mean *= 1 - self.momentum
            running_mean += self.momentum * mean
            running_var *= 1 - self.momentum
            running_var += (self.momentum * n / (n - 1)) * var
        else:
            np.copyto(var, running_var)
            np.subtract(x, running_mean, out=self.xhat)
        np.add(var, self.eps, out=inv_std)
        np.sqrt(inv_std, out=inv_std)
        np.divide(1.0, inv_std, out=inv_std)
        self.xhat *= inv_std
        return self._scale_shift()

    def backward(self, delta):
        self._param_grads(delta)
        dx, coef = self.dx, self._coef
        if self.training:
            # (n·g - Σ g - x̂ ⊙ Σ g ⊙ x̂)/n with g = delta ⊙ γ is γ ⊙ (delta - ∂L/∂β/n - x̂ ⊙ ∂L/∂γ/n)
            n = delta.shape[0]
            np.multiply(self.xhat, np.divide(self.dgamma, n, out=coef), out=dx)
            np.subtract(delta, dx, out=dx)
            dx -= np.divide(self.dbeta, n, out=coef)
        else:
            np.copyto(dx, delta)
        dx *= np.multiply(self.gamma, self._inv_std, out=coef)
        return dx


@register
class LayerNorm(_Norm):
    """Layer normalization over the columns of each row (`torch.nn.LayerNorm(units)`): μ and
    σ² are each row's mean and biased variance, in training and evaluation alike.

    backward (D columns, g = delta ⊙ γ; μ and σ² of a row depend on all its columns):
        ∂L/∂x = (1/√(σ² + eps))·(g - mean_cols(g) - x̂ ⊙ mean_cols(g ⊙ x̂))"""

    type = "layer_norm"

    @classmethod
    def from_saved(cls, settings, arrays):
        return cls(arrays["gamma"], arrays["beta"], **settings)

    def settings(self):
        return {"eps": self.eps}

    def describe(self):
        return "layer norm"

    def buffers(self, fan_in):
        # per-row statistics, (rows, 1)
        return {"out": fan_in, "xhat": fan_in, "inv_std": 1, "row": 1}

    def backward_buffers(self, fan_in):
        return {"dx": fan_in, "scratch": fan_in, "row_gx": 1}

    def forward(self, x, training=False):
        self.x = x
        np.mean(x, axis=1, keepdims=True, out=self.row)
        xc = np.subtract(x, self.row, out=self.xhat)
        np.einsum("ij,ij->i", xc, xc, out=self.inv_std[:, 0])
        self.inv_std /= x.shape[1]
        self.inv_std += self.eps
        np.sqrt(self.inv_std, out=self.inv_std)
        np.divide(1.0, self.inv_std, out=self.inv_std)
        self.xhat *= self.inv_std
        return self._scale_shift()

    def backward(self, delta):
        self._param_grads(delta)
        g = np.multiply(delta, self.gamma, out=self.dx)
        d = g.shape[1]
        gx = np.einsum("ij,ij->i", g, self.xhat, out=self.row_gx[:, 0])
        gx /= d
        g -= np.mean(g, axis=1, keepdims=True, out=self.row)
        g -= np.multiply(self.xhat, self.row_gx, out=self.scratch)
        g *= self.inv_std
        return g


NORMALIZATIONS = {"batch": BatchNorm, "layer": LayerNorm}  # model.normalization -> its layer
