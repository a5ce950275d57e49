"""Normalization layers: batch norm and layer norm, as PyTorch's `BatchNorm1d` and `LayerNorm`.

Both standardize their input and then scale and shift it by learned arrays:

    x̂ = (x - μ) / √(σ² + eps),    out = γ ⊙ x̂ + β        γ (gamma): (units,), β (beta): (units,)

They differ in what μ and σ² are taken over:
- batch norm: each column over the batch's rows (in training), or the running statistics kept
  while training (in evaluation: a row's output then does not depend on the others);
- layer norm: each row over its columns, the same in training and evaluation.

σ² is the biased variance (divided by n), as PyTorch normalizes. γ and β are not decayed by l2.

With members, γ, β and the running statistics are (K, units) and x is (K, rows, units) (a shared
(rows, units) input is read as the same rows for every member): each member normalizes alone.
"""
from __future__ import annotations

import numpy as np

from .layers import Layer, register

EPS = 1e-5
MOMENTUM = 0.1
ONE_ROW = "Expected more than 1 value per channel when training"  # PyTorch's words, kept


def _cols(v: np.ndarray, members) -> np.ndarray:
    """A per-column array, (units,) or (K, units), as it broadcasts against (K, rows, units)."""
    return v if members is None else v[:, None, :]


class _Norm(Layer):
    """What both share: γ and β of `units` columns, eps, and the buffers."""

    def __init__(self, gamma, beta, eps: float = EPS):
        super().__init__()
        gamma = np.asarray(gamma)
        beta = np.asarray(beta, dtype=gamma.dtype)
        if gamma.ndim not in (1, 2) or beta.shape != gamma.shape:
            raise ValueError(f"gamma {gamma.shape} and beta {beta.shape} are not a {self.type} layer")
        self.members = gamma.shape[0] if gamma.ndim == 2 else None
        self.eps = float(eps)
        self.params = {"gamma": gamma, "beta": beta}
        self.decay = {"gamma": False, "beta": False}
        self.attach(self.params, {"gamma": np.zeros_like(gamma), "beta": np.zeros_like(beta)})

    @classmethod
    def fresh(cls, units: int, dtype=np.float32, members: int | None = None) -> "_Norm":
        """γ = 1, β = 0 (and running mean 0, running variance 1): PyTorch's initial values;
        (K, units) each with `members`."""
        shape = (units,) if members is None else (members, units)
        return cls(np.ones(shape, dtype=dtype), np.zeros(shape, dtype=dtype))

    def attach(self, params, grads):
        super().attach(params, grads)
        self.gamma, self.beta, self.dgamma, self.dbeta = params["gamma"], params["beta"], grads["gamma"], grads["beta"]

    def units(self, fan_in):
        if fan_in != self.gamma.shape[-1]:
            raise ValueError(f"a {self.type} layer of {self.gamma.shape[-1]} units cannot take {fan_in}")
        return fan_in

    def begin(self, x, buf):
        if self.members is not None and x.ndim == 2:
            x = np.broadcast_to(x, (self.members,) + x.shape)  # a view: every member reads the same rows
        return super().begin(x, buf)

    def _input_delta(self, dx, buf):
        """dx, or for an input the members share, the sum of their deltas."""
        return dx.sum(axis=0) if self.members is not None and buf.x.strides[0] == 0 else dx

    def buffers(self, fan_in):
        return {"out": fan_in, "xhat": fan_in}

    def backward_buffers(self, fan_in, input_delta=True):
        return {"dx": fan_in}

    def _normalize(self, buf, inv_std, per_column: bool) -> np.ndarray:
        """inv_std holds σ² + eps: it becomes 1/√(σ² + eps), x̂ (holding x - μ) is scaled by it,
        and out = γ ⊙ x̂ + β is written into the out buffer."""
        np.sqrt(inv_std, out=inv_std)
        np.divide(1.0, inv_std, out=inv_std)
        buf.xhat *= _cols(inv_std, self.members) if per_column else inv_std
        out = np.multiply(buf.xhat, _cols(self.gamma, self.members), out=buf.out)
        out += _cols(self.beta, self.members)
        return out

    def _param_grads(self, delta, buf) -> None:
        """∂L/∂γ = Σ_rows delta ⊙ x̂,  ∂L/∂β = Σ_rows delta  (dx is scratch here)."""
        rowsum = np.dot if self.members is None else np.matmul
        np.multiply(delta, buf.xhat, out=buf.dx)
        rowsum(buf.ones, buf.dx, out=self.dgamma)
        rowsum(buf.ones, delta, out=self.dbeta)


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
        shape, dtype = self.gamma.shape, self.gamma.dtype
        self.momentum = float(momentum)
        mean = np.zeros(shape, dtype) if running_mean is None else np.asarray(running_mean, dtype=dtype)
        var = np.ones(shape, dtype) if running_var is None else np.asarray(running_var, dtype=dtype)
        if mean.shape != shape or var.shape != shape:
            raise ValueError(f"running statistics {mean.shape}, {var.shape} do not fit {shape} units")
        self.state = {"running_mean": mean, "running_var": var}

    def scratch(self, fan_in):
        # per-column statistics, (units,) or (K, units): in the workspace, so a batch allocates nothing
        return {name: self.gamma.shape for name in ("mean", "var", "inv_std", "coef")}

    @classmethod
    def from_saved(cls, settings, arrays):
        return cls(arrays["gamma"], arrays["beta"], arrays["running_mean"], arrays["running_var"], **settings)

    def settings(self):
        return {"eps": self.eps, "momentum": self.momentum}

    def describe(self):
        return "batch norm"

    def forward(self, x, training=False, buf=None):
        buf = self.begin(x, buf)
        x, K = buf.x, self.members
        buf.training = training  # the mode of this pass, which backward follows
        # read through `state`: the network re-casts those arrays to its dtype
        running_mean, running_var = self.state["running_mean"], self.state["running_var"]
        mean, var, inv_std = buf.mean, buf.var, buf.inv_std
        if training:
            n = x.shape[-2]
            if n < 2:
                raise ValueError(ONE_ROW)
            np.mean(x, axis=-2, out=mean)
            xc = np.subtract(x, _cols(mean, K), out=buf.xhat)
            np.einsum("...ij,...ij->...j", xc, xc, out=var)
            var /= n
            running_mean *= 1 - self.momentum
            running_mean += self.momentum * mean
            running_var *= 1 - self.momentum
            running_var += (self.momentum * n / (n - 1)) * var
        else:
            np.copyto(var, running_var)
            np.subtract(x, _cols(running_mean, K), out=buf.xhat)
        np.add(var, self.eps, out=inv_std)
        return self._normalize(buf, inv_std, per_column=True)

    def backward(self, delta, buf):
        self._param_grads(delta, buf)
        dx, coef, K = buf.dx, buf.coef, self.members
        if buf.training:
            # (n·g - Σ g - x̂ ⊙ Σ g ⊙ x̂)/n with g = delta ⊙ γ is γ ⊙ (delta - ∂L/∂β/n - x̂ ⊙ ∂L/∂γ/n)
            n = delta.shape[-2]
            np.multiply(buf.xhat, _cols(np.divide(self.dgamma, n, out=coef), K), out=dx)
            np.subtract(delta, dx, out=dx)
            dx -= _cols(np.divide(self.dbeta, n, out=coef), K)
        else:
            np.copyto(dx, delta)
        dx *= _cols(np.multiply(self.gamma, buf.inv_std, out=coef), K)
        return self._input_delta(dx, buf)


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
        x, inv_std = buf.x, buf.inv_std
        np.mean(x, axis=-1, keepdims=True, out=buf.row)
        xc = np.subtract(x, buf.row, out=buf.xhat)
        np.einsum("...ij,...ij->...i", xc, xc, out=inv_std[..., 0])
        inv_std /= x.shape[-1]
        inv_std += self.eps
        return self._normalize(buf, inv_std, per_column=False)

    def backward(self, delta, buf):
        self._param_grads(delta, buf)
        g = np.multiply(delta, _cols(self.gamma, self.members), out=buf.dx)
        d = g.shape[-1]
        gx = np.einsum("...ij,...ij->...i", g, buf.xhat, out=buf.row_gx[..., 0])
        gx /= d
        g -= np.mean(g, axis=-1, keepdims=True, out=buf.row)
        g -= np.multiply(buf.xhat, buf.row_gx, out=buf.work)
        g *= buf.inv_std
        return self._input_delta(g, buf)


NORMALIZATIONS = {"batch": BatchNorm, "layer": LayerNorm}  # model.normalization -> its layer
