"""Layers: the rooms a network is built from, each with one small contract.

A layer maps a batch `x` (rows, fan_in) to `out` (rows, units) in `forward(x, training, buf)`,
and in `backward(delta, buf)` takes dL/d(out) and returns dL/dx, filling the gradients of its own
arrays on the way.

What a layer has, by name (the model; the same for every caller):
- `params`  trainable arrays (`W`, `b`, later `gamma`, ...). The network moves them into one flat
            array and gives the layer views of it (an optimizer detail: see `Network`);
- `grads`   their gradients, same names and shapes, views of the network's flat gradient array;
- `state`   arrays that are not trained but are part of the model (e.g. running statistics):
            saved with it, never touched by the optimizer or by weight decay;
- `decay`   whether weight decay (l2) applies to each param: weight matrices yes, biases no.

What one pass writes is not the layer's: it lives in `buf`, a `Buffers` (`nn/workspace.py`) that
belongs to the caller. A layer names the per-row arrays it writes (`buffers`, `backward_buffers`:
name -> columns) and its fixed-shape scratch (`scratch`: name -> shape); a `Workspace` allocates
them once for the largest batch and hands each batch size views, so training allocates nothing
per batch, and any number of threads may run one model, each with its own workspace. Forward
keeps what backward needs in `buf` too (`buf.x`, its input; a mask; the mode). Without a `buf`,
`forward` makes fresh buffers: `Dense(W, b).forward(x)` works on its own.

The delta: `backward(delta, buf)` MAY overwrite `delta` (activation and dropout multiply it in
place): it is the next layer's dL/dx buffer, or the head's, which nothing reads afterwards. A
caller that needs its delta afterwards passes a copy. The returned dL/dx is a buffer of `buf`
(or `delta` itself), valid until the next pass with the same buffers.

Declared, so that code outside nn/ never asks a layer what it is (no type-string tests):
- `type`        the name model.npz stores (and the key of tables such as ONNX export's);
- `record(buf)` what trace shows beside the layer's output ({} by default; dropout: its mask's
                share of zeros);
- `rng`         the generator a random layer draws from (None for the others): training
                checkpoints its state; gradcheck freezes its noise through the workspace
                (`Workspace.freeze`), never by touching the layer;
- `min_rows`    the fewest rows a training batch may have (batch norm: 2);
- `describe()`  a short name for tables: `dense 16`, `relu`.

The member axis: every layer type takes an optional leading axis of K members, K networks of
one shape computed as one. Its params are then (K, ...) (`members` is K; None without the axis),
its input (K, rows, fan_in), or (rows, fan_in) shared by every member (a network's input), and
its output (K, rows, units). Members never mix: each is the layer it would be alone. Layers
without params (activation, dropout) take either shape as it comes.

`settings()` is the JSON that `model.npz` stores for the layer beside its `type`, and
`LAYERS[type].from_saved(settings, arrays)` builds it back. A new layer type is a subclass here
(or anywhere: `register` it) with its derivative beside its function.
"""
from __future__ import annotations

import numpy as np

from .activations import ACTIVATIONS
from .rowwise import TILE_ROWS, add_bias
from .workspace import Buffers, layer_buffers


