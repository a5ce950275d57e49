"""Embeddings of numeric inputs (Gorishniy et al., "On Embeddings for Numerical Features in
Tabular Deep Learning", NeurIPS 2022): each numeric input x_f becomes its own small vector,
and the vectors are put beside the other inputs (one-hot columns, category codes):

    out = [x[:, keep], e_0(x[:, columns[0]]), e_1(x[:, columns[1]]), ...]

Two kinds, each a layer that is the network's first (or comes right before `Embedding`):

- `Periodic` (type `periodic`), PLR as in the paper and `rtdl_num_embeddings.PeriodicEmbeddings`
  with `lite=False`: per feature f, k learned frequencies c_f (c ~ N(0, σ²) truncated at ±3σ),
      v_f = [cos(2π c_f x_f), sin(2π c_f x_f)]         (2k,)
      e_f = ReLU(v_f @ W_f + b_f)                       W_f: (2k, width), b_f: (width,)
  Each feature has its own W_f (not the "lite" variant, whose linear layer is shared).
  backward, with g = ∂L/∂e_f ⊙ 1{e_f > 0} and a = 2π c_f x_f:
      ∂L/∂W_f = v_fᵀ g,  ∂L/∂b_f = Σ_rows g,  ∂L/∂v_f = g W_fᵀ,
      ∂L/∂a = ∂L/∂v_sin ⊙ cos a − ∂L/∂v_cos ⊙ sin a,
      ∂L/∂c_f = 2π Σ_rows x_f ∂L/∂a,   ∂L/∂x_f = 2π Σ_k c_f ∂L/∂a.
  W decays under l2; b and the frequencies do not (decay would pull every frequency to 0, a
  constant encoding).

- `PiecewiseLinear` (type `piecewise_linear`), PLE as the paper's encoding and
  `rtdl_num_embeddings.PiecewiseLinearEncoding` (the encoding alone: no linear layer after it,
  the next dense layer is that): per feature f with bin edges b_0 < ... < b_T (the training
  part's quantiles, `quantile_edges`), component t is
      e_t = clip((x − b_t) / (b_{t+1} − b_t), lo_t, hi_t)
  with [lo, hi] = (−∞, 1] for the first bin, [0, 1] for the middle ones, [0, ∞) for the last
  (a single bin: unclipped), so a value below b_0 or above b_T still moves its end component.
  A feature whose quantiles repeat has fewer bins: its last bin keeps the last component and the
  unused ones are always 0 (as rtdl's). backward: ∂L/∂x = Σ_t ∂L/∂e_t / (b_{t+1} − b_t) where
  the clip passes (lo ≤ z ≤ hi, as torch.clamp's gradient). The edges are `state` (stored in
  model.npz, never trained).

With members the arrays have a leading K (`Periodic`: each member's own parameters;
`PiecewiseLinear`: edges per member, the same ones when built from one table), the input is
(rows, fan_in) shared by the members or (K, rows, fan_in), and the output (K, rows, units).
Every feature, row and member is computed at once: the per-feature products are batched matmuls
over a (…, features, rows, ·) layout.
"""
from __future__ import annotations

import math

import numpy as np

from .layers import Layer, register

TWO_PI = 2.0 * math.pi


def _shaped(a: np.ndarray, shape: tuple) -> np.ndarray:
    """A view of a contiguous buffer `a` with another shape (an error, never a silent copy)."""
    view = a.view()
    view.shape = shape
    return view


class _PerFeature(Layer):
    """What both kinds share: `fan_in` inputs, of which `columns` are numeric and embedded, the
    others (`keep`) passed through first; `width` output columns per numeric input."""

    width = 1

    def _split(self, fan_in: int, columns) -> None:
        self.fan_in = int(fan_in)
        self.columns = np.asarray(columns, dtype=np.intp)
        if not len(self.columns) or len(set(self.columns.tolist())) != len(self.columns) \
                or self.columns.min() < 0 or self.columns.max() >= self.fan_in:
            raise ValueError(f"numeric columns {self.columns.tolist()} are not distinct inputs of {fan_in}")
        self.keep = np.setdiff1d(np.arange(self.fan_in), self.columns).astype(np.intp)

    @property
    def features(self) -> int:
        return len(self.columns)

    def units(self, fan_in):
        if fan_in != self.fan_in:
            raise ValueError(f"a {self.type} layer of {self.fan_in} inputs cannot take {fan_in}")
        return len(self.keep) + self.features * self.width

    def backward_buffers(self, fan_in, input_delta=True):
        return {"dx": fan_in} if input_delta else {}

    def _lead(self, x: np.ndarray) -> tuple:
        """The member axis of this pass's outputs: (K,) or ()."""
        return x.shape[:-2] if self.members is None else (self.members,)

    def _embedded_block(self, out: np.ndarray) -> np.ndarray:
        """out's embedded columns as (…, rows, features, width), a view."""
        block = out[..., len(self.keep):]
        return _shaped(block, block.shape[:-1] + (self.features, self.width))

    def _pass_through(self, x, out) -> None:
        out[..., :len(self.keep)] = x[..., self.keep]

    def _input_delta(self, delta, buf, numeric_delta) -> np.ndarray | None:
        """dL/dx from the passed-through columns' delta and the numeric inputs' (…, rows, F);
        for an input the members share, the sum of theirs."""
        if not buf.input_delta:
            return None
        dx = buf.dx
        dx[..., self.keep] = delta[..., :len(self.keep)]
        dx[..., self.columns] = numeric_delta
        return dx.sum(axis=0) if dx.ndim == 3 and buf.x.ndim == 2 else dx

    def settings(self):
        return {"inputs": self.fan_in, "columns": self.columns.tolist()}


