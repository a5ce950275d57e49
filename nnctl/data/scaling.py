"""Feature scaling and regression target transforms: fit on the training part, stored in
model.npz's meta as plain JSON, applied the same way by train, predict, serve and ONNX export.

Feature scalers (`data.scale`), each a dict with `kind`, `offset` and `scale` (one per input):

- `standard`: (x − mean) / std; `minmax`: (x − min) / (max − min); `none`.
- `robust` (RealMLP's robust scaling with smooth clipping, Holzmüller et al. 2024):
      u = (x − median) / s,   s = q75 − q25  (or (max − min) / 2 when the IQR is 0, else 1)
      x' = u / sqrt(1 + (u / 3)²)
  x' is u near the median and tends to ±3 in the tails, so an outlier cannot dominate a layer.
  `clipped` lists the inputs the smooth clip applies to (not one-hot columns or codes).
- `quantile`: each numeric input through the training part's empirical CDF to a standard
  normal, x' = interp(x, knots, Φ⁻¹(p)) with at most QUANTILES knots per column (repeated
  knot values of a discrete column are merged, their scores averaged); values outside the
  training range map to the end scores. `quantiles`: {input index: [knots, scores]}.

Target transforms (`data.target_transform`), `target_scaler` in meta: the network learns
t = (g(y) − offset) / scale and a prediction is y = g⁻¹(o · scale + offset), with g the
identity (`standard`), log1p (`log1p`, needs y > −1) or the target's quantile map to a normal
(`quantile`, offset 0 and scale 1). Conformal scores are |g(y) − g(ŷ)|: intervals are made in
g's space and mapped back, which keeps their coverage because g is increasing.
"""
from __future__ import annotations

from statistics import NormalDist

import numpy as np

from ..errors import NnctlError

SMOOTH_CLIP = 3.0  # robust scaling's smooth clip: |x'| < 3
CLIP_BOUND = 1e15  # the smooth clip's input is bounded to ±clip · this: its square fits float32
QUANTILES = 128  # knots kept per numeric column by `quantile` feature scaling
TARGET_QUANTILES = 512  # knots kept for a `quantile` target
SAMPLE_ROWS = 100_000  # rows a bounded sample keeps (streaming; the quantiles of a long column)
STATS_ROWS = 4096  # rows per float64 chunk when computing the standard deviation


# --- fitting ------------------------------------------------------------------------------


def fit_scaler(X: np.ndarray, kind: str, passthrough: np.ndarray) -> dict:
    """The scaler of `kind` for the training matrix X (rows, inputs); one-hot and code columns
    (`passthrough`) and constant columns keep offset 0 / scale 1."""
    with np.errstate(over="ignore", invalid="ignore"):
        if kind in ("robust", "quantile"):
            return scaler_from_sample(X, kind, passthrough)
        offset, scale = _moment_stats(X, kind)
    return _finished(kind, offset, scale, passthrough)


def _finished(kind: str, offset, scale, passthrough: np.ndarray) -> dict:
    offset, scale = np.asarray(offset, np.float64), np.asarray(scale, np.float64)
    with np.errstate(invalid="ignore"):
        scale = np.where(np.isfinite(scale) & (scale > 0) & ~passthrough, scale, 1.0)
    offset = np.where(passthrough | ~np.isfinite(offset), 0.0, offset)
    return {"kind": kind, "offset": offset.tolist(), "scale": scale.tolist()}


def _moment_stats(X: np.ndarray, kind: str):
    """Per-column (offset, scale) in float64, without a float64 copy of X: the mean is a
    float64-accumulated sum, the standard deviation two passes over row chunks."""
    if kind == "standard" and len(X):
        mean = X.sum(axis=0, dtype=np.float64) / len(X)
        squares = np.zeros(X.shape[1])
        for start in range(0, len(X), STATS_ROWS):
            d = X[start:start + STATS_ROWS].astype(np.float64) - mean
            squares += np.einsum("ij,ij->j", d, d)
        std = np.sqrt(squares / len(X))
        for j in np.flatnonzero(~(np.isfinite(mean) & np.isfinite(std))):
            mean[j], std[j] = _large_moments(X[:, j])
        return mean, std
    if kind == "minmax" and len(X):
        low, high = X.min(axis=0).astype(np.float64), X.max(axis=0).astype(np.float64)
        return low, high - low
    return np.zeros(X.shape[1]), np.ones(X.shape[1])