class Layer:
    """The contract; subclasses override what they need."""

    type = ""  # the name model.npz stores
    rng: np.random.Generator | None = None  # a random layer's generator
    min_rows = 1  # the fewest rows of a training batch
    members: int | None = None  # K when the params have a leading member axis

    def __init__(self):
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.state: dict[str, np.ndarray] = {}
        self.decay: dict[str, bool] = {}

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

    def backward_buffers(self, fan_in: int, input_delta: bool = True) -> dict[str, int]:
        """Per-row arrays that backward writes: name -> columns. `input_delta`: whether it must
        return dL/dx (a network's first layer in training need not)."""
        return {}

    def scratch(self, fan_in: int) -> dict[str, tuple]:
        """Fixed-shape arrays a pass writes (not per row): name -> shape (member axis included)."""
        return {}

    def shared_input_buffers(self, fan_in: int) -> tuple[dict, dict]:
        """(per-row, fixed) arrays more that a layer with members needs when its input is
        shared by them, (rows, fan_in): per-row ones without the member axis."""
        return {}, {}

    def new_buffers(self, x: np.ndarray) -> Buffers:
        """Fresh buffers for a batch like `x`, forward's and backward's: for a layer on its own.
        The member axis comes from the layer (its params) or from a (K, rows, cols) input."""
        members = self.members or (x.shape[0] if x.ndim == 3 else None)
        return layer_buffers(self, x.shape[-2], x.shape[-1], x.dtype, members=members, shared=x.ndim == 2)

    def begin(self, x: np.ndarray, buf: Buffers | None) -> Buffers:
        """The buffers of a forward pass on x (fresh ones when `buf` is None), holding x."""
        if buf is None:
            buf = self.new_buffers(x)
        buf.x = x
        return buf

    def forward(self, x: np.ndarray, training: bool = False, buf: Buffers | None = None) -> np.ndarray:
        """x: (rows, fan_in) -> (rows, units), written into `buf` (fresh buffers when None)."""
        raise NotImplementedError  # pragma: no cover

    def backward(self, delta: np.ndarray, buf: Buffers) -> np.ndarray | None:
        """dL/d(out) (rows, units) -> dL/dx (rows, fan_in), or None when `buf.input_delta` is
        False; fills `grads`. `buf`: the buffers of the forward pass this follows. May overwrite
        `delta`."""
        raise NotImplementedError  # pragma: no cover

    def record(self, buf: Buffers) -> dict:
        """What trace shows beside this layer's output after a forward pass."""
        return {}

    def describe(self) -> str:
        """A short name for tables: `dense 16`, `relu`."""
        return self.type

    def attach(self, params: dict, grads: dict) -> None:
        """Take the network's views of this layer's params and grads (same names, shapes)."""
        self.params, self.grads = params, grads

    def leaves(self, path: tuple = ()):
        """(path, layer) of every layer that is no composite, in order: this one, with the
        names of the composites it sits in (`("body.0",)`); a composite yields its children's."""
        yield path, self


LAYERS: dict[str, type] = {}


def register(cls):
    """Make a layer type loadable from model.npz by its `type`."""
    LAYERS[cls.type] = cls
    return cls


# multiply-adds of a shared input's product with the members' W above which one GEMM against
# their W side by side beats K products (two BLAS threads on W3; at W1's and W2's batches the K
# products were 1.3-2x faster, one thread and two)
SHARED_GEMM = 2 ** 23


