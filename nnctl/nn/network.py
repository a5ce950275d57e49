"""The network: an ordered list of layers, then the output head that the loss owns.

    X -> layers[0] -> layers[1] -> ... -> z -> head (softmax | sigmoid | identity) -> output

For a multilayer perceptron the layers are dense, activation, dense, activation, ..., dense:
layer by layer `z = a·W + b`, `a = f(z)`, and the last dense layer's z goes to the loss's output
activation. Backward runs the same list in reverse, each layer turning dL/d(its output) into
dL/d(its input) and filling its gradients. Inputs are (rows, features); one dtype throughout.

Members: when the layers have the member axis (K members, params (K, ...)), the network is K
networks of one shape run as one. The input X (rows, features) is shared by the members; every
later array is (K, rows, columns); each member has its own loss, and the sum of the members'
losses is what backward differentiates, so each member's gradient is the one it would have alone.
The flat parameter array is member-major, (K, P) read as one: a member's arrays are one row of it,
so gradient clipping is per member (`member_grads`). Predictions are the members' mean: the mean
probability, or the mean output.
"""
from __future__ import annotations

import numpy as np

from .activations import ACTIVATIONS
from .initializers import INITIALIZERS, init_names
from .layers import Activation, Dense, Layer
from .losses import LOSSES, member_values
from .workspace import Workspace

CHUNK = 2048  # rows per forward pass when scoring or predicting: fast BLAS, small buffers


def initial_weights(sizes, activations, init="auto", seed=0, dtype=np.float32) -> list[tuple]:
    """(W, b) of each dense layer of a multilayer perceptron of `sizes` (inputs, hidden...,
    outputs): W (fan_in, fan_out) drawn from `numpy.random.default_rng(seed)` (float64, then
    cast), layer by layer, with the initializer `init` picks for the activation that follows;
    b (fan_out,) zeros."""
    rng = np.random.default_rng(seed)
    inits = init_names(list(activations), init, lambda name: ACTIVATIONS[name].init)
    return [(INITIALIZERS[name](rng, fan_in, fan_out).astype(dtype), np.zeros(fan_out, dtype=dtype))
            for fan_in, fan_out, name in zip(sizes[:-1], sizes[1:], inits)]


def _rebuilt(layer: Layer, arrays: dict) -> Layer:
    """A layer of the same type and settings with other arrays (another dtype, members stacked
    or one member taken), keeping a random layer's generator."""
    from .layers import LAYERS

    rebuilt = LAYERS[layer.type].from_saved(layer.settings(), arrays)
    rebuilt.decay = dict(layer.decay)
    if layer.rng is not None:
        rebuilt.rng = layer.rng
    return rebuilt