@register
class Periodic(_PerFeature):
    """PLR: per numeric input, `frequencies` (F, k), `W` (F, 2k, width), `b` (F, width); with
    members (K, ...) each. See the module docstring for the formulas."""

    type = "periodic"

    def __init__(self, fan_in: int, columns, frequencies, W, b):
        super().__init__()
        self._split(fan_in, columns)
        c, W, b = np.asarray(frequencies), np.asarray(W), np.asarray(b)
        F = self.features
        if c.ndim not in (2, 3) or c.shape[-2] != F or W.shape != c.shape[:-2] + (F, 2 * c.shape[-1], W.shape[-1]) \
                or b.shape != c.shape[:-2] + (F, W.shape[-1]):
            raise ValueError(f"frequencies {c.shape}, W {W.shape} and b {b.shape} are not a periodic "
                             f"embedding of {F} inputs")
        self.members = c.shape[0] if c.ndim == 3 else None
        self.k, self.width = c.shape[-1], W.shape[-1]
        self.params = {"frequencies": c, "W": W.astype(c.dtype, copy=False), "b": b.astype(c.dtype, copy=False)}
        self.decay = {"frequencies": False, "W": True, "b": False}
        self.attach(self.params, {name: np.zeros_like(a) for name, a in self.params.items()})

    @classmethod
    def fresh(cls, fan_in, columns, frequencies, width, sigma, rng, dtype) -> "Periodic":
        """New parameters as rtdl's: c ~ N(0, σ²) truncated at ±3σ, W and b ~ U(±1/√(2k)).
        `rng`: one generator, or one per member (a list: the arrays get the member axis)."""
        rngs = rng if isinstance(rng, (list, tuple)) else [rng]
        F, bound = len(columns), 1.0 / math.sqrt(2 * frequencies)
        cs, Ws, bs = [], [], []
        for r in rngs:
            c = r.standard_normal((F, frequencies))
            bad = np.abs(c) > 3.0
            while bad.any():  # redraw what falls beyond ±3σ: a truncated normal
                c[bad] = r.standard_normal(int(bad.sum()))
                bad = np.abs(c) > 3.0
            cs.append(c * sigma)
            Ws.append(r.uniform(-bound, bound, (F, 2 * frequencies, width)))
            bs.append(r.uniform(-bound, bound, (F, width)))
        arrays = [np.stack(a).astype(dtype) for a in (cs, Ws, bs)]
        if not isinstance(rng, (list, tuple)):
            arrays = [a[0] for a in arrays]
        return cls(fan_in, columns, *arrays)

    @classmethod
    def from_saved(cls, settings, arrays):
        layer = cls(settings["inputs"], settings["columns"], arrays["frequencies"], arrays["W"], arrays["b"])
        if settings.get("width", layer.width) != layer.width:
            raise ValueError(f"settings say width {settings['width']}, W has {layer.width}")
        return layer

    def attach(self, params, grads):
        super().attach(params, grads)
        self.c, self.W, self.b = params["frequencies"], params["W"], params["b"]
        self.dc, self.dW, self.db = grads["frequencies"], grads["W"], grads["b"]

    def settings(self):
        return {**super().settings(), "width": int(self.width)}

    def describe(self):
        return f"periodic {self.features}×{self.k}→{self.width}"

    def buffers(self, fan_in):
        F = self.features
        # v: (…, F, rows, 2k) and h: (…, F, rows, width) in per-row memory, features first so that
        # each feature's product is one matmul of a batch
        return {"out": self.units(fan_in), "v": F * 2 * self.k, "h": F * self.width}

    def backward_buffers(self, fan_in, input_delta=True):
        return {**super().backward_buffers(fan_in, input_delta), "dv": self.features * 2 * self.k,
                "dh": self.features * self.width}

    def _by_feature(self, a, x, columns) -> np.ndarray:
        rows = x.shape[-2]
        return _shaped(a, self._lead(x) + (self.features, rows, columns))

    def forward(self, x, training=False, buf=None):
        buf = self.begin(x, buf)
        k = self.k
        xn = np.swapaxes(x[..., self.columns], -1, -2)  # (…, F, rows)
        v = self._by_feature(buf.v, x, 2 * k)
        angle = v[..., :k]
        np.multiply(xn[..., None], (TWO_PI * self.c)[..., :, None, :], out=angle)
        np.sin(angle, out=v[..., k:])
        np.cos(angle, out=angle)
        h = self._by_feature(buf.h, x, self.width)
        np.matmul(v, self.W, out=h)
        h += self.b[..., :, None, :]
        np.maximum(h, 0.0, out=h)
        out = buf.out
        self._pass_through(x, out)
        np.copyto(self._embedded_block(out), np.swapaxes(h, -3, -2))
        return out

    def backward(self, delta, buf):
        x, k = buf.x, self.k
        v, h = self._by_feature(buf.v, x, 2 * k), self._by_feature(buf.h, x, self.width)
        g = self._by_feature(buf.dh, x, self.width)
        np.sign(h, out=g)  # h ≥ 0 after the ReLU: 1 where it passed, 0 where it did not
        g *= np.swapaxes(self._embedded_block(delta), -3, -2)
        np.matmul(np.swapaxes(v, -1, -2), g, out=self.dW)
        np.matmul(buf.ones, g, out=self.db)  # the sum over rows as one product: faster than sum()
        dv = self._by_feature(buf.dv, x, 2 * k)
        np.matmul(g, np.swapaxes(self.W, -1, -2), out=dv)
        # ∂L/∂a = ∂L/∂sin ⊙ cos − ∂L/∂cos ⊙ sin, into dv's cos half
        dv[..., k:] *= v[..., :k]
        dv[..., :k] *= v[..., k:]
        da = np.subtract(dv[..., k:], dv[..., :k], out=dv[..., :k])
        xn = np.swapaxes(x[..., self.columns], -1, -2)  # (…, F, rows)
        np.einsum("...fr,...frk->...fk", xn, da, out=self.dc)
        self.dc *= TWO_PI
        if not buf.input_delta:
            return None
        dxn = np.matmul(da, self.c[..., None])[..., 0]  # (…, F, rows)
        dxn *= TWO_PI
        return self._input_delta(delta, buf, np.swapaxes(dxn, -1, -2))

    def record(self, buf) -> dict:
        """The share of the embedding's ReLU outputs that are 0."""
        h = buf.h
        return {"relu_zeros": float(1.0 - np.count_nonzero(h) / h.size) if h.size else 0.0}


