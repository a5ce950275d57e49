"""Workspaces: the arrays a forward and a backward pass write, owned by whoever runs them.

A layer holds only what the model is (params, grads, state). What one pass writes (outputs,
masks, what forward keeps for backward) lives in a `Buffers` per layer, and a network's are
grouped in a `Workspace`: one per training loop, one per predicting call or per thread. Two
threads with two workspaces can then run one model at once and never see each other's rows.

A workspace allocates once, for the largest batch it has seen, and hands each batch size views of
the first rows of that memory (contiguous, cached per size), so a training loop allocates nothing
per batch however many batch sizes it, scoring and prediction use.
"""
from __future__ import annotations

import numpy as np


class Buffers:
    """One layer's arrays for one pass, as attributes: the per-row arrays its `buffers` and
    `backward_buffers` name ((rows, columns) each), its `scratch` arrays (fixed shapes), `ones`
    ((rows,), for sums over rows as one BLAS product), and what forward keeps for backward (`x`,
    its input; the mode; ...). `input_delta`: whether backward must return dL/dx (False for a
    network's first layer in training: nothing before it needs it). `frozen`: a random layer
    reuses the noise it drew last instead of drawing anew (what gradcheck sets).

    A composite layer's children have Buffers of their own, in `children` by the child's name
    (`body.0`): an array named `body.0.out` is child `body.0`'s `out`. They share this one's
    `ones`, and `frozen` set here is set on them too."""

    def __init__(self, arrays: dict, input_delta: bool = True, frozen: bool = False):
        self.children: dict[str, Buffers] = {}
        self._frozen = frozen
        # plain names first: a child made for a nested name takes this one's `ones`
        for name in sorted(arrays, key=lambda n: n.count(".") > 1):
            self.put(name, arrays[name])
        self.input_delta = input_delta
        self.x = None
        self.training = False

    def put(self, name: str, a: np.ndarray) -> None:
        """Hold `a` as `name`, or for a nested name (`body.0.out`) as its child's."""
        parts = name.split(".", 2)
        if len(parts) < 3:
            setattr(self, name, a)
            return
        self.child(f"{parts[0]}.{parts[1]}").put(parts[2], a)

    def child(self, key: str) -> "Buffers":
        """Child `key`'s Buffers (`body.0`), made on first use."""
        child = self.children.get(key)
        if child is None:
            ones = getattr(self, "ones", None)
            child = self.children[key] = Buffers({} if ones is None else {"ones": ones}, True, self._frozen)
        return child

    @property
    def frozen(self) -> bool:
        return self._frozen

    @frozen.setter
    def frozen(self, frozen: bool) -> None:
        self._frozen = frozen
        for child in self.children.values():
            child.frozen = frozen


def _specs(layer, fan_in: int, backward: bool, input_delta: bool, members, shared: bool) -> dict:
    """{name: shape after the rows, with a leading -1 where the member axis goes first} for the
    per-row arrays of `layer`, and {name: shape} for its fixed ones, as one dict of
    name -> ("rows", lead, columns) or ("fixed", shape)."""
    lead = () if members is None else (members,)
    if backward:
        per_row, fixed, more = layer.backward_buffers(fan_in, input_delta), {}, {}
    else:
        per_row, fixed = layer.buffers(fan_in), layer.scratch(fan_in)
        more, extra = layer.shared_input_buffers(fan_in) if members is not None and shared else ({}, {})
        fixed = {**fixed, **extra}
    specs = {name: ("rows", lead, n) for name, n in per_row.items()}
    specs.update({name: ("rows", (), n) for name, n in more.items()})
    specs.update({name: ("fixed", tuple(shape)) for name, shape in fixed.items()})
    return specs


def _size(spec, rows: int) -> int:
    return int(np.prod(spec[1] + (rows, spec[2]))) if spec[0] == "rows" else int(np.prod(spec[1]))


def _view(memory: np.ndarray, spec, rows: int) -> np.ndarray:
    # per-row arrays are the first entries of their memory: contiguous for every batch size
    if spec[0] == "fixed":
        return memory.reshape(spec[1])
    shape = spec[1] + (rows, spec[2])
    return memory[:int(np.prod(shape))].reshape(shape)


def layer_buffers(layer, rows: int, fan_in: int, dtype, input_delta: bool = True, members=None,
                  shared: bool = True) -> Buffers:
    """A layer's own fresh `Buffers` for a batch of `rows` rows of `fan_in` columns, forward's
    and backward's (`members`: K, `shared`: whether the input is shared by them): what a layer
    used on its own (`Dense(W, b).forward(x)`) and a unit test use."""
    specs = {**_specs(layer, fan_in, False, input_delta, members, shared),
             **_specs(layer, fan_in, True, input_delta, members, shared)}
    arrays = {name: _view(np.empty(_size(spec, rows), dtype=dtype), spec, rows) for name, spec in specs.items()}
    arrays["ones"] = np.ones(rows, dtype=dtype)
    return Buffers(arrays, input_delta)