class Network:
    """`layers`: Layer objects in order; `loss`: the loss's name (and through it the output
    head), or a heads.MultiLoss: one head per target on blocks of the output columns (`heads`).
    `n_inputs`: the input columns, when the first layer cannot tell (a dense one can)."""

    def __init__(self, layers: list[Layer], loss, n_inputs: int | None = None):
        if not layers:
            raise ValueError("a network needs at least one layer")
        self.layers = list(layers)
        self.loss_arg = loss  # what a copy of this network is built with
        single = isinstance(loss, str)
        self.loss_name = loss if single else loss.name
        self.loss = LOSSES[loss] if single else loss
        self.heads = None if single else loss.heads  # several targets: heads.Head per target
        self.n_inputs = n_inputs if n_inputs is not None else layers[0].fan_in
        self.widths = [self.n_inputs]  # columns into each layer, then the output's
        for layer in self.layers:
            self.widths.append(layer.units(self.widths[-1]))
        counts = {layer.members for layer in self.layers if layer.params}
        if len(counts) > 1:
            raise ValueError(f"the layers have different member counts: {sorted(counts, key=str)}")
        self.members = counts.pop() if counts else None  # K, or None: no member axis
        K = self.members or 1
        arrays = [a for layer in self.layers for a in layer.params.values()]
        dtype = arrays[0].dtype if arrays else np.dtype(np.float64)
        total = sum(a.size for a in arrays)
        per_member = total // K
        # All parameters live in one flat array (and all gradients in another); each layer's named
        # arrays are views into it. An optimizer then updates everything with a handful of
        # whole-array operations instead of a handful per array: that is most of the step's cost
        # for small networks. `decay_mask` is 1 where weight decay applies (weights), 0 elsewhere.
        self.flat_params = np.empty(total, dtype=dtype)
        self.flat_grads = np.zeros(total, dtype=dtype)
        self.decay_mask = np.zeros(total, dtype=dtype)
        # member-major: member k's arrays are row k of the (K, P) view, each array a column block
        rows_p, rows_g, rows_d = (a.reshape(K, per_member) for a in (self.flat_params, self.flat_grads,
                                                                    self.decay_mask))
        offset = 0
        for layer in self.layers:
            params, grads = {}, {}
            for name, value in layer.params.items():
                end = offset + value.size // K
                params[name] = rows_p[:, offset:end].reshape(value.shape)
                params[name][...] = value
                grads[name] = rows_g[:, offset:end].reshape(value.shape)
                rows_d[:, offset:end] = layer.decay.get(name, False)
                offset = end
                if not np.shares_memory(params[name], self.flat_params):  # pragma: no cover
                    raise ValueError(f"{name}'s member axis must come first")
            layer.attach(params, grads)
            for name, value in layer.state.items():
                layer.state[name] = np.array(value, dtype=dtype)
        self._own: Workspace | None = None  # the workspace of calls that pass none (one thread)

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
        """A multilayer perceptron of `sizes` (inputs, hidden..., outputs), weights from
        `initial_weights`: the same seed gives bit-identical weights."""
        weights = initial_weights(sizes, activations, init, seed, dtype)
        return cls.mlp([W for W, _ in weights], [b for _, b in weights], activations, loss)

    # --- shape and parameters ---------------------------------------------------------------
    @property
    def sizes(self) -> list[int]:
        """Inputs, then the units of each dense layer: [4, 16, 3] for 4 → 16 → 3."""
        return [self.n_inputs] + [layer.W.shape[-1] for _, layer in self.leaves() if isinstance(layer, Dense)]

    @property
    def n_outputs(self) -> int:
        return self.widths[-1]

    @property
    def dtype(self):
        return self.flat_params.dtype

    @property
    def rng(self) -> np.random.Generator | None:
        """The generator the network's random layers draw from (they share one), or None."""
        return next((layer.rng for layer in self.layers if layer.rng is not None), None)

    @property
    def min_rows(self) -> int:
        """The fewest rows a training batch may have (2 with batch norm)."""
        return max(layer.min_rows for layer in self.layers)

    @property
    def trainable(self) -> list[tuple[int, Layer]]:
        """(index, layer) of every layer with parameters."""
        return [(i, layer) for i, layer in enumerate(self.layers) if layer.params]

    def leaves(self):
        """(path, layer) of every layer that is no composite, in order, a composite's children in
        its place: path ('layers.3', 'body.0') names the layer's arrays (`layers.3.body.0.W`) and
        finds its buffers (`Workspace.leaf_buffers`)."""
        for i, layer in enumerate(self.layers):
            for path, leaf in layer.leaves():
                yield (f"layers.{i}",) + path, leaf

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
        layers = [_rebuilt(layer, {k: np.asarray(v, dtype=dtype) for k, v in {**layer.params, **layer.state}.items()})
                  for layer in self.layers]
        return Network(layers, self.loss_arg, self.n_inputs)

    @classmethod
    def stack(cls, networks: list["Network"]) -> "Network":
        """One network with K = len(networks) members from K networks of one shape: member k's
        arrays are network k's (copied). A random layer draws member k's noise from network k's
        generator (`MemberGenerators`), so each member draws what it would alone."""
        first = networks[0]
        if any(n.members is not None for n in networks):
            raise ValueError("only networks without members stack")
        from .layers import MemberGenerators

        layers, generators = [], {}
        for i, layer in enumerate(first.layers):
            arrays = {name: np.stack([{**n.layers[i].params, **n.layers[i].state}[name] for n in networks])
                      for name in {**layer.params, **layer.state}}
            rebuilt = _rebuilt(layer, arrays)
            if layer.rng is not None:  # each member draws from its own network's generator, shared as there
                own = tuple(n.layers[i].rng for n in networks)
                rebuilt.rng = generators.setdefault(tuple(map(id, own)), MemberGenerators(own))
            layers.append(rebuilt)
        return cls(layers, first.loss_arg, first.n_inputs)

    def member(self, k: int) -> "Network":
        """Member k alone, as a network without members (its arrays copied)."""
        if self.members is None:
            raise ValueError("this network has no members")
        layers = [_rebuilt(layer, {name: np.array(a[k]) for name, a in {**layer.params, **layer.state}.items()})
                  for layer in self.layers]
        for layer in layers:
            if hasattr(layer.rng, "generators"):  # member k's own generator
                layer.rng = layer.rng.generators[k]
        return Network(layers, self.loss_arg, self.n_inputs)

    def member_snapshot(self, k: int) -> dict:
        """Member k's `snapshot()`, as `member(k).snapshot()` would give it, without copying
        the other members."""
        return {"params": self.flat_params.reshape(self.members, -1)[k].copy(),
                **{name: a[k].copy() for name, a in self.named_state()}}

    # --- workspaces ------------------------------------------------------------------------
    def workspace(self, input_delta: bool = False) -> Workspace:
        """A new workspace for this network: the arrays its passes write. One per training loop,
        one per predicting call or thread; `input_delta`: the first layer computes dL/dx too."""
        return Workspace(self.layers, self.widths, self.n_outputs, self.dtype, input_delta, self.members)

    @property
    def member_grads(self) -> np.ndarray:
        """The flat gradients as (K, P): member k's gradient is row k (K = 1 without members)."""
        return self.flat_grads.reshape(self.members or 1, -1)

    def _ws(self, ws: Workspace | None) -> Workspace:
        """`ws`, or the network's own workspace: for forward/loss_value/backward called without
        one, in one thread (scripts, tests, gradcheck). Concurrent callers pass their own."""
        if ws is not None:
            return ws
        if self._own is None:
            self._own = self.workspace()
        return self._own

    # --- forward ----------------------------------------------------------------------------
    def forward(self, X: np.ndarray, training: bool = False, watch=None, ws: Workspace | None = None) -> np.ndarray:
        """X: (rows, inputs) -> output activations (rows, outputs). `training`: layers that act
        differently while training (dropout, batch statistics) do so. What backward needs is kept
        in the workspace `ws` (the network's own when None); the returned array is one of its
        buffers, overwritten by its next pass. `watch(i, out)`, if given, sees each layer's
        output (what `trace` shows)."""
        ws = ws or self._ws(None)
        rows = X.shape[-2]  # (rows, inputs), or with members (K, rows, inputs): each its own rows
        if rows != ws.rows:
            ws.bind(rows)
        a = X
        if watch is None:
            for layer, buf in ws.pairs:
                a = layer.forward(a, training, buf)
        else:
            for i, (layer, buf) in enumerate(ws.pairs):
                a = layer.forward(a, training, buf)
                watch(i, a)
        ws.X, ws.z = X, a
        return self.loss.forward(a, ws.head.output)

    def loss_value(self, y, w=None, ws: Workspace | None = None) -> float:
        """Loss of the last forward pass in `ws` against targets y (rows, outputs); `w`:
        optional row weights (rows, 1). With members: the sum of the members' losses, which is
        what `backward` differentiates (y and w shared by them, or (K, rows, ...) their own)."""
        ws = self._ws(ws)
        z, a = ws.z, ws.head.output
        if self.members is None:
            return self.loss.value(z, a, y, w)
        # each member's loss is a mean over its rows: the mean over all K·rows rows is their
        # mean, K times it their sum
        K, n = self.members, z.shape[-1]
        y = np.broadcast_to(y, (K,) + y.shape[-2:]).reshape(-1, y.shape[-1])
        if w is not None:
            w = np.broadcast_to(w, (K,) + w.shape[-2:]).reshape(-1, w.shape[-1])
        return K * self.loss.value(z.reshape(-1, n), a.reshape(-1, n), y, w)

    def member_losses(self, y, w=None, ws: Workspace | None = None) -> np.ndarray:
        """(K,) each member's own loss of the last forward pass in `ws` against its own targets
        y (K, rows, outputs), row weights `w` (K, rows, 1) or None: what each member would
        measure alone."""
        ws = self._ws(ws)
        if self.heads is not None:
            return self.loss.member_values(ws.z, ws.head.output, y, w)
        return member_values(self.loss_name, ws.z, ws.head.output, y, w)

    def mean_output(self, outputs: np.ndarray) -> np.ndarray:
        """The members' mean (rows, outputs) of their output activations (K, rows, outputs) —
        the mean probability, or the mean output; `outputs` itself without members."""
        return outputs if self.members is None else outputs.mean(axis=0)

    def output_logits(self, a: np.ndarray) -> np.ndarray:
        """Pre-head values whose head gives the output activations `a` (rows, outputs): log p for
        softmax, the logit for sigmoid, `a` for identity. How an ensemble's mean probability
        becomes logits (for its loss, and for temperature scaling)."""
        if self.heads is not None:
            return self.loss.logits(a)
        return head_logits(self.output_head, a)

    def output_loss(self, a: np.ndarray, y, w=None) -> float:
        """The loss of output activations `a` (rows, outputs), e.g. the members' mean, against y."""
        return self.loss.value(self.output_logits(a), a, y, w)

    # --- backward ---------------------------------------------------------------------------
    def backward(self, y, w=None, watch=None, ws: Workspace | None = None) -> np.ndarray:
        """Back-propagate the error of the last forward pass in `ws` against targets y (and
        optional row weights w, (rows, 1), which scale each row's output delta).

        The loss gives the output delta dL/dz; each layer, last to first, turns dL/d(its
        output) into dL/d(its input) and fills its gradients (dense: dL/dW = aᵀ·delta,
        dL/db = 1ᵀ·delta, then delta·Wᵀ for the layer before; an activation: delta ⊙ f'(z)).
        `watch(i, delta)`, if given, sees the delta arriving at layer i (what `trace` shows).
        Returns the flat gradient array (each layer's `grads` are views of it)."""
        ws = ws or self._ws(None)
        if not ws.backward_ready:
            ws.bind(ws.rows, backward=True)
        buffers, head = ws.buffers, ws.head
        delta = self.loss.delta(ws.z, head.output, y, head.delta)
        if w is not None:
            delta *= w
        if watch is None:
            for layer, buf in ws.reversed_pairs:
                delta = layer.backward(delta, buf)
        else:
            for i in range(len(self.layers) - 1, -1, -1):
                watch(i, delta)
                delta = self.layers[i].backward(delta, buffers[i])
        return self.flat_grads

    def input_gradient(self, X: np.ndarray, seed=None, at: int = 0, chunk: int = CHUNK):
        """(inputs, gradient): the input of layer `at` (rows, widths[at]) in evaluation mode and
        ∂s/∂(that input), same shape, where s = Σ_k seed_k · z_k is a weighting of the
        pre-head outputs z (logits, or the identity head's values). `seed`: (outputs,) for every
        row, (rows, outputs) per row (a one-hot row picks one class's logit), or None: all ones.

        The network's own backward pass from the seed: each layer from the last down to `at`
        turns ∂s/∂(its output) into ∂s/∂(its input), as in training. `at` = 1 stops at the first
        layer's output (an embedding's looked-up rows, whose codes have no derivative). Computed
        `chunk` rows at a time in a workspace of its own; it overwrites the gradients of the last
        `backward`.

        With K members, s is the members' mean, s = (1/K) Σ_m Σ_k seed_k · z_mk: every member's
        delta is seed / K, and a shared input's gradient is the sum of what each member sends it
        back (the first dense layer sums them). From `at` = 1 each member has its own input
        (its own embedding rows): inputs and gradient are then (K, rows, widths[1])."""
        X = np.asarray(X, dtype=self.dtype)
        rows = X.shape[0]
        own = self.members is not None and at > 0
        inputs = np.empty(((self.members,) if own else ()) + (rows, self.widths[at]), dtype=self.dtype)
        grad = np.empty_like(inputs)
        # the first layer skips dL/dx in training; here it may be the answer
        ws = self.workspace(input_delta=at == 0)
        for start in range(0, rows, chunk):
            part = X[start:start + chunk]
            n = len(part)
            self.forward(part, ws=ws)
            buffers = ws.bind(n, backward=True)
            delta = ws.head.delta
            delta[...] = 1.0 if seed is None else (seed if np.ndim(seed) == 1 else seed[start:start + n])
            if self.members is not None:
                delta /= self.members
            for layer, buf in zip(reversed(self.layers[at:]), reversed(buffers[at:])):
                delta = layer.backward(delta, buf)
            inputs[..., start:start + n, :] = part if at == 0 else buffers[at].x
            grad[..., start:start + n, :] = delta
        return inputs, grad

    def forward_chunks(self, X: np.ndarray, chunk: int = CHUNK, ws: Workspace | None = None):
        """Yield (start, output) for consecutive chunks of X's rows in evaluation mode: the
        whole of X scored with buffers of at most `chunk` rows, in `ws` (a new workspace when
        None). Each output is overwritten by the next chunk; the loss of the chunk against its
        targets is `loss_value(..., ws=ws)`. With members each output is (K, rows, outputs), and
        X may be the members' own rows, (K, rows, inputs)."""
        ws = self.workspace() if ws is None else ws
        if X.ndim == 3:  # the members' own rows: chunks and pieces of the rows axis
            yield from self._own_chunks(X, chunk, ws)
            return
        # With K members a pass takes chunk / K rows, so that their arrays are one network's size
        # and stay in cache (8 members' 2,048-row passes ran ~6x slower per row than 256-row
        # ones on W2); the pieces are gathered into the same chunks as before, so a caller's
        # sums over chunks, and each row's output, keep their bits.
        piece = chunk if self.members is None else max(1, chunk // self.members)
        for start in range(0, X.shape[0], chunk):
            part = X[start:start + chunk]
            if len(part) <= piece:
                yield start, self.forward(part, ws=ws)
                continue
            z, out = ws.stitch(len(part))
            for s in range(0, len(part), piece):
                a = self.forward(part[s:s + piece], ws=ws)
                np.copyto(out[:, s:s + a.shape[-2]], a)
                np.copyto(z[:, s:s + a.shape[-2]], ws.z)
            ws.stitched(part, z, out)
            yield start, out

    def _own_chunks(self, X: np.ndarray, chunk: int, ws: Workspace):
        """`forward_chunks` of the members' own rows X (K, rows, inputs), in the same pieces."""
        piece = max(1, chunk // self.members)
        for start in range(0, X.shape[1], chunk):
            part = X[:, start:start + chunk]
            if part.shape[1] <= piece:
                yield start, self.forward(np.ascontiguousarray(part), ws=ws)
                continue
            z, out = ws.stitch(part.shape[1])
            for s in range(0, part.shape[1], piece):
                a = self.forward(np.ascontiguousarray(part[:, s:s + piece]), ws=ws)  # BLAS takes each member whole
                np.copyto(out[:, s:s + a.shape[-2]], a)
                np.copyto(z[:, s:s + a.shape[-2]], ws.z)
            ws.stitched(part, z, out)
            yield start, out

    def predict_output(self, X: np.ndarray, chunk: int = CHUNK, ws: Workspace | None = None) -> np.ndarray:
        """Output activations (rows, outputs) for any number of rows, the members' mean with
        members; a new array. Safe to call from several threads at once: each call has its own
        workspace unless given one."""
        out = np.empty((X.shape[0], self.n_outputs), dtype=self.dtype)
        for start, part in self.forward_chunks(X, chunk, ws):
            part = self.mean_output(part)
            out[start:start + len(part)] = part
        return out

    def predict_members(self, X: np.ndarray, chunk: int = CHUNK, ws: Workspace | None = None) -> np.ndarray:
        """Each member's output activations (K, rows, outputs) (K = 1 without members)."""
        out = np.empty((self.members or 1, X.shape[0], self.n_outputs), dtype=self.dtype)
        for start, part in self.forward_chunks(X, chunk, ws):
            out[:, start:start + part.shape[-2]] = part
        return out

    def predict_logits(self, X: np.ndarray, chunk: int = CHUNK, ws: Workspace | None = None) -> np.ndarray:
        """The last layer's outputs z (rows, outputs), before the head: what temperature
        scaling divides; with members, the logits of their mean output (`output_logits`). A new
        array; as thread-safe as `predict_output`."""
        if self.members is not None:
            return self.output_logits(self.predict_output(X, chunk, ws))
        ws = self.workspace() if ws is None else ws
        out = np.empty((X.shape[0], self.n_outputs), dtype=self.dtype)
        for start in range(0, X.shape[0], chunk):
            part = X[start:start + chunk]
            self.forward(part, ws=ws)
            out[start:start + len(part)] = ws.z
        return out


def head_logits(head: str, a: np.ndarray) -> np.ndarray:
    """Pre-head values whose output activation `head` gives `a` (see Network.output_logits)."""
    if head == "identity":
        return a
    tiny = np.finfo(a.dtype).tiny
    p = np.clip(a, tiny, None if head == "softmax" else 1 - np.finfo(a.dtype).epsneg)
    return np.log(p) if head == "softmax" else np.log(p) - np.log1p(-p)


MLP = Network  # the name nnctl's Python API had before layers were objects