def _large_moments(values: np.ndarray) -> tuple[float, float]:
    """(mean, std) of a column whose plain sums overflow (values near float64's limit, 1e308):
    taken on values / max|values|, as fit_target and a streamed table's moments do."""
    values = np.asarray(values, np.float64)
    size = float(np.max(np.abs(values))) if len(values) else 0.0
    if not (np.isfinite(size) and size > 0):
        return np.nan, np.nan  # an inf value: _finished keeps offset 0 / scale 1, the range check refuses it
    shrunk = values / size
    return float(shrunk.mean() * size), float(shrunk.std() * size)


def scaler_from_sample(X: np.ndarray, kind: str, passthrough: np.ndarray) -> dict:
    """`robust` or `quantile` from the rows X (rows, inputs): the whole training part in memory."""
    return scaler_from_columns(lambda j: X[:, j], X.shape[1], kind, passthrough, empty=not len(X))


def scaler_from_columns(column, width: int, kind: str, passthrough: np.ndarray, empty: bool = False) -> dict:
    """`robust` or `quantile` from each input's values, `column(j)` (rows,), one column at a time:
    a float64 copy of one column is the most this holds beyond its input (a streamed table's
    bounded samples side by side, copied whole, tripled the first pass's memory)."""
    columns = [] if empty else [j for j in range(width) if not passthrough[j]]
    if kind == "robust":
        offset, scale = np.zeros(width), np.ones(width)
        for j in columns:
            values = np.asarray(column(j), np.float64)
            q25, median, q75 = np.quantile(values, [0.25, 0.5, 0.75])
            spread = values.max() / 2 - values.min() / 2  # halved first: a span near ±1e308 overflows
            offset[j] = median
            scale[j] = q75 - q25 if q75 > q25 else (spread if spread > 0 else 1.0)
        out = _finished(kind, offset, scale, passthrough)
        out["clip"], out["clipped"] = SMOOTH_CLIP, [j for j in range(width) if not passthrough[j]]
        return out
    out = _finished(kind, np.zeros(width), np.ones(width), passthrough)
    out["quantiles"] = {str(j): quantile_knots(column(j), QUANTILES) for j in columns}
    return out


def quantile_knots(values: np.ndarray, count: int) -> list:
    """[knots, scores]: `count` evenly spaced quantiles of `values` (rows,) and the standard
    normal's quantiles at the same probabilities, repeated knots merged (their scores averaged,
    so that a value shared by many rows maps to the middle of their scores)."""
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if not len(values):
        return [[0.0], [0.0]]
    probs = np.linspace(0.0, 1.0, count)
    knots = np.quantile(values, probs, method="linear")
    # as scikit-learn's QuantileTransformer: the ends stay finite, about ±5.2
    clipped = np.clip(probs, 1e-7, 1 - 1e-7)
    normal = NormalDist()
    scores = np.array([normal.inv_cdf(float(p)) for p in clipped])
    unique, inverse = np.unique(knots, return_inverse=True)
    merged = np.bincount(inverse.reshape(-1), weights=scores) / np.bincount(inverse.reshape(-1))
    if len(unique) == 1:
        merged = np.zeros(1)
    return [unique.tolist(), merged.tolist()]


# --- applying -----------------------------------------------------------------------------


def apply_scaler(X: np.ndarray, scaler: dict) -> None:
    """Scale X (rows, inputs) in place, in its own dtype (a value the scaling overflows is
    inf, for the caller's range check to name its column)."""
    with np.errstate(over="ignore", invalid="ignore"):
        X -= np.asarray(scaler["offset"], dtype=X.dtype)
        X /= np.asarray(scaler["scale"], dtype=X.dtype)
    bend(X.T, scaler)


def bend(by_input: np.ndarray, scaler: dict, inputs=None) -> None:
    """What follows (x - offset) / scale, in place on values held input by input (by_input[k]:
    input `inputs[k]`'s values; `inputs` None: input k): robust's smooth clip of its clipped
    inputs, quantile's map to a normal; inputs the block does not hold are left out."""
    place = None if inputs is None else {int(j): k for k, j in enumerate(inputs)}

    def at(j):
        return int(j) if place is None else place.get(int(j))

    kind = scaler.get("kind")
    if kind == "robust" and scaler.get("clipped"):
        rows = np.array([k for j in scaler["clipped"] if (k := at(j)) is not None], dtype=np.int64)
        by_input[rows] = smooth_clip(by_input[rows], scaler.get("clip", SMOOTH_CLIP))
    elif kind == "quantile":
        for j, (knots, scores) in (scaler.get("quantiles") or {}).items():
            if (k := at(j)) is not None:
                by_input[k] = np.interp(by_input[k].astype(np.float64), knots, scores)