@register
class PiecewiseLinear(_PerFeature):
    """PLE: per numeric input its bin edges, `edges` (F, bins + 1) nondecreasing (a repeated
    edge closes an empty, unused bin), with members (K, F, bins + 1). No trained arrays."""

    type = "piecewise_linear"

    def __init__(self, fan_in: int, columns, edges):
        super().__init__()
        self._split(fan_in, columns)
        edges = np.asarray(edges)
        if edges.ndim not in (2, 3) or edges.shape[-2] != self.features or edges.shape[-1] < 2 \
                or not np.all(np.diff(edges, axis=-1) >= 0):
            raise ValueError(f"edges {edges.shape} are not nondecreasing bin edges of {self.features} inputs")
        self.members = edges.shape[0] if edges.ndim == 3 else None
        self.width = edges.shape[-1] - 1
        self.state = {"edges": edges}
        self._coefs: dict = {}

    @classmethod
    def from_saved(cls, settings, arrays):
        layer = cls(settings["inputs"], settings["columns"], arrays["edges"])
        if settings.get("bins", layer.width) != layer.width:
            raise ValueError(f"settings say {settings['bins']} bins, the edges have {layer.width}")
        return layer

    def settings(self):
        return {**super().settings(), "bins": int(self.width)}

    def describe(self):
        return f"piecewise linear {self.features}×{self.width}"

    def buffers(self, fan_in):
        return {"out": self.units(fan_in), "z": self.features * self.width}

    def backward_buffers(self, fan_in, input_delta=True):
        return {**super().backward_buffers(fan_in, input_delta), "passed": self.features * self.width}

    def coefficients(self, dtype=None) -> tuple:
        """(scale, shift, lo, hi), each (…, F, bins): e = clip(x · scale + shift, lo, hi); what
        ONNX export writes too. Made from the edges once per dtype."""
        edges = self.state["edges"]
        dtype = np.dtype(dtype or edges.dtype)
        made = self._coefs.get(dtype)
        # compared by value: loading a checkpoint writes the edges in place
        if made is None or not np.array_equal(made[0], edges):
            made = self._coefs[dtype] = (edges.copy(), [a.astype(dtype) for a in ple_coefficients(edges.astype(np.float64))])
        return tuple(made[1])

    def _per_member(self, a: np.ndarray) -> np.ndarray:
        """A (K, F, bins) coefficient as it broadcasts against (K, rows, F, bins)."""
        return a if self.members is None else a[:, None]

    def forward(self, x, training=False, buf=None):
        buf = self.begin(x, buf)
        scale, shift, lo, hi = (self._per_member(a) for a in self.coefficients(x.dtype))
        out = buf.out
        self._pass_through(x, out)
        rows = x.shape[-2]
        z = _shaped(buf.z, self._lead(x) + (rows, self.features, self.width))
        np.multiply(x[..., self.columns][..., None], scale, out=z)
        z += shift
        e = self._embedded_block(out)
        np.maximum(z, lo, out=e)
        np.minimum(e, hi, out=e)
        return out

    def backward(self, delta, buf):
        if not buf.input_delta:
            return None
        x = buf.x
        rows = x.shape[-2]
        shape = self._lead(x) + (rows, self.features, self.width)
        z, passed = _shaped(buf.z, shape), _shaped(buf.passed, shape)
        np.equal(z, self._embedded_block(buf.out), out=passed)  # where the clip let z through
        passed *= self._embedded_block(delta)
        passed *= self._per_member(self.coefficients(x.dtype)[0])
        return self._input_delta(delta, buf, passed.sum(axis=-1))

    def record(self, buf) -> dict:
        """The share of numeric values outside the edges (below the first, above the last):
        inputs beyond what training saw, where only an end component still moves."""
        x = buf.x
        if x is None or not x.size:
            return {"outside": 0.0}
        edges = self.state["edges"]
        first, last = edges[..., 0], edges[..., -1]  # (F,) or (K, F)
        if self.members is not None:
            first, last = first[:, None, :], last[:, None, :]
        xn = x[..., self.columns]
        outside = (xn < first) | (xn > last)
        return {"outside": float(outside.mean())}


