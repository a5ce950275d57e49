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
    reuses the noise it drew last instead of drawing anew (what gradcheck sets)."""

    def __init__(self, arrays: dict, input_delta: bool = True, frozen: bool = False):
        for name, a in arrays.items():
            setattr(self, name, a)
        self.input_delta, self.frozen = input_delta, frozen
        self.x = None
        self.training = False


def _sizes(layer, fan_in: int, backward: bool, input_delta: bool) -> tuple[dict, dict]:
    """(per-row columns by name, fixed shapes by name) of what `layer` writes."""
    rows = dict(layer.buffers(fan_in))
    fixed = dict(layer.scratch(fan_in))
    if backward:
        rows.update(layer.backward_buffers(fan_in, input_delta))
    return rows, fixed


def layer_buffers(layer, rows: int, fan_in: int, dtype, input_delta: bool = True, backward: bool = True) -> Buffers:
    """A layer's own fresh `Buffers` for a batch of `rows` rows of `fan_in` columns: what a layer
    used on its own (`Dense(W, b).forward(x)`) and a unit test use."""
    per_row, fixed = _sizes(layer, fan_in, backward, input_delta)
    arrays = {name: np.empty((rows, n), dtype=dtype) for name, n in per_row.items()}
    arrays.update({name: np.empty(shape, dtype=dtype) for name, shape in fixed.items()})
    arrays["ones"] = np.ones(rows, dtype=dtype)
    return Buffers(arrays, input_delta)


class Workspace:
    """The buffers of every layer of one network, and the head's (`output`, `delta`), for any
    batch size up to the largest seen. `input_delta`: whether the first layer computes dL/dx
    (only `input_gradient` asks). Forward's buffers are made on the first forward pass, backward's
    on the first backward pass: prediction never allocates them. What the last forward pass was
    (`X`, `z`: the last layer's output before the head) is kept here, for `loss_value` and
    `backward`."""

    def __init__(self, layers, widths, n_outputs: int, dtype, input_delta: bool = False):
        self.layers, self.widths, self.n_outputs, self.dtype = layers, widths, n_outputs, np.dtype(dtype)
        self.first_delta = input_delta
        self.capacity, self.backward_ready = 0, False
        self._flat: list[dict] | None = None  # per layer {name: (flat memory, columns or shape)}
        self._views: dict[int, tuple] = {}  # rows -> (list of Buffers, head Buffers)
        self.rows = None  # the batch size `layers`/`head` are bound to now
        self.buffers: list[Buffers] = []
        self.head: Buffers | None = None
        self.X = self.z = None
        self.frozen = False

    def freeze(self, frozen: bool) -> None:
        """Random layers keep the noise they drew last (True) or draw anew each pass (False)."""
        self.frozen = frozen
        for buffers, _ in self._views.values():
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
            for r, (buffers, head) in self._views.items():
                for b, extra in zip(buffers + [head], self._slice_each(more, r)):
                    for name, a in extra.items():
                        setattr(b, name, a)
            self.backward_ready = True
        views = self._views.get(rows)
        if views is None:
            arrays = self._slice_each(self._flat, rows)
            buffers = [Buffers({**a, "ones": self._ones[:rows]}, i > 0 or self.first_delta, self.frozen)
                       for i, a in enumerate(arrays[:-1])]
            views = self._views[rows] = (buffers, Buffers(arrays[-1]))
        self.buffers, self.head = views
        self.rows = rows
        return self.buffers

    def _allocate(self, backward: bool) -> list[dict]:
        """Per layer, then the head: {name: (memory, columns or shape)}, forward's arrays or
        backward's."""
        cap, dtype = self.capacity, self.dtype
        flat = []
        for i, (layer, fan_in) in enumerate(zip(self.layers, self.widths)):
            if backward:
                per_row, fixed = layer.backward_buffers(fan_in, i > 0 or self.first_delta), {}
            else:
                per_row, fixed = layer.buffers(fan_in), layer.scratch(fan_in)
            mem = {name: (np.empty(cap * n, dtype=dtype), n) for name, n in per_row.items()}
            mem.update({name: (np.empty(shape, dtype=dtype), tuple(shape)) for name, shape in fixed.items()})
            flat.append(mem)
        head = "delta" if backward else "output"
        flat.append({head: (np.empty(cap * self.n_outputs, dtype=dtype), self.n_outputs)})
        return flat

    @staticmethod
    def _slice_each(flat: list[dict], rows: int) -> list[dict]:
        # per-row arrays are the first rows·columns entries: contiguous for every batch size
        return [{name: a[:rows * n].reshape(rows, n) if isinstance(n, int) else a for name, (a, n) in mem.items()}
                for mem in flat]