def smooth_clip(u: np.ndarray, c: float = SMOOTH_CLIP) -> np.ndarray:
    """u / sqrt(1 + (u / c)²): the identity near 0, ±c far out; u's dtype."""
    c = u.dtype.type(c)
    # beyond ±c·CLIP_BOUND the result is ±c to the last bit; bounding u keeps (u / c)² finite,
    # which for a value near the dtype's limit overflowed to inf and sent it to 0, not ±c
    u = np.clip(u, -c * CLIP_BOUND, c * CLIP_BOUND)
    return u / np.sqrt(1 + (u / c) ** 2)


def quantile_tables(scaler: dict, width: int):
    """The quantile scaler as padded tables for a graph without a search op (ONNX): per input j,
    `inner` (width, K−2) the knots between the ends (+inf padding), `low`/`high` (width,) the end
    knots, and per segment (width, K−1) its start knot, score and slope; `mapped` (width,) bool.
    interp(x) = score[k] + slope[k] · (clip(x, low, high) − start[k]), k = #(inner ≤ x)."""
    items = {int(j): v for j, v in (scaler.get("quantiles") or {}).items()}
    size = max([len(k) for k, _ in items.values()] + [2])
    inner = np.full((width, max(size - 2, 1)), np.inf)
    start, score, slope = (np.zeros((width, size - 1)) for _ in range(3))
    low, high, mapped = np.zeros(width), np.zeros(width), np.zeros(width, dtype=bool)
    for j, (knots, scores) in items.items():
        knots, scores = np.asarray(knots, np.float64), np.asarray(scores, np.float64)
        mapped[j], low[j], high[j] = True, knots[0], knots[-1]
        if len(knots) == 1:
            score[j, 0] = scores[0]
            continue
        inner[j, :len(knots) - 2] = knots[1:-1]
        n = len(knots) - 1
        start[j, :n], score[j, :n] = knots[:-1], scores[:-1]
        slope[j, :n] = np.diff(scores) / np.diff(knots)
    return inner, low, high, start, score, slope, mapped


# --- the regression target ----------------------------------------------------------------


def target_setting(data) -> str:
    """The target transform a config asks for: data.target_transform, or when it is null,
    `standard` under data.scale_target (its default) and `none` without."""
    chosen = getattr(data, "target_transform", None)
    if chosen is not None:
        return chosen
    return "standard" if data.scale_target else "none"


def check_log1p(y: np.ndarray, target: str, where: str) -> None:
    """log1p needs every target above −1."""
    low = float(np.min(y)) if len(y) else 0.0
    if low <= -1:
        raise NnctlError(f"data.target_transform: log1p needs target '{target}' above -1, but it has {low:g}",
                         where, "use data.target_transform: quantile or standard for a target with such values")


def fit_target(y: np.ndarray, kind: str) -> dict | None:
    """The target scaler of `kind` for training targets y (rows,) or (rows, outputs); None for
    `none`. A log1p target must be above −1 (checked by the caller, which knows the file)."""
    if kind == "none":
        return None
    y = np.asarray(y, np.float64)
    y = y.reshape(len(y), -1)
    if kind == "quantile":
        maps = [quantile_knots(y[:, k], TARGET_QUANTILES) for k in range(y.shape[1])]
        return {"kind": "quantile", "offset": [0.0] * y.shape[1], "scale": [1.0] * y.shape[1],
                "knots": [m[0] for m in maps], "scores": [m[1] for m in maps]}
    g = np.log1p(y) if kind == "log1p" else y
    with np.errstate(over="ignore", invalid="ignore"):
        offset, scale = g.mean(axis=0), g.std(axis=0)
    # a target near float64's limit (1e308) overflows the sums into an inf scale, which
    # model.npz cannot hold: the same statistics taken on g / max|g|
    for k in np.flatnonzero(~(np.isfinite(offset) & np.isfinite(scale))):
        offset[k], scale[k] = _large_moments(g[:, k])
    scale = np.where(scale > 0, scale, 1.0)
    return {"kind": kind, "offset": offset.tolist(), "scale": scale.tolist()}