def ple_coefficients(edges: np.ndarray) -> tuple:
    """(scale, shift, lo, hi) of PLE for `edges` (…, F, T + 1) nondecreasing, each (…, F, T):
    feature f with n ≥ 1 bins of positive width (its first n) puts bins 0..n−2 in components
    0..n−2, its last bin in component T−1, and leaves the others always 0; the clip bounds are
    (−∞, 1] first, [0, 1] middle, [0, ∞) last, none for a single bin. A feature without any
    bin (a constant) is all 0."""
    T = edges.shape[-1] - 1
    width = np.diff(edges, axis=-1)
    n = np.count_nonzero(width > 0, axis=-1)[..., None]  # (…, F, 1)
    t = np.arange(T)
    # component t reads bin `source`: t itself below n − 1, bin n − 1 at the last component
    source = np.where(t == T - 1, n - 1, t)
    active = (n >= 1) & ((t < n - 1) | (t == T - 1))
    source = np.clip(source, 0, T - 1)
    start = np.take_along_axis(edges[..., :-1], source, axis=-1)
    size = np.take_along_axis(width, source, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(active, 1.0 / np.where(active, size, 1.0), 0.0)
    shift = np.where(active, -start * scale, 0.0)
    first, last = (t == 0) & (n >= 2), t == T - 1
    lo = np.where(active & ~first & ~(last & (n == 1)), 0.0, -np.inf)
    hi = np.where(active & ~(last & (n >= 1)), 1.0, np.inf)
    lo, hi = np.where(active, lo, 0.0), np.where(active, hi, 0.0)
    return scale, shift, lo, hi


def quantile_edges(X: np.ndarray, bins: int) -> np.ndarray:
    """(F, bins + 1) bin edges of the columns of X (rows, F): the quantiles at 0, 1/bins, ..., 1
    (linear interpolation, as rtdl's `compute_bins` with torch.quantile), repeated values merged
    and the row filled up with its last edge (an empty bin, unused). float64."""
    X = np.asarray(X, dtype=np.float64)
    q = np.quantile(X, np.linspace(0.0, 1.0, bins + 1), axis=0).T if len(X) else np.zeros((X.shape[1], bins + 1))
    new = np.concatenate([np.ones((len(q), 1), dtype=bool), np.diff(q, axis=-1) > 0], axis=-1)
    # each distinct edge to its place among the distinct ones; the rest take the row's last
    place = np.cumsum(new, axis=-1) - 1
    edges = np.repeat(q[:, -1:], bins + 1, axis=-1)
    rows = np.broadcast_to(np.arange(len(q))[:, None], q.shape)
    edges[rows[new], place[new]] = q[new]
    return edges
