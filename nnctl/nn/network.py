"""The multilayer perceptron: initialize, forward, backward — over whole batches as matrices.

Layer i computes `a_i = f_i(z_i)`, `z_i = a_{i-1} @ W_i + b_i`, with `a_{-1} = X`. The output
layer's activation belongs to the loss (softmax, sigmoid or identity). Weights are (fan_in,
fan_out), biases (fan_out,), inputs (rows, features); one dtype throughout.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .activations import ACTIVATIONS
from .initializers import INITIALIZERS, init_names
from .losses import LOSSES

CHUNK = 2048  # rows per forward pass when scoring or predicting: fast BLAS, small buffers


class Buffers(NamedTuple):
    """Per-layer arrays of one batch, reused from batch to batch (see `MLP._buffers_for`)."""
    zs: list  # pre-activations z_i, (rows, units_i)
    outs: list  # activations a_i = f_i(z_i), (rows, units_i)
    saved: list  # what each hidden activation keeps for its backward, (rows, units_i)
    deltas: list | None  # dL/dz_i, (rows, units_i); made on the first backward pass
    ones: np.ndarray | None  # 1ᵀ, (rows,): sums over rows as one BLAS product


class MLP:
    """weights[i]: (sizes[i], sizes[i+1]); biases[i]: (sizes[i+1],); `activations` name the
    hidden layers' functions, `loss` the loss (and through it the output activation)."""

    def __init__(self, weights, biases, activations, loss):
        if len(activations) != len(weights) - 1:
            raise ValueError("one activation per hidden layer")
        self.activation_names = list(activations)
        self.loss_name = loss
        self.loss = LOSSES[loss]
        self._functions = [ACTIVATIONS[a] for a in activations]
        dtype = np.asarray(weights[0]).dtype
        total = sum(np.size(W) + np.size(b) for W, b in zip(weights, biases))
        # All parameters live in one flat array (and all gradients in another); W_i and b_i are
        # views into it. An optimizer then updates everything with a handful of whole-array
        # operations instead of a handful per parameter: that is most of the step's cost for
        # small networks. `decay_mask` is 1 on weight entries, 0 on biases (l2 skips biases).
        self.flat_params = np.empty(total, dtype=dtype)
        self.flat_grads = np.zeros(total, dtype=dtype)
        self.decay_mask = np.zeros(total, dtype=dtype)
        self.weights, self.biases, self.grads_W, self.grads_b = [], [], [], []
        offset = 0
        for W, b in zip(weights, biases):
            for value, params, grads, decays in ((W, self.weights, self.grads_W, True), (b, self.biases, self.grads_b, False)):
                value = np.asarray(value)
                end = offset + value.size
                view = self.flat_params[offset:end].reshape(value.shape)
                view[...] = value
                params.append(view)
                grads.append(self.flat_grads[offset:end].reshape(value.shape))
                self.decay_mask[offset:end] = decays
                offset = end
        # W0, b0, W1, b1, ...: views, updated in place
        self.params = [p for pair in zip(self.weights, self.biases) for p in pair]
        self.grads = [g for pair in zip(self.grads_W, self.grads_b) for g in pair]
        self._buffers: dict[int, list] = {}
        self._capacity, self._full = 0, None
        self._X = None

    @classmethod
    def initialize(cls, sizes, activations, loss, init="auto", seed=0, dtype=np.float32):
        """Draw weights from `numpy.random.default_rng(seed)` (float64, then cast), layer by
        layer; the same seed gives bit-identical weights. Biases start at zero."""
        rng = np.random.default_rng(seed)
        inits = init_names(list(activations), init, lambda name: ACTIVATIONS[name].init)
        weights, biases = [], []
        for fan_in, fan_out, name in zip(sizes[:-1], sizes[1:], inits):
            weights.append(INITIALIZERS[name](rng, fan_in, fan_out).astype(dtype))
            biases.append(np.zeros(fan_out, dtype=dtype))
        return cls(weights, biases, activations, loss)

    # --- shape and parameters ---------------------------------------------------------------
    @property
    def sizes(self) -> list[int]:
        return [self.weights[0].shape[0]] + [W.shape[1] for W in self.weights]

    @property
    def dtype(self):
        return self.weights[0].dtype

    @property
    def layer_activations(self) -> list[str]:
        """Every layer's activation, the output's included (as model.npz stores them)."""
        return self.activation_names + [self.loss.output]

    def n_params(self) -> int:
        return sum(p.size for p in self.params)

    def get_params(self) -> np.ndarray:
        """A copy of every parameter (the flat array)."""
        return self.flat_params.copy()

    def set_params(self, flat: np.ndarray) -> None:
        np.copyto(self.flat_params, flat)

    def astype(self, dtype) -> "MLP":
        return MLP([W.astype(dtype) for W in self.weights], [b.astype(dtype) for b in self.biases],
                   self.activation_names, self.loss_name)

    # --- forward ----------------------------------------------------------------------------
    def _buffers_for(self, rows: int, backward: bool = False) -> Buffers:
        """The Buffers for a batch of `rows`. One set is allocated, for the largest batch seen;
        smaller batches get row-slices of it (views, cached per size), so the training loop
        allocates nothing per batch and memory holds one set however many batch sizes training,
        scoring and prediction use. Deltas and 1ᵀ are made on the first backward pass:
        forward-only use never needs them."""
        views = self._buffers.get(rows)
        if views is None:
            if rows > self._capacity:
                self._capacity = rows
                units = [W.shape[1] for W in self.weights]
                zs, outs = ([np.empty((rows, n), dtype=self.dtype) for n in units] for _ in range(2))
                saved = [np.empty((rows, n), dtype=self.dtype) for n in units[:-1]]  # hidden layers
                self._full = Buffers(zs, outs, saved, None, None)
                self._buffers.clear()
            full = self._full
            views = self._buffers[rows] = Buffers([z[:rows] for z in full.zs], [a[:rows] for a in full.outs],
                                                  [k[:rows] for k in full.saved], None, None)
        if backward and views.deltas is None:
            if self._full.deltas is None:
                self._full = self._full._replace(deltas=[np.empty_like(z) for z in self._full.zs],
                                                 ones=np.ones(self._capacity, dtype=self.dtype))
            views = self._buffers[rows] = views._replace(deltas=[d[:rows] for d in self._full.deltas],
                                                         ones=self._full.ones[:rows])
        return views

    def forward(self, X: np.ndarray) -> np.ndarray:
        """X: (rows, inputs) -> output activations (rows, outputs). Keeps every layer's z and a,
        and what its activation saves, for `backward`; the returned array is a buffer
        overwritten by the next call."""
        zs, outs, saved, _, _ = self._buffers_for(X.shape[0])
        a = X
        # the hidden layers (zip stops with `_functions`, one per hidden layer), then the output
        for W, b, f, z, out, keep in zip(self.weights, self.biases, self._functions, zs, outs, saved):
            # np.dot rather than np.matmul: less dispatch per call on small products
            np.dot(a, W, out=z)
            z += b
            a = f.forward(z, out, keep)
        z = np.dot(a, self.weights[-1], out=zs[-1])
        z += self.biases[-1]
        self._X = X
        return self.loss.forward(z, outs[-1])

    def loss_value(self, y, w=None) -> float:
        """Loss of the last forward pass against targets y (rows, outputs); `w`: optional row
        weights (rows, 1)."""
        buffers = self._buffers_for(self._X.shape[0])
        return self.loss.value(buffers.zs[-1], buffers.outs[-1], y, w)

    # --- backward ---------------------------------------------------------------------------
    def backward(self, y, w=None) -> list[np.ndarray]:
        """Back-propagate the error of the last forward pass against targets y (and optional
        row weights w, (rows, 1), which scale each row's output delta).

        The output delta is dL/dz of the last layer; each earlier layer's is
        `delta_i = (delta_{i+1} @ W_{i+1}.T) * f_i'(z_i)`. Then dL/dW_i = a_{i-1}.T @ delta_i
        and dL/db_i = 1ᵀ @ delta_i (the sum over rows). Returns `grads` (W0, b0, W1, b1, ...)."""
        X = self._X
        zs, outs, saved, deltas, ones = self._buffers_for(X.shape[0], backward=True)
        last = len(self.weights) - 1
        delta = self.loss.delta(zs[last], outs[last], y, deltas[last])
        if w is not None:
            delta *= w
        for i in range(last, -1, -1):
            a_prev = X if i == 0 else outs[i - 1]
            np.dot(a_prev.T, delta, out=self.grads_W[i])
            np.dot(ones, delta, out=self.grads_b[i])
            if i > 0:
                delta_prev = np.dot(delta, self.weights[i].T, out=deltas[i - 1])
                self._functions[i - 1].backward(delta_prev, zs[i - 1], outs[i - 1], saved[i - 1])
                delta = delta_prev
        return self.grads

    def internals(self) -> tuple:
        """(X, zs, activations, deltas) of the last forward/backward pass, per layer: what
        `nnctl trace` shows. Buffers, overwritten by the next pass."""
        buffers = self._buffers_for(self._X.shape[0])
        return self._X, buffers.zs, buffers.outs, buffers.deltas

    def forward_chunks(self, X: np.ndarray, chunk: int = CHUNK):
        """Yield (start, output) for consecutive chunks of X's rows: the whole of X scored with
        buffers of at most `chunk` rows. Each output is overwritten by the next chunk; the loss
        of the chunk against its targets is `loss_value`."""
        for start in range(0, X.shape[0], chunk):
            yield start, self.forward(X[start:start + chunk])

    def predict_output(self, X: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
        """Output activations (rows, outputs) for any number of rows; a new array."""
        out = np.empty((X.shape[0], self.sizes[-1]), dtype=self.dtype)
        for start, part in self.forward_chunks(X, chunk):
            out[start:start + len(part)] = part
        return out
