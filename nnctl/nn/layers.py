"""Layers: the rooms a network is built from, each with one small contract.

A layer maps a batch `x` (rows, fan_in) to `out` (rows, units) in `forward(x, training)`, and in
`backward(delta)` takes dL/d(out) and returns dL/dx, filling the gradients of its own arrays on
the way. Between the two it keeps what backward needs (its input, masks, ...) in its buffers.

What a layer has, by name:
- `params`  trainable arrays (`W`, `b`, later `gamma`, ...). The network moves them into one flat
            array and gives the layer views of it (an optimizer detail: see `Network`);
- `grads`   their gradients, same names and shapes, views of the network's flat gradient array;
- `state`   arrays that are not trained but are part of the model (e.g. running statistics):
            saved with it, never touched by the optimizer or by weight decay;
- `decay`   whether weight decay (l2) applies to each param: weight matrices yes, biases no.

`settings()` is the JSON that `model.npz` stores for the layer beside its `type`, and
`LAYERS[type].from_saved(settings, arrays)` builds it back. A new layer type is a subclass here
(or anywhere: `register` it) with its derivative beside its function.

Buffers: a layer names the per-row arrays it wants (`buffers`, `backward_buffers`: name ->
columns); the network allocates them once for the largest batch and hands each batch size
row-slices of them, as attributes (`self.out`, `self.dx`, ...), so training allocates nothing
per batch. `self.ones` is a (rows,) vector of ones for sums over rows as one BLAS product.
"""
from __future__ import annotations

import numpy as np

from .activations import ACTIVATIONS


class Layer:
    """The contract; subclasses override what they need."""

    type = ""  # the name model.npz stores
    # False for the network's first layer: nothing before it needs dL/dx, so it is not computed
    input_delta = True

    def __init__(self):
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.state: dict[str, np.ndarray] = {}
        self.decay: dict[str, bool] = {}
        self.x = None  # the input of the last forward pass

    def settings(self) -> dict:
        """What model.npz stores for this layer beside its type (JSON)."""
        return {}

    @classmethod
    def from_saved(cls, settings: dict, arrays: dict) -> "Layer":
        """The layer back from its `settings()` and its saved params and state by name."""
        return cls(**settings)

    def units(self, fan_in: int) -> int:
        """Output columns for `fan_in` input columns (ValueError when it cannot take them)."""
        return fan_in

    def buffers(self, fan_in: int) -> dict[str, int]:
        """Per-row arrays that forward writes: name -> columns."""
        return {"out": self.units(fan_in)}

    def backward_buffers(self, fan_in: int) -> dict[str, int]:
        """Per-row arrays that backward writes: name -> columns."""
        return {}

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def backward(self, delta: np.ndarray) -> np.ndarray | None:  # pragma: no cover
        raise NotImplementedError

    def describe(self) -> str:
        """A short name for tables: `dense 16`, `relu`."""
        return self.type

    def attach(self, params: dict, grads: dict) -> None:
        """Take the network's views of this layer's params and grads (same names, shapes)."""
        self.params, self.grads = params, grads


LAYERS: dict[str, type] = {}


def register(cls):
    """Make a layer type loadable from model.npz by its `type`."""
    LAYERS[cls.type] = cls
    return cls


