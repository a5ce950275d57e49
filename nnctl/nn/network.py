"""The network: an ordered list of layers, then the output head that the loss owns.

    X -> layers[0] -> layers[1] -> ... -> z -> head (softmax | sigmoid | identity) -> output

For a multilayer perceptron the layers are dense, activation, dense, activation, ..., dense:
layer by layer `z = a·W + b`, `a = f(z)`, and the last dense layer's z goes to the loss's output
activation. Backward runs the same list in reverse, each layer turning dL/d(its output) into
dL/d(its input) and filling its gradients. Inputs are (rows, features); one dtype throughout.
"""
from __future__ import annotations

import numpy as np

from .activations import ACTIVATIONS
from .initializers import INITIALIZERS, init_names
from .layers import Activation, Dense, Layer
from .losses import LOSSES

CHUNK = 2048  # rows per forward pass when scoring or predicting: fast BLAS, small buffers


class Network:
    """`layers`: Layer objects in order; `loss`: the loss's name (and through it the output
    head). `n_inputs`: the input columns, when the first layer cannot tell (a dense one can)."""

    def __init__(self, layers: list[Layer], loss: str, n_inputs: int | None = None):
        if not layers:
            raise ValueError("a network needs at least one layer")
        self.layers = list(layers)
        self.loss_name = loss
        self.loss = LOSSES[loss]
        self.n_inputs = n_inputs if n_inputs is not None else layers[0].fan_in
        self.widths = [self.n_inputs]  # columns into each layer, then the output's
        for layer in self.layers:
            self.widths.append(layer.units(self.widths[-1]))
        for i, layer in enumerate(self.layers):
            layer.input_delta = i > 0
        arrays = [a for layer in self.layers for a in layer.params.values()]
        dtype = arrays[0].dtype if arrays else np.dtype(np.float64)
        total = sum(a.size for a in arrays)
        # All parameters live in one flat array (and all gradients in another); each layer's named
        # arrays are views into it. An optimizer then updates everything with a handful of
        # whole-array operations instead of a handful per array: that is most of the step's cost
        # for small networks. `decay_mask` is 1 where weight decay applies (weights), 0 elsewhere.
        self.flat_params = np.empty(total, dtype=dtype)
        self.flat_grads = np.zeros(total, dtype=dtype)
        self.decay_mask = np.zeros(total, dtype=dtype)
        offset = 0
        for layer in self.layers:
            params, grads = {}, {}
            for name, value in layer.params.items():
                end = offset + value.size
                params[name] = self.flat_params[offset:end].reshape(value.shape)
                params[name][...] = value
                grads[name] = self.flat_grads[offset:end].reshape(value.shape)
                self.decay_mask[offset:end] = layer.decay.get(name, False)
                offset = end
            layer.attach(params, grads)
            for name, value in layer.state.items():
                layer.state[name] = np.array(value, dtype=dtype)
        self._full: list[dict] | None = None  # per layer {name: buffer}, then the head's
        self._views: dict[int, list] = {}  # rows -> row-slices of `_full`
        self._capacity, self._backward_ready = 0, False
        self._bound = None  # the batch size whose views the layers hold now
        self._head: dict = {}
        self._X = self._z = None

    @classmethod
    def mlp(cls, weights, biases, activations, loss) -> "Network":
        """dense, activation, ..., dense from arrays: weights[i] (fan_in, fan_out), biases[i]
        (fan_out,), one activation name per hidden layer."""
        if len(activations) != len(weights) - 1:
            raise ValueError("one activation per hidden layer")
        layers = []
        for i, (W, b) in enumerate(zip(weights, biases)):
            layers.append(Dense(W, b))
            if i < len(activations):
                layers.append(Activation(activations[i]))
        return cls(layers, loss)

    @classmethod
    def initialize(cls, sizes, activations, loss, init="auto", seed=0, dtype=np.float32) -> "Network":
        """A multilayer perceptron of `sizes` (inputs, hidden..., outputs). Weights are drawn
        from `numpy.random.default_rng(seed)` (float64, then cast), layer by layer; the same seed
        gives bit-identical weights. Biases start at zero."""
        rng = np.random.default_rng(seed)
        inits = init_names(list(activations), init, lambda name: ACTIVATIONS[name].init)
        weights, biases = [], []
        for fan_in, fan_out, name in zip(sizes[:-1], sizes[1:], inits):
            weights.append(INITIALIZERS[name](rng, fan_in, fan_out).astype(dtype))
            biases.append(np.zeros(fan_out, dtype=dtype))
        return cls.mlp(weights, biases, activations, loss)

    # --- shape and parameters ---------------------------------------------------------------
    @property
    def sizes(self) -> list[int]:
        """Inputs, then the units of each dense layer: [4, 16, 3] for 4 → 16 → 3."""
        return [self.n_inputs] + [w for layer, w in zip(self.layers, self.widths[1:]) if isinstance(layer, Dense)]

    @property
    def n_outputs(self) -> int:
        return self.widths[-1]

    @property
    def dtype(self):
        return self.flat_params.dtype

    @property
    def trainable(self) -> list[tuple[int, Layer]]:
        """(index, layer) of every layer with parameters."""
        return [(i, layer) for i, layer in enumerate(self.layers) if layer.params]

    def named_params(self):
        """('layers.<i>.<name>', array, gradient) of every trainable array, in flat order."""
        for i, layer in enumerate(self.layers):
            for name, value in layer.params.items():
                yield f"layers.{i}.{name}", value, layer.grads[name]

    def named_state(self):
        """('layers.<i>.<name>', array) of every non-trained array (running statistics, ...)."""
        for i, layer in enumerate(self.layers):
            for name, value in layer.state.items():
                yield f"layers.{i}.{name}", value

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array of the model by name, params and state: what model.npz stores."""
        return {**{name: value for name, value, _ in self.named_params()}, **dict(self.named_state())}

    def load_arrays(self, arrays: dict) -> None:
        """Set every param and state array from `arrays` (names as `arrays()` gives them); a
        missing one or another shape is a ValueError."""
        for name, value in self.arrays().items():
            saved = arrays.get(name)
            if saved is None:
                raise ValueError(f"{name} is missing")
            if saved.shape != value.shape:
                raise ValueError(f"{name} has the wrong shape {saved.shape}: the network's is {value.shape}")
            np.copyto(value, saved, casting="same_kind")

    @property
    def output_head(self) -> str:
        """The output activation that the loss owns: softmax, sigmoid or identity."""
        return self.loss.output

    def n_params(self) -> int:
        return self.flat_params.size

    def get_params(self) -> np.ndarray:
        """A copy of every parameter (the flat array)."""
        return self.flat_params.copy()

    def set_params(self, flat: np.ndarray) -> None:
        np.copyto(self.flat_params, flat)

    def snapshot(self) -> dict:
        """Copies of everything the model is made of: `params` (flat) and each state array."""
        return {"params": self.get_params(), **{name: a.copy() for name, a in self.named_state()}}

    def restore(self, snapshot: dict) -> None:
        """Put back a `snapshot()`."""
        self.set_params(snapshot["params"])
        for name, a in self.named_state():
            np.copyto(a, snapshot[name])

    def astype(self, dtype) -> "Network":
        """A copy of this network in another dtype (float64 for gradient checks)."""
        from .layers import LAYERS

        layers = []
        for layer in self.layers:
            arrays = {k: np.asarray(v, dtype=dtype) for k, v in {**layer.params, **layer.state}.items()}
            layers.append(LAYERS[layer.type].from_saved(layer.settings(), arrays))
        return Network(layers, self.loss_name, self.n_inputs)

    # --- buffers ----------------------------------------------------------------------------
    def _bind(self, rows: int, backward: bool = False) -> None:
        """Give every layer its buffers for a batch of `rows`. One set is allocated, for the
        largest batch seen; smaller batches get row-slices of it (views, cached per size), so the
        training loop allocates nothing per batch and memory holds one set however many batch
        sizes training, scoring and prediction use. Backward's buffers are made on the first
        backward pass: forward-only use never needs them."""
        if rows > self._capacity:
            self._capacity, self._full, self._backward_ready = rows, None, False
        if self._full is None:
            self._full = self._allocate(self._capacity, False)
            self._views.clear()
        if backward and not self._backward_ready:
            for buffers, more in zip(self._full, self._allocate(self._capacity, True)):
                buffers.update(more)
            self._backward_ready = True
            self._views.clear()
        views = self._views.get(rows)
        if views is None:
            views = self._views[rows] = [{name: a[:rows] for name, a in full.items()} for full in self._full]
        for layer, buffers in zip(self.layers, views):
            layer.__dict__.update(buffers)
        self._head = views[-1]
        self._bound = rows

    def _allocate(self, rows: int, backward: bool) -> list[dict]:
        """Per layer {name: (rows, columns) array}, forward's or backward's, then the head's."""
        def arrays(spec):
            return {name: np.empty((rows, n), dtype=self.dtype) for name, n in spec.items()}

        if not backward:
            return [arrays(layer.buffers(n)) for layer, n in zip(self.layers, self.widths)] + \
                [arrays({"output": self.n_outputs})]
        ones = np.ones(rows, dtype=self.dtype)
        return [{**arrays(layer.backward_buffers(n)), "ones": ones} for layer, n in zip(self.layers, self.widths)] + \
            [arrays({"delta": self.n_outputs})]

    # --- forward ----------------------------------------------------------------------------
    def forward(self, X: np.ndarray, training: bool = False, watch=None) -> np.ndarray:
        """X: (rows, inputs) -> output activations (rows, outputs). `training`: layers that act
        differently while training (dropout, batch statistics) do so. Each layer keeps what its
        backward needs; the returned array is a buffer overwritten by the next call.
        `watch(i, out)`, if given, sees each layer's output (what `trace` shows)."""
        rows = X.shape[0]
        if rows != self._bound:
            self._bind(rows)
        a = X
        if watch is None:
            for layer in self.layers:
                a = layer.forward(a, training)
        else:
            for i, layer in enumerate(self.layers):
                a = layer.forward(a, training)
                watch(i, a)
        self._X, self._z = X, a
        return self.loss.forward(a, self._head["output"])

    def loss_value(self, y, w=None) -> float:
        """Loss of the last forward pass against targets y (rows, outputs); `w`: optional row
        weights (rows, 1)."""
        return self.loss.value(self._z, self._head["output"], y, w)

    # --- backward ---------------------------------------------------------------------------
    def backward(self, y, w=None, watch=None) -> np.ndarray:
        """Back-propagate the error of the last forward pass against targets y (and optional
        row weights w, (rows, 1), which scale each row's output delta).

        The loss gives the output delta dL/dz; each layer, last to first, turns dL/d(its
        output) into dL/d(its input) and fills its gradients (dense: dL/dW = aᵀ·delta,
        dL/db = 1ᵀ·delta, then delta·Wᵀ for the layer before; an activation: delta ⊙ f'(z)).
        `watch(i, delta)`, if given, sees the delta arriving at layer i (what `trace` shows).
        Returns the flat gradient array (each layer's `grads` are views of it)."""
        rows = self._X.shape[0]
        if not self._backward_ready or self._bound != rows:
            self._bind(rows, backward=True)
        delta = self.loss.delta(self._z, self._head["output"], y, self._head["delta"])
        if w is not None:
            delta *= w
        if watch is None:
            for layer in reversed(self.layers):
                delta = layer.backward(delta)
        else:
            for i in range(len(self.layers) - 1, -1, -1):
                watch(i, delta)
                delta = self.layers[i].backward(delta)
        return self.flat_grads

    def input_gradient(self, X: np.ndarray, seed=None, at: int = 0, chunk: int = CHUNK):
        """(inputs, gradient): the input of layer `at` (rows, widths[at]) in evaluation mode and
        ∂s/∂(that input), same shape, where s = Σ_k seed_k · z_k is a weighting of the
        pre-head outputs z (logits, or the identity head's values). `seed`: (outputs,) for every
        row, (rows, outputs) per row (a one-hot row picks one class's logit), or None: all ones.

        The network's own backward pass from the seed: each layer from the last down to `at`
        turns ∂s/∂(its output) into ∂s/∂(its input), as in training. `at` = 1 stops at the first
        layer's output (an embedding's looked-up rows, whose codes have no derivative). Computed
        `chunk` rows at a time; it overwrites the gradients of the last `backward`."""
        X = np.asarray(X, dtype=self.dtype)
        rows = X.shape[0]
        inputs = np.empty((rows, self.widths[at]), dtype=self.dtype)
        grad = np.empty_like(inputs)
        first = self.layers[0]
        flipped = at == 0 and not first.input_delta
        if flipped:
            # the first layer skips dL/dx in training; here it is the answer, so it needs its buffer
            first.input_delta = True
            self._full, self._backward_ready, self._bound = None, False, None
        try:
            for start in range(0, rows, chunk):
                part = X[start:start + chunk]
                n = len(part)
                self.forward(part)
                if not self._backward_ready or self._bound != n:
                    self._bind(n, backward=True)
                delta = self._head["delta"]
                delta[...] = 1.0 if seed is None else (seed if np.ndim(seed) == 1 else seed[start:start + n])
                for layer in reversed(self.layers[at:]):
                    delta = layer.backward(delta)
                inputs[start:start + n] = part if at == 0 else self.layers[at].x
                grad[start:start + n] = delta
        finally:
            if flipped:
                first.input_delta = False
        return inputs, grad

    def forward_chunks(self, X: np.ndarray, chunk: int = CHUNK):
        """Yield (start, output) for consecutive chunks of X's rows in evaluation mode: the
        whole of X scored with buffers of at most `chunk` rows. Each output is overwritten by
        the next chunk; the loss of the chunk against its targets is `loss_value`."""
        for start in range(0, X.shape[0], chunk):
            yield start, self.forward(X[start:start + chunk])

    def predict_output(self, X: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
        """Output activations (rows, outputs) for any number of rows; a new array."""
        out = np.empty((X.shape[0], self.n_outputs), dtype=self.dtype)
        for start, part in self.forward_chunks(X, chunk):
            out[start:start + len(part)] = part
        return out

    def predict_logits(self, X: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
        """The last layer's outputs z (rows, outputs), before the head: what temperature
        scaling divides. A new array."""
        out = np.empty((X.shape[0], self.n_outputs), dtype=self.dtype)
        for start in range(0, X.shape[0], chunk):
            part = X[start:start + chunk]
            self.forward(part)
            out[start:start + len(part)] = self._z
        return out


MLP = Network  # the name nnctl's Python API had before layers were objects