@register
class Dense(Layer):
    """out = x @ W + b.   W: (fan_in, units), b: (units,); with members (K, fan_in, units) and
    (K, units), each member's own product (a shared input: one GEMM against the members' W side
    by side).

    backward: dL/dW = xᵀ @ delta, dL/db = 1ᵀ @ delta (the sum over rows), dL/dx = delta @ Wᵀ."""

    type = "dense"

    def __init__(self, W: np.ndarray, b: np.ndarray):
        super().__init__()
        W, b = np.asarray(W), np.asarray(b)
        if W.ndim not in (2, 3) or b.shape != W.shape[:-2] + W.shape[-1:]:
            raise ValueError(f"W {W.shape} and b {b.shape} are not a dense layer")
        self.members = W.shape[0] if W.ndim == 3 else None
        self.params = {"W": W, "b": b.astype(W.dtype, copy=False)}
        self.decay = {"W": True, "b": False}
        self.attach(self.params, {"W": np.zeros_like(W), "b": np.zeros_like(self.params["b"])})

    @classmethod
    def from_saved(cls, settings: dict, arrays: dict) -> "Dense":
        layer = cls(arrays["W"], arrays["b"])
        if settings.get("units", layer.W.shape[-1]) != layer.W.shape[-1]:
            raise ValueError(f"settings say {settings['units']} units, W has {layer.W.shape[-1]}")
        return layer

    def attach(self, params, grads):
        super().attach(params, grads)
        self.W, self.b, self.dW, self.db = params["W"], params["b"], grads["W"], grads["b"]

    @property
    def fan_in(self) -> int:
        return self.W.shape[-2]

    def settings(self):
        return {"units": int(self.W.shape[-1])}

    def describe(self):
        return f"dense {self.W.shape[-1]}"

    def units(self, fan_in):
        if fan_in != self.W.shape[-2]:
            raise ValueError(f"a dense layer of {self.W.shape[-2]} inputs cannot take {fan_in}")
        return self.W.shape[-1]

    def scratch(self, fan_in):
        # with members: each member's W transposed, for backward's product into its input delta,
        # and their b repeated side by side (`rowwise.add_bias`)
        if self.members is None:
            return {}
        return {"W_T": (self.members, self.W.shape[-1], fan_in), "b_tile": (self.members, TILE_ROWS * self.W.shape[-1])}

    def shared_input_buffers(self, fan_in):
        if self.members is None:
            return {}, {}
        wide = self.members * self.W.shape[-1]
        # the members' W and b side by side, (fan_in, K·units) and (K·units,), and the product
        # x @ it, (rows, K·units)
        return {"wide": wide}, {"W_side": (fan_in, wide), "b_side": (wide,)}

    def backward_buffers(self, fan_in, input_delta=True):
        return {"dx": fan_in} if input_delta else {}

    def forward(self, x, training=False, buf=None):
        if buf is None:
            buf = self.new_buffers(x)
        buf.x = x  # as `begin`, inline: this is the hot path of every step
        if self.members is None:
            # np.dot rather than np.matmul: less dispatch per call on small products
            out = np.dot(x, self.W, out=buf.out)
            out += self.b
            return out
        out = buf.out
        K, fan_in, units = self.W.shape
        if x.ndim == 2 and len(x) * fan_in * K * units > SHARED_GEMM:
            # a large input shared by the members: one GEMM, then each member's block in place
            side = buf.W_side
            np.copyto(side.reshape(fan_in, K, units), self.W.transpose(1, 0, 2))
            wide = np.dot(x, side, out=buf.wide)
            # the bias added side by side too: one ufunc loop per row, not one per row and member
            np.copyto(buf.b_side.reshape(K, units), self.b)
            wide += buf.b_side
            np.copyto(out, wide.reshape(len(x), K, units).transpose(1, 0, 2))
            return out
        # each member's own product (a small shared input too: K small GEMMs and one bias add
        # cost less than the side-by-side copies, bias pass and transposing copy; same bits)
        np.matmul(x, self.W, out=out)
        return add_bias(out, self.b, buf.b_tile, buf)

    def backward(self, delta, buf):
        x = buf.x
        if self.members is None:
            np.dot(x.T, delta, out=self.dW)
            np.dot(buf.ones, delta, out=self.db)
            if buf.input_delta:
                return np.dot(delta, self.W.T, out=buf.dx)
            return None
        np.matmul(x.swapaxes(-1, -2), delta, out=self.dW)
        np.matmul(buf.ones, delta, out=self.db)
        if buf.input_delta:
            # W's members transposed into a contiguous copy first: matmul into `out` with a
            # transposed operand leaves BLAS for numpy's own loop
            W_T = np.copyto(buf.W_T, self.W.transpose(0, 2, 1)) or buf.W_T
            dx = np.matmul(delta, W_T, out=buf.dx)
            # a shared input's delta is the sum of the members'
            return dx.sum(axis=0) if x.ndim == 2 else dx
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

    def forward(self, x, training=False, buf=None):
        if buf is None:
            buf = self.new_buffers(x)
        buf.x = x
        return self._forward(x, buf.out, buf.saved)

    def backward(self, delta, buf):
        # delta is the next layer's dL/dx buffer, free to be overwritten with this layer's
        self._backward(delta, buf.x, buf.out, buf.saved)
        return delta