@register
class Dense(Layer):
    """out = x @ W + b.   W: (fan_in, units), b: (units,).

    backward: dL/dW = xᵀ @ delta, dL/db = 1ᵀ @ delta (the sum over rows), dL/dx = delta @ Wᵀ."""

    type = "dense"

    def __init__(self, W: np.ndarray, b: np.ndarray):
        super().__init__()
        W, b = np.asarray(W), np.asarray(b)
        if W.ndim != 2 or b.shape != (W.shape[1],):
            raise ValueError(f"W {W.shape} and b {b.shape} are not a dense layer")
        self.params = {"W": W, "b": b.astype(W.dtype, copy=False)}
        self.decay = {"W": True, "b": False}
        self.attach(self.params, {"W": np.zeros_like(W), "b": np.zeros_like(self.params["b"])})

    @classmethod
    def from_saved(cls, settings: dict, arrays: dict) -> "Dense":
        layer = cls(arrays["W"], arrays["b"])
        if settings.get("units", layer.W.shape[1]) != layer.W.shape[1]:
            raise ValueError(f"settings say {settings['units']} units, W has {layer.W.shape[1]}")
        return layer

    def attach(self, params, grads):
        super().attach(params, grads)
        self.W, self.b, self.dW, self.db = params["W"], params["b"], grads["W"], grads["b"]

    @property
    def fan_in(self) -> int:
        return self.W.shape[0]

    def settings(self):
        return {"units": int(self.W.shape[1])}

    def describe(self):
        return f"dense {self.W.shape[1]}"

    def units(self, fan_in):
        if fan_in != self.W.shape[0]:
            raise ValueError(f"a dense layer of {self.W.shape[0]} inputs cannot take {fan_in}")
        return self.W.shape[1]

    def backward_buffers(self, fan_in):
        return {"dx": fan_in} if self.input_delta else {}

    def forward(self, x, training=False):
        self.x = x
        # np.dot rather than np.matmul: less dispatch per call on small products
        out = np.dot(x, self.W, out=self.out)
        out += self.b
        return out

    def backward(self, delta):
        np.dot(self.x.T, delta, out=self.dW)
        np.dot(self.ones, delta, out=self.db)
        if self.input_delta:
            return np.dot(delta, self.W.T, out=self.dx)
        return None


@register
class Activation(Layer):
    """out = f(x), elementwise; backward multiplies delta in place by f'(x) (`activations.py`
    keeps each f and f' side by side). Activations have no arrays."""

    type = "activation"

    def __init__(self, name: str):
        super().__init__()
        if name not in ACTIVATIONS:
            raise ValueError(f"unknown activation {name!r}")
        self.name = name
        self.function = ACTIVATIONS[name]
        self._forward, self._backward = self.function.forward, self.function.backward

    def settings(self):
        return {"name": self.name}

    def describe(self):
        return self.name

    def buffers(self, fan_in):
        # `saved`: what f keeps for f' (autograd's "save for backward"), e.g. ReLU's 0/1 mask
        return {"out": fan_in, "saved": fan_in}

    def forward(self, x, training=False):
        self.x = x
        return self._forward(x, self.out, self.saved)

    def backward(self, delta):
        # delta is the next layer's dL/dx buffer, free to be overwritten with this layer's
        self._backward(delta, self.x, self.out, self.saved)
        return delta


@register
class Dropout(Layer):
    """Inverted dropout, as torch.nn.Dropout: in training out = x ⊙ m, m = 1{u ≥ p} / (1 − p)
    with u ~ U[0, 1) drawn anew each forward pass, so the expected output is x; in evaluation
    out = x (the layer is the identity, and export drops it).

    backward: dL/dx = delta ⊙ m (the same mask; in evaluation, delta). The masks come from
    `rng`, a numpy Generator the network's dropout layers share (its state goes into
    checkpoints). `frozen` keeps the last mask instead of drawing one, so a gradient check's
    forward passes all see the same function. `record()` is what trace shows beside the
    output: the mask's share of zeros."""

    type = "dropout"

    def __init__(self, rate: float, rng: np.random.Generator | None = None):
        super().__init__()
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"a dropout rate must be in [0, 1), got {rate}")
        self.rate = float(rate)
        self.scale = 1.0 / (1.0 - self.rate)
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.frozen = False
        self.training = False  # the mode of the last forward pass, which backward follows

    def settings(self):
        return {"rate": self.rate}

    def describe(self):
        return f"dropout {self.rate:g}"

    def buffers(self, fan_in):
        return {"out": fan_in, "mask": fan_in}

    def forward(self, x, training=False):
        self.x, self.training = x, training
        if not training:
            return x
        mask = self.mask
        if not self.frozen:
            # drawn into the preallocated buffer: no allocation per batch
            self.rng.random(dtype=mask.dtype, out=mask)
            np.greater_equal(mask, self.rate, out=mask)
            mask *= self.scale
        return np.multiply(x, mask, out=self.out)

    def backward(self, delta):
        if self.training:  # in evaluation the layer is the identity, and so is its derivative
            delta *= self.mask  # delta is the next layer's dL/dx buffer, free to overwrite
        return delta

    def record(self) -> dict:
        return {"mask_zeros": float(1.0 - np.count_nonzero(self.mask) / self.mask.size) if self.mask.size else 0.0}
# layer types kept in modules beside this one register themselves on import: loading a model.npz
# that has them needs only LAYERS
from . import normalization  # noqa: E402,F401
from . import embedding  # noqa: E402,F401