class Workspace:
    """The buffers of every layer of one network, and the head's (`output`, `delta`), for any
    batch size up to the largest seen. `input_delta`: whether the first layer computes dL/dx
    (only `input_gradient` asks). Forward's buffers are made on the first forward pass, backward's
    on the first backward pass: prediction never allocates them. What the last forward pass was
    (`X`, `z`: the last layer's output before the head) is kept here, for `loss_value` and
    `backward`. `members`: K, when the network has the member axis (its input is then shared by
    the members, (rows, inputs), and every later array is (K, rows, columns))."""

    def __init__(self, layers, widths, n_outputs: int, dtype, input_delta: bool = False, members=None):
        self.layers, self.widths, self.n_outputs, self.dtype = layers, widths, n_outputs, np.dtype(dtype)
        self.members = members
        self.first_delta = input_delta
        self.capacity, self.backward_ready = 0, False
        self._flat: list[dict] | None = None  # per layer {name: (flat memory, columns or shape)}
        self._views: dict[int, tuple] = {}  # rows -> (list of Buffers, head Buffers)
        self.rows = None  # the batch size `layers`/`head` are bound to now
        self.buffers: list[Buffers] = []
        self.head: Buffers | None = None
        self.pairs: list[tuple] = []  # (layer, Buffers) for the bound batch size
        self.reversed_pairs: list[tuple] = []
        self.X = self.z = None
        self.frozen = False
        self._stitched: tuple | None = None  # (z, output) of a chunk scored in pieces
        # what a caller derives from this workspace's arrays and keeps for its life, by its own key
        # (training's scoring chunk: a memory budget read from /proc costs more than a W1 epoch)
        self.memo: dict = {}

    def freeze(self, frozen: bool) -> None:
        """Random layers keep the noise they drew last (True) or draw anew each pass (False)."""
        self.frozen = frozen
        for buffers, *_ in self._views.values():
            for b in buffers:
                b.frozen = frozen

    def bind(self, rows: int, backward: bool = False) -> list[Buffers]:
        """Every layer's Buffers for a batch of `rows` (and backward's arrays with `backward`).
        Adding backward's arrays keeps forward's, and what the last forward pass kept."""
        if rows > self.capacity:
            self.capacity, self._flat, self.backward_ready = rows, None, False
            self._views.clear()
        if self._flat is None:
            self._flat = self._allocate(False)
            self._ones = np.ones(self.capacity, dtype=self.dtype)
        if backward and not self.backward_ready:
            more = self._allocate(True)
            for mem, extra in zip(self._flat, more):
                mem.update(extra)
            for r, (buffers, head, _, _) in self._views.items():
                for b, extra in zip(buffers + [head], self._slice_each(more, r)):
                    for name, a in extra.items():
                        b.put(name, a)
            self.backward_ready = True
        views = self._views.get(rows)
        if views is None:
            arrays = self._slice_each(self._flat, rows)
            buffers = [Buffers({**a, "ones": self._ones[:rows]}, i > 0 or self.first_delta, self.frozen)
                       for i, a in enumerate(arrays[:-1])]
            pairs = list(zip(self.layers, buffers))
            views = self._views[rows] = (buffers, Buffers(arrays[-1]), pairs, pairs[::-1])
        # `pairs`: (layer, its Buffers) in order, and reversed for backward: made once per size
        self.buffers, self.head, self.pairs, self.reversed_pairs = views
        self.rows = rows
        return self.buffers

    def stitch(self, rows: int) -> tuple:
        """(z, output), (K, rows, outputs) each: where `Network.forward_chunks` gathers a chunk
        it scores in pieces."""
        if self._stitched is None or self._stitched[0].shape[1] < rows:
            shape = (self.members or 1, rows, self.n_outputs)
            self._stitched = (np.empty(shape, dtype=self.dtype), np.empty(shape, dtype=self.dtype))
        return tuple(a[:, :rows] for a in self._stitched)

    def stitched(self, X: np.ndarray, z: np.ndarray, output: np.ndarray) -> None:
        """Show the gathered pieces as the last forward pass, over all of X (what `loss_value`
        and `member_losses` read); the next pass binds the layers' own buffers again."""
        self.X, self.z, self.head, self.rows = X, z, Buffers({"output": output}), None

    def row_bytes(self, backward: bool = False, widest: bool = False) -> int:
        """Bytes per batch row of the per-row arrays a forward pass writes (and backward's with
        `backward`), the head's included; with `widest`, of the widest one alone. Fixed-shape
        scratch is not counted. What a caller that sizes its chunks of rows by memory divides by
        (a wide numeric embedding writes far more per row than the network's widths suggest)."""
        sizes = [(1 + backward) * (self.members or 1) * self.n_outputs]
        for i, (layer, fan_in) in enumerate(zip(self.layers, self.widths)):
            for part in (False, True) if backward else (False,):
                specs = _specs(layer, fan_in, part, i > 0 or self.first_delta, self.members, i == 0)
                sizes += [_size(spec, 1) for spec in specs.values() if spec[0] == "rows"]
        return (max(sizes) if widest else sum(sizes)) * self.dtype.itemsize

    def leaf_buffers(self, path: tuple) -> Buffers:
        """The bound Buffers of the layer at `path` (as `Network.leaves` names it: ('layers.3',
        'body.0'))."""
        buf = self.buffers[int(path[0].split(".")[1])]
        for key in path[1:]:
            buf = buf.children[key]
        return buf

    def _allocate(self, backward: bool) -> list[dict]:
        """Per layer, then the head: {name: (memory, spec)}, forward's arrays or backward's."""
        cap, dtype, members = self.capacity, self.dtype, self.members
        flat = []
        for i, (layer, fan_in) in enumerate(zip(self.layers, self.widths)):
            specs = _specs(layer, fan_in, backward, i > 0 or self.first_delta, members, i == 0)
            flat.append({name: (np.empty(_size(spec, cap), dtype=dtype), spec) for name, spec in specs.items()})
        head = ("rows", () if members is None else (members,), self.n_outputs)
        flat.append({"delta" if backward else "output": (np.empty(_size(head, cap), dtype=dtype), head)})
        return flat

    @staticmethod
    def _slice_each(flat: list[dict], rows: int) -> list[dict]:
        return [{name: _view(a, spec, rows) for name, (a, spec) in mem.items()} for mem in flat]