def link(y: np.ndarray, scaler: dict | None) -> np.ndarray:
    """g(y), float64, y (rows,) or (rows, outputs): the space the network's outputs live in
    before standardization, and the space conformal scores are measured in."""
    y = np.asarray(y, np.float64)
    kind = (scaler or {}).get("kind", "standard")
    if kind == "log1p":
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.log1p(y)
    if kind == "quantile":
        return _per_output(y, scaler["knots"], scaler["scores"])
    return y


def unlink(v: np.ndarray, scaler: dict | None) -> np.ndarray:
    """g⁻¹(v), float64: back to the target's own units."""
    v = np.asarray(v, np.float64)
    kind = (scaler or {}).get("kind", "standard")
    if kind == "log1p":
        with np.errstate(over="ignore"):
            return np.expm1(v)
    if kind == "quantile":
        return _per_output(v, scaler["scores"], scaler["knots"])
    return v


def _per_output(v: np.ndarray, xs: list, fs: list) -> np.ndarray:
    """np.interp per output column of v (rows,) or (rows, outputs)."""
    flat = v.ndim == 1
    cols = v[:, None] if flat else v  # not reshape(len(v), -1): no rows (an empty validation part) has no -1
    out = np.column_stack([np.interp(cols[:, k], xs[k], fs[k]) for k in range(cols.shape[1])]) \
        if cols.shape[1] else cols
    return out.reshape(-1) if flat else out


def to_training(y: np.ndarray, scaler: dict | None) -> np.ndarray:
    """t = (g(y) − offset) / scale, float64, as the network learns it."""
    if not scaler:
        return np.asarray(y, np.float64)
    return (link(y, scaler) - np.asarray(scaler["offset"])) / np.asarray(scaler["scale"])


def from_training(o: np.ndarray, scaler: dict | None) -> np.ndarray:
    """y = g⁻¹(o · scale + offset), float64: a network output in the target's units."""
    if not scaler:
        return np.asarray(o, np.float64)
    return unlink(linked_output(o, scaler), scaler)


def linked_output(o: np.ndarray, scaler: dict | None) -> np.ndarray:
    """o · scale + offset: a network output in g's space (conformal scores are measured there)."""
    o = np.asarray(o, np.float64)
    if not scaler:
        return o
    return o * np.asarray(scaler["scale"]) + np.asarray(scaler["offset"])


def is_linear(scaler: dict | None) -> bool:
    """Whether the target transform is affine (none or standard): then g is the identity."""
    return (scaler or {}).get("kind", "standard") == "standard"


# --- checking a model file's meta ---------------------------------------------------------


def _monotone(knots, scores) -> bool:
    if not (isinstance(knots, list) and isinstance(scores, list) and len(knots) == len(scores) >= 1):
        return False
    try:
        k, v = np.asarray(knots, np.float64), np.asarray(scores, np.float64)
    except (TypeError, ValueError):
        return False
    return bool(np.isfinite(k).all() and np.isfinite(v).all() and (np.diff(k) > 0).all() and (np.diff(v) >= 0).all())


def scaler_problem(scaler: dict, width: int) -> str | None:
    """What is wrong with a saved feature scaler's robust or quantile part, or None."""
    kind = scaler.get("kind")
    if kind == "robust":
        clipped, clip = scaler.get("clipped"), scaler.get("clip")
        if not isinstance(clipped, list) or not all(isinstance(j, int) and 0 <= j < width for j in clipped) \
                or isinstance(clip, bool) or not isinstance(clip, (int, float)) or not clip > 0:
            return f"`scaler` (robust) must hold `clip` > 0 and `clipped`, input indices below {width}"
    if kind == "quantile":
        maps = scaler.get("quantiles")
        if not isinstance(maps, dict) or not all(
                str(j).isdigit() and int(j) < width and isinstance(m, list) and len(m) == 2 and _monotone(*m)
                for j, m in maps.items()):
            return (f"`scaler` (quantile) must map input indices below {width} to [knots, scores], "
                    "increasing lists of equal length")
    return None


def target_problem(target: dict, width: int) -> str | None:
    """What is wrong with a saved target scaler's kind, or None."""
    kind = target.get("kind", "standard")
    if kind not in ("standard", "log1p", "quantile"):
        return "`target_scaler` has an unknown `kind`: standard, log1p or quantile"
    if kind == "quantile":
        knots, scores = target.get("knots"), target.get("scores")
        if not (isinstance(knots, list) and isinstance(scores, list) and len(knots) == len(scores) == width
                and all(_monotone(k, v) for k, v in zip(knots, scores))):
            return "`target_scaler` (quantile) must hold `knots` and `scores`, one increasing list of each per output"
    return None