class _States:
    """`MemberGenerators.bit_generator`: its `state` is the list of the members' states, read and
    set as one generator's is (what training checkpoints)."""

    def __init__(self, generators):
        self.generators = generators

    @property
    def state(self) -> list:
        return [g.bit_generator.state for g in self.generators]

    @state.setter
    def state(self, states) -> None:
        if not isinstance(states, list) or len(states) != len(self.generators):
            raise ValueError(f"the dropout generators' states are not {len(self.generators)} members' states")
        for g, state in zip(self.generators, states):
            g.bit_generator.state = state


class MemberGenerators:
    """K members' generators used as one: `random(dtype, out)` fills member k's part of `out`
    (its leading axis) from generator k, so that each member draws the masks it draws alone. The
    K draws are a loop over members; only the draws are, never the arithmetic."""

    def __init__(self, generators):
        self.generators = list(generators)
        self.bit_generator = _States(self.generators)

    def random(self, dtype=np.float64, out=None):
        if out.ndim < 3 or out.shape[0] != len(self.generators):
            raise ValueError(f"members' masks are drawn into (K={len(self.generators)}, rows, units), "
                             f"not {out.shape}")
        for g, part in zip(self.generators, out):
            g.random(dtype=dtype, out=part)
        return out


@register
class Dropout(Layer):
    """Inverted dropout, as torch.nn.Dropout: in training out = x ⊙ m, m = 1{u ≥ p} / (1 − p)
    with u ~ U[0, 1) drawn anew each forward pass, so the expected output is x; in evaluation
    out = x (the layer is the identity, and export drops it).

    backward: dL/dx = delta ⊙ m (the same mask; in evaluation, delta). The masks come from
    `rng`, a numpy Generator the network's dropout layers share (its state goes into
    checkpoints); with members, a `MemberGenerators`: member k's masks from its own generator. A frozen workspace (`buf.frozen`) keeps the last mask instead of drawing one,
    so a gradient check's forward passes all see the same function. `record(buf)` is what trace
    shows beside the output: the mask's share of zeros."""

    type = "dropout"

    def __init__(self, rate: float, rng: np.random.Generator | None = None):
        super().__init__()
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"a dropout rate must be in [0, 1), got {rate}")
        self.rate = float(rate)
        self.scale = 1.0 / (1.0 - self.rate)
        self.rng = rng if rng is not None else np.random.default_rng(0)

    def settings(self):
        return {"rate": self.rate}

    def describe(self):
        return f"dropout {self.rate:g}"

    def buffers(self, fan_in):
        return {"out": fan_in, "mask": fan_in}

    def forward(self, x, training=False, buf=None):
        if not training:
            if buf is not None:
                buf.x, buf.training = x, False
            return x
        buf = self.begin(x, buf)
        buf.training = True  # the mode of this pass, which backward follows
        mask = buf.mask
        if not buf.frozen:
            # drawn into the preallocated buffer: no allocation per batch
            self.rng.random(dtype=mask.dtype, out=mask)
            np.greater_equal(mask, self.rate, out=mask)
            mask *= self.scale
        return np.multiply(x, mask, out=buf.out)

    def backward(self, delta, buf):
        if buf.training:  # in evaluation the layer is the identity, and so is its derivative
            delta *= buf.mask  # delta is the next layer's dL/dx buffer, free to overwrite
        return delta

    def record(self, buf) -> dict:
        mask = buf.mask
        return {"mask_zeros": float(1.0 - np.count_nonzero(mask) / mask.size) if mask.size else 0.0}
# layer types kept in modules beside this one register themselves on import: loading a model.npz
# that has them needs only LAYERS
from . import normalization  # noqa: E402,F401
from . import embedding  # noqa: E402,F401
from . import composite  # noqa: E402,F401
from . import numeric  # noqa: E402,F401
