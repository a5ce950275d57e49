"""Learned embeddings for categorical columns: the network's first layer when `data.embedding`
embeds any column.

The encoder writes each embedded column as ONE input holding its category's code as a float
(0..n-1 for the n categories training saw, n for one it never saw; exact in float32 below 2^24).
This layer looks each code up in its column's table and puts the rows beside the other inputs:

    out = [x[:, keep], T_0[c_0], T_1[c_1], ...]     keep: the non-code inputs, in order
    T_k: (n_k + 1, width_k), c_k = x[:, columns[k]] as integers

backward: dL/dT_k = the scatter-add of delta's T_k block over the batch's codes (a row that
occurs twice gets both rows' deltas), the gradient of torch.nn.Embedding; dL/dx is delta's
`keep` block for the other inputs and 0 for the codes, which are not differentiable. The last
row of each table starts at zero: an unseen category then adds nothing, as its all-zero one-hot
encoding would. The tables decay under l2 unless `training.l2_embeddings: false`.

Tables start small, N(0, INIT_STD²), not N(0, 1) as torch.nn.Embedding: a row of N(0, 1)
entries is a random vector of norm sqrt(width), larger than the one-hot row (norm 1) it
replaces, which Adam's steps of about the learning rate (1e-3) take hundreds of epochs to
outgrow, so each category kept a random offset and rare ones never lost it. Started near zero,
a category moves only as far as its rows' gradients take it: rare ones stay near the mean, the
shrinkage that lets an embedding beat one-hot (docs/quality.md, "Embeddings").
"""
from __future__ import annotations

import numpy as np

from .layers import Layer, register

INIT_STD = 0.01  # the tables' initial spread (see the module docstring)


@register
class Embedding(Layer):
    """`fan_in` input columns, of which `columns` hold category codes, each looked up in its
    table (`table_<k>`: (categories + 1, width); with members (K, categories + 1, width), each
    member looking the codes up in its own table)."""

    type = "embedding"

    def __init__(self, fan_in: int, columns: list[int], tables: list[np.ndarray], decay: bool = True):
        super().__init__()
        if len(columns) != len(tables) or not tables:
            raise ValueError(f"{len(columns)} code columns for {len(tables)} tables")
        if len(set(columns)) != len(columns) or not all(0 <= c < fan_in for c in columns):
            raise ValueError(f"code columns {columns} are not distinct inputs of {fan_in}")
        tables = [np.asarray(t) for t in tables]
        ndim = tables[0].ndim if tables else 2
        if any(t.ndim != ndim or ndim not in (2, 3) or t.shape[-2] < 2 or t.shape[-1] < 1 or t.shape[:-2] !=
               tables[0].shape[:-2] for t in tables):
            raise ValueError(f"tables of shapes {[t.shape for t in tables]} are not embedding tables")
        self.members = tables[0].shape[0] if ndim == 3 else None
        self.fan_in = int(fan_in)
        self.columns = [int(c) for c in columns]
        code = set(self.columns)
        self.keep = np.array([j for j in range(self.fan_in) if j not in code], dtype=np.intp)
        self.params = {f"table_{k}": t for k, t in enumerate(tables)}
        self.decay = {name: bool(decay) for name in self.params}
        self.attach(self.params, {name: np.zeros_like(t) for name, t in self.params.items()})

    @classmethod
    def fresh(cls, fan_in, columns, sizes, rng, dtype, decay=True) -> "Embedding":
        """New tables for `sizes` [(categories, width), ...]: N(0, INIT_STD²), the
        unseen-category row at zero. `rng`: one generator, or one per member (a list)."""
        rngs = rng if isinstance(rng, (list, tuple)) else [rng]
        tables = []
        for n, width in sizes:
            t = np.stack([r.standard_normal((n + 1, width)) for r in rngs]) * INIT_STD
            t[:, n] = 0.0
            tables.append(t.astype(dtype) if isinstance(rng, (list, tuple)) else t[0].astype(dtype))
        return cls(fan_in, columns, tables, decay)

    @classmethod
    def from_saved(cls, settings, arrays):
        tables = [arrays[f"table_{k}"] for k in range(len(settings["columns"]))]
        layer = cls(settings["inputs"], settings["columns"], tables)
        for key in ("widths", "categories"):
            if settings.get(key, getattr(layer, key)) != getattr(layer, key):
                raise ValueError(f"settings say {key} {settings[key]}, the tables have {getattr(layer, key)}")
        return layer

    def attach(self, params, grads):
        super().attach(params, grads)
        self.tables = [params[f"table_{k}"] for k in range(len(self.columns))]
        self.table_grads = [grads[f"table_{k}"] for k in range(len(self.columns))]

    @property
    def widths(self) -> list[int]:
        return [int(t.shape[-1]) for t in self.tables]

    @property
    def categories(self) -> list[int]:
        """Categories training saw, per table (its rows less the unseen-category row)."""
        return [int(t.shape[-2]) - 1 for t in self.tables]

    def _rows(self, codes: np.ndarray, k: int):
        """The index of the table rows that table k's codes pick: (rows,) codes, or (K, rows)."""
        if self.members is None:
            return codes[:, k]
        if codes.ndim == 2:  # shared by the members: the same rows of each member's table
            return slice(None), codes[:, k]
        return np.arange(self.members)[:, None], codes[..., k]

    def settings(self):
        return {"inputs": self.fan_in, "columns": self.columns, "widths": self.widths, "categories": self.categories}

    def describe(self):
        return "embedding " + " ".join(f"{n}→{w}" for n, w in zip(self.categories, self.widths))

    def units(self, fan_in):
        if fan_in != self.fan_in:
            raise ValueError(f"an embedding layer of {self.fan_in} inputs cannot take {fan_in}")
        return len(self.keep) + sum(self.widths)

    def backward_buffers(self, fan_in, input_delta=True):
        return {"dx": fan_in} if input_delta else {}

    def forward(self, x, training=False, buf=None):
        buf = self.begin(x, buf)
        # rounded, not truncated: codes are exact, and a finite-difference nudge must not move one
        codes = np.rint(x[..., self.columns]).astype(np.intp)
        if codes.size and (codes.min() < 0 or any(codes[..., k].max() >= t.shape[-2]
                                                  for k, t in enumerate(self.tables))):
            raise ValueError("a category code is outside its embedding table")
        buf.codes = codes
        out, m = buf.out, len(self.keep)
        out[..., :m] = x[..., self.keep]
        start = m
        for k, table in enumerate(self.tables):
            width = table.shape[-1]
            out[..., start:start + width] = table[self._rows(codes, k)]
            start += width
        return out

    def backward(self, delta, buf):
        start = len(self.keep)
        for k, grad in enumerate(self.table_grads):
            width = grad.shape[-1]
            grad[...] = 0.0
            # the scatter-add: rows of delta whose code is the same sum into that table row
            np.add.at(grad, self._rows(buf.codes, k), delta[..., start:start + width])
            start += width
        if not buf.input_delta:
            return None
        dx = buf.dx
        dx[..., self.columns] = 0.0
        dx[..., self.keep] = delta[..., :len(self.keep)]
        # an input the members share: the sum of their deltas
        return dx.sum(axis=0) if self.members is not None and buf.x.ndim == 2 else dx
