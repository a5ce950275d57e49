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

    def backward_buffers(self, fan_in, input_delta=True):
        return {"dx": fan_in}

    def _normalize(self, buf, inv_std) -> np.ndarray:
        """inv_std holds σ² + eps: it becomes 1/√(σ² + eps), x̂ (holding x - μ) is scaled by it,
        and out = γ ⊙ x̂ + β is written into the out buffer."""
        np.sqrt(inv_std, out=inv_std)
        np.divide(1.0, inv_std, out=inv_std)
        buf.xhat *= inv_std
        out = np.multiply(buf.xhat, self.gamma, out=buf.out)
        out += self.beta
        return out

    def _param_grads(self, delta, buf) -> None:
        """∂L/∂γ = Σ_rows delta ⊙ x̂,  ∂L/∂β = Σ_rows delta  (dx is scratch here)."""
        np.multiply(delta, buf.xhat, out=buf.dx)
        np.dot(buf.ones, buf.dx, out=self.dgamma)
        np.dot(buf.ones, delta, out=self.dbeta)


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
    min_rows = 2  # a batch of one row cannot be normalized in training

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

    def scratch(self, fan_in):
        # per-column statistics, (units,): in the workspace, so a batch allocates nothing
        return {name: (fan_in,) for name in ("mean", "var", "inv_std", "coef")}

    @classmethod
    def from_saved(cls, settings, arrays):
        return cls(arrays["gamma"], arrays["beta"], arrays["running_mean"], arrays["running_var"], **settings)

    def settings(self):
        return {"eps": self.eps, "momentum": self.momentum}

    def describe(self):
        return "batch norm"

    def forward(self, x, training=False, buf=None):
        buf = self.begin(x, buf)
        buf.training = training  # the mode of this pass, which backward follows
        # read through `state`: the network re-casts those arrays to its dtype
        running_mean, running_var = self.state["running_mean"], self.state["running_var"]
        mean, var, inv_std = buf.mean, buf.var, buf.inv_std
        if training:
            n = x.shape[0]
            if n < 2:
                raise ValueError(ONE_ROW)
            np.mean(x, axis=0, out=mean)
            xc = np.subtract(x, mean, out=buf.xhat)
            np.einsum("ij,ij->j", xc, xc, out=var)
            var /= n
            running_mean *= 1 - self.momentum
            running_mean += self.momentum * mean
            running_var *= 1 - self.momentum
            running_var += (self.momentum * n / (n - 1)) * var
        else:
            np.copyto(var, running_var)
            np.subtract(x, running_mean, out=buf.xhat)
        np.add(var, self.eps, out=inv_std)
        return self._normalize(buf, inv_std)

    def backward(self, delta, buf):
        self._param_grads(delta, buf)
        dx, coef = buf.dx, buf.coef
        if buf.training:
            # (n·g - Σ g - x̂ ⊙ Σ g ⊙ x̂)/n with g = delta ⊙ γ is γ ⊙ (delta - ∂L/∂β/n - x̂ ⊙ ∂L/∂γ/n)
            n = delta.shape[0]
            np.multiply(buf.xhat, np.divide(self.dgamma, n, out=coef), out=dx)
            np.subtract(delta, dx, out=dx)
            dx -= np.divide(self.dbeta, n, out=coef)
        else:
            np.copyto(dx, delta)
        dx *= np.multiply(self.gamma, buf.inv_std, out=coef)
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

    def backward_buffers(self, fan_in, input_delta=True):
        return {"dx": fan_in, "work": fan_in, "row_gx": 1}

    def forward(self, x, training=False, buf=None):
        buf = self.begin(x, buf)
        inv_std = buf.inv_std
        np.mean(x, axis=1, keepdims=True, out=buf.row)
        xc = np.subtract(x, buf.row, out=buf.xhat)
        np.einsum("ij,ij->i", xc, xc, out=inv_std[:, 0])
        inv_std /= x.shape[1]
        inv_std += self.eps
        return self._normalize(buf, inv_std)

    def backward(self, delta, buf):
        self._param_grads(delta, buf)
        g = np.multiply(delta, self.gamma, out=buf.dx)
        d = g.shape[1]
        gx = np.einsum("ij,ij->i", g, buf.xhat, out=buf.row_gx[:, 0])
        gx /= d
        g -= np.mean(g, axis=1, keepdims=True, out=buf.row)
        g -= np.multiply(buf.xhat, buf.row_gx, out=buf.work)
        g *= buf.inv_std
        return g


NORMALIZATIONS = {"batch": BatchNorm, "layer": LayerNorm}  # model.normalization -> its layer
