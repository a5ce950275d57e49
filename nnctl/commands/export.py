"""`nnctl export`: a saved model as ONNX with the whole pipeline inside — raw columns in, labels
and probabilities (or values in the target's units) out — built with the `onnx` package (the
optional `onnx` extra). The graph does, in `predict`'s order:

1. the missing-value fill of `missing: mean` models (NaN numbers, empty-string categories);
2. one-hot encoding of categorical columns (ai.onnx.ml LabelEncoder + OneHotEncoder), or for an
   embedded column its category code (LabelEncoder to int64, as a float). A category training
   never saw, under `unknown_category: ignore` (or `export --unknown-category ignore`), is the
   all-zero one-hot or the embedding's zero row, as `predict` reads it. Under `error` it fails
   the whole run, every row of the batch, as `predict` fails the file: onnxruntime raises
   "Unknown Category and zeros = 0" from the OneHotEncoder, or for an embedded column
   "indices element out of data bounds, idx=n+1" from the Gather (the code past the table's end
   that `_code` gives it): ONNX has no operator that fails with a message of its own;
3. scaling, (x - offset) / scale, then robust scaling's smooth clip or quantile scaling's
   interpolation (found without a search operator: a value's segment is how many knots it
   reaches; the graph holds a [N, inputs, knots] comparison, so feed large tables in batches);
4. every layer, each type by its own translation (`LAYER_EXPORTS`: dense is a Gemm, an
   activation its operator, batch norm a BatchNormalization with its running statistics, layer
   norm a LayerNormalization, or its parts below opset 17, dropout nothing, an embedding a Gather
   of its tables' rows by the codes, a periodic embedding Cos and Sin then a batched MatMul, a
   piecewise-linear one Mul, Add, Max and Min, a residual block its body's layers and an Add of its
   input);
5. the output: the logits divided by the model's temperature (training.calibration), then
   softmax probabilities, the sigmoid's two columns, or the regression value mapped
   back to the target's units (through expm1 or the inverse quantile map for a log1p or
   quantile target); and the class label.

An ensemble (`model.ensemble: K`) is one graph too: each layer's arrays keep their member axis,
so the first dense layer is one MatMul of the rows [N, F] against the members' weights
[K, F, units] (ONNX's MatMul broadcasts as NumPy's), every later value is [K, N, ...], each
member's head (softmax, sigmoid or identity) runs on its own outputs, and a ReduceMean over the
member axis gives the members' mean, as `predict` does. A calibrated ensemble divides the logits
of that mean by its temperature.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .. import __version__
from ..data.scaling import CLIP_BOUND, SMOOTH_CLIP, is_linear, quantile_tables
from ..errors import NnctlError
from ..nn.activations import ELU_ALPHA, LEAKY_SLOPE

INSTALL_HINT = "install the onnx extra: pip install 'nnctl[onnx]' (or pip install onnx)"
MIN_OPSET = 13  # Softmax over one axis, and every operator below in its current form
# the newest opset whose versions of every operator used here onnxruntime implements (1.17 on);
# later opsets change none of them
DEFAULT_OPSET = 21
ML_OPSET = 3
OUTPUT_NAMES = ("label", "probabilities", "prediction")  # what scripts read: never renamed


def _onnx():
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError:
        raise NnctlError("exporting ONNX needs the onnx package, which is not installed", "nnctl export",
                         INSTALL_HINT)
    return onnx, helper, numpy_helper


class _Graph:
    """Nodes and constants, with fresh names for intermediate values."""

    def __init__(self, helper, numpy_helper, dtype, taken=()):
        self.helper, self.numpy_helper = helper, numpy_helper
        self.dtype = dtype
        self.nodes, self.initializers = [], []
        self.count = 0
        # ONNX names every value once (SSA): an intermediate must never take the name of an
        # input, which are the user's column names, or of an output
        self.taken = set(taken) | set(OUTPUT_NAMES)

    def name(self, hint: str) -> str:
        while True:
            self.count += 1
            name = f"{hint}_{self.count}"
            if name not in self.taken:
                self.taken.add(name)
                return name

    def const(self, value, hint: str, dtype=None) -> str:
        array = np.asarray(value, dtype=dtype if dtype is not None else self.dtype)
        name = self.name(hint)
        self.initializers.append(self.numpy_helper.from_array(array, name))
        return name

    def op(self, op_type: str, inputs: list, hint: str | None = None, domain: str = "", **attrs) -> str:
        out = self.name(hint or op_type.lower())
        self.nodes.append(self.helper.make_node(op_type, inputs, [out], domain=domain or None, **attrs))
        return out


def _activation(g: _Graph, name: str, x: str, opset: int) -> str:
    """`x` through one of nnctl's activations, as ONNX operators."""
    if name == "identity":
        return x
    if name in ("relu", "tanh", "sigmoid"):
        return g.op(name.capitalize(), [x])
    # onnxruntime has no float64 kernels for LeakyRelu, Elu, Gelu and Erf: float64 graphs write
    # the first two with operators it has, and compute gelu in float32 (a relative error ~1e-7)
    double = g.dtype == np.float64
    if name == "leaky_relu":
        if double:
            return g.op("Max", [x, g.op("Mul", [x, g.const(LEAKY_SLOPE, "slope")])], "leaky_relu")
        return g.op("LeakyRelu", [x], alpha=LEAKY_SLOPE)
    if name == "elu":
        if double:
            negative = g.op("Mul", [g.op("Sub", [g.op("Exp", [x]), g.const(1.0, "one")]), g.const(ELU_ALPHA, "alpha")])
            return g.op("Where", [g.op("Greater", [x, g.const(0.0, "zero")]), x, negative], "elu")
        return g.op("Elu", [x], alpha=ELU_ALPHA)
    if name == "softplus":
        # max(x, 0) + log(1 + e^-|x|): ONNX's Softplus, log(1 + e^x), overflows for large x
        tail = g.op("Log", [g.op("Add", [g.const(1.0, "one"), g.op("Exp", [g.op("Neg", [g.op("Abs", [x])])])])])
        return g.op("Add", [g.op("Relu", [x]), tail])
    if name == "gelu":
        if double:
            single = g.dtype
            g.dtype = np.float32
            y = _activation(g, "gelu", g.op("Cast", [x], "gelu_in", to=1), opset)
            g.dtype = single
            return g.op("Cast", [y], "gelu_out", to=11)
        if opset >= 20:
            return g.op("Gelu", [x])
        # x · Φ(x) = 0.5 · x · (1 + erf(x / √2)), for opsets before Gelu
        erf = g.op("Erf", [g.op("Mul", [x, g.const(1 / math.sqrt(2.0), "inv_sqrt2")])])
        return g.op("Mul", [g.op("Mul", [x, g.const(0.5, "half")]), g.op("Add", [erf, g.const(1.0, "one")])])
    raise NnctlError(f"the activation '{name}' has no ONNX form in this nnctl", "nnctl export")  # pragma: no cover


def _per_member(values: np.ndarray) -> np.ndarray:
    """A (K, units) array of a layer with members as (K, 1, units), to broadcast over rows."""
    return values[:, None, :]


def _dense(g: _Graph, layer, i: int, x: str, opset: int) -> str:
    if layer.members is not None:  # [N, F] or [K, N, F] @ [K, F, units] -> [K, N, units]
        product = g.op("MatMul", [x, g.const(layer.W, f"W{i}")], f"matmul{i}")
        return g.op("Add", [product, g.const(_per_member(layer.b), f"b{i}")], f"dense{i}")
    return g.op("Gemm", [x, g.const(layer.W, f"W{i}"), g.const(layer.b, f"b{i}")], f"dense{i}")


def _activation_layer(g: _Graph, layer, i: int, x: str, opset: int) -> str:
    return _activation(g, layer.name, x, opset)


def _batch_norm(g: _Graph, layer, i: int, x: str, opset: int) -> str:
    """Evaluation mode: the running statistics, as the model predicts. With members (whose
    values are [K, N, units], where BatchNormalization wants channels on axis 1), the same
    affine map written out: (x - μ) / √(σ² + eps) · γ + β."""
    if layer.members is not None:
        mean, var = (_per_member(layer.state[name]) for name in ("running_mean", "running_var"))
        inv_std = 1.0 / np.sqrt(var.astype(np.float64) + layer.eps)
        normalized = g.op("Mul", [g.op("Sub", [x, g.const(mean, f"running_mean{i}")]),
                                  g.const(inv_std, f"inv_std{i}")])
        return g.op("Add", [g.op("Mul", [normalized, g.const(_per_member(layer.gamma), f"gamma{i}")]),
                            g.const(_per_member(layer.beta), f"beta{i}")], f"batch_norm{i}")
    return g.op("BatchNormalization", [x, g.const(layer.gamma, f"gamma{i}"), g.const(layer.beta, f"beta{i}"),
                                       g.const(layer.state["running_mean"], f"running_mean{i}"),
                                       g.const(layer.state["running_var"], f"running_var{i}")],
                f"batch_norm{i}", epsilon=layer.eps)


def _layer_norm(g: _Graph, layer, i: int, x: str, opset: int) -> str:
    members = layer.members is not None
    gamma = g.const(_per_member(layer.gamma) if members else layer.gamma, f"gamma{i}")
    beta = g.const(_per_member(layer.beta) if members else layer.beta, f"beta{i}")
    if opset >= 17:
        if not members:
            return g.op("LayerNormalization", [x, gamma, beta], f"layer_norm{i}", axis=-1, epsilon=layer.eps)
        # each member's γ and β ([K, 1, units]) after a plain normalization of the last axis
        ones = g.const(np.ones(layer.gamma.shape[-1]), "ones")
        xhat = g.op("LayerNormalization", [x, ones], f"xhat{i}", axis=-1, epsilon=layer.eps)
        return g.op("Add", [g.op("Mul", [xhat, gamma]), beta], f"layer_norm{i}")
    # LayerNormalization came in opset 17: before it, the same from its parts (ReduceMean takes
    # its axes as an attribute up to opset 17)
    centered = g.op("Sub", [x, g.op("ReduceMean", [x], axes=[-1], keepdims=1)])
    var = g.op("ReduceMean", [g.op("Mul", [centered, centered])], axes=[-1], keepdims=1)
    xhat = g.op("Div", [centered, g.op("Sqrt", [g.op("Add", [var, g.const(layer.eps, "eps")])])])
    return g.op("Add", [g.op("Mul", [xhat, gamma]), beta], f"layer_norm{i}")


def _missing_keys(categories: list, fill) -> list:
    """What a missing value is as text, when the model fills it (`missing: mean`)."""
    from ..data.csvfile import NA_STRINGS

    return [text for text in NA_STRINGS if text not in categories] if fill is not None else []


def _code(g: _Graph, column: str, categories: list, fill, unknown: str) -> str:
    """A string column (rows, 1) -> its category code as a float (rows, 1), as the encoder
    writes an embedded column: 0..n-1, and n (the table's unseen-category row) for a category
    training never saw under `unknown_category: ignore`. Under `error` that code is n + 1, past
    the table's end, so the Gather in the embedding's translation fails the run."""
    missing = _missing_keys(categories, fill)
    index = {c: i for i, c in enumerate(categories)}
    keys = list(categories) + missing
    values = list(range(len(categories))) + [index.get(fill, 0)] * len(missing)
    default = len(categories) if unknown == "ignore" else len(categories) + 1
    code = g.op("LabelEncoder", [column], "code", domain="ai.onnx.ml", keys_strings=keys, values_int64s=values,
                default_int64=default)
    shaped = g.op("Reshape", [code, g.const([-1, 1], "shape", np.int64)], "code2d")
    return g.op("Cast", [shaped], "code_float", to=11 if g.dtype == np.float64 else 1)


def _embedding(g: _Graph, layer, i: int, x: str, opset: int) -> str:
    """The other inputs as they are, then each code column's rows of its table (Gather on the
    codes, inside the graph), side by side as the layer puts them."""
    pieces, members = [], layer.members is not None
    if len(layer.keep):
        kept = g.op("Gather", [x, g.const(layer.keep, f"keep{i}", np.int64)], f"kept{i}", axis=1)
        if members:  # the rows [N, kept] once per member: [K, N, kept]
            kept = g.op("Expand", [kept, g.const([layer.members, 1, 1], f"members{i}", np.int64)], f"kept{i}")
        pieces.append(kept)
    for k, (column, table) in enumerate(zip(layer.columns, layer.tables)):
        code = g.op("Gather", [x, g.const(column, f"code_column{i}_{k}", np.int64)], f"codes{i}_{k}", axis=1)
        index = g.op("Cast", [code], f"index{i}_{k}", to=7)  # int64
        # with members the tables are [K, categories + 1, width]: each member's rows, [K, N, width]
        pieces.append(g.op("Gather", [g.const(table, f"table{i}_{k}"), index], f"embedded{i}_{k}",
                           axis=1 if members else 0))
    return pieces[0] if len(pieces) == 1 else g.op("Concat", pieces, f"embedding{i}", axis=-1)


def _residual(g: _Graph, layer, i, x: str, opset: int) -> str:
    """x + f(x): the body's layers, each by its own translation, then an Add (which broadcasts
    a shared input [N, F] over the members' [K, N, F], as NumPy does)."""
    out = x
    for j, child in enumerate(layer.body):
        out = _layer(g, child, f"{i}_body{j}", out, opset)
    return g.op("Add", [x, out], f"residual{i}")


def _numeric_inputs(g: _Graph, layer, i: int, x: str) -> str:
    """A numeric embedding's inputs as [..., N, F, 1] (the layer's input is [N, inputs], or
    [K, N, inputs] after an embedding with members)."""
    picked = g.op("Gather", [x, g.const(layer.columns, f"numeric{i}", np.int64)], f"numeric{i}", axis=-1)
    return g.op("Unsqueeze", [picked, g.const([-1], f"axis{i}", np.int64)], f"numeric{i}")


def _per_feature(g: _Graph, layer, i: int, x: str, embedded: str) -> str:
    """The passed-through inputs, then the numeric embedding's [..., N, F, width] flattened to
    [..., N, F·width], side by side as the layer puts them."""
    leading = [0, 0] if layer.members is not None else [0]  # Reshape's 0: that axis as it is
    flat = g.op("Reshape", [embedded, g.const(leading + [layer.features * layer.width], f"shape{i}", np.int64)],
                f"embedded{i}")
    if not len(layer.keep):
        return flat
    kept = g.op("Gather", [x, g.const(layer.keep, f"keep{i}", np.int64)], f"kept{i}", axis=-1)
    if layer.members is not None:  # the rows [N, kept] once per member: [K, N, kept]
        kept = g.op("Expand", [kept, g.const([layer.members, 1, 1], f"members{i}", np.int64)], f"kept{i}")
    return g.op("Concat", [kept, flat], f"numeric_embedding{i}", axis=-1)


def _member_axis(layer, a: np.ndarray) -> np.ndarray:
    """A per-feature array (F, ...) as it broadcasts over [..., N, F, ...]: with members
    (K, F, ...) -> (K, 1, F, ...)."""
    return a if layer.members is None else a[:, None]


def _periodic(g: _Graph, layer, i: int, x: str, opset: int) -> str:
    """PLR: cos and sin of 2π c x, each feature's own product (a MatMul whose batch axes are
    the rows and features: [..., N, F, 1, 2k] @ [F, 2k, width]), its bias, ReLU."""
    angle = g.op("Mul", [_numeric_inputs(g, layer, i, x),
                         g.const(_member_axis(layer, 2 * math.pi * layer.c.astype(np.float64)), f"frequencies{i}")],
                 f"angle{i}")
    v = g.op("Concat", [g.op("Cos", [angle]), g.op("Sin", [angle])], f"periodic{i}", axis=-1)
    v = g.op("Unsqueeze", [v, g.const([-2], f"row_axis{i}", np.int64)], f"periodic{i}")
    h = g.op("MatMul", [v, g.const(_member_axis(layer, layer.W), f"W{i}")], f"matmul{i}")
    h = g.op("Squeeze", [h, g.const([-2], f"row_axis{i}", np.int64)], f"matmul{i}")
    h = g.op("Relu", [g.op("Add", [h, g.const(_member_axis(layer, layer.b), f"b{i}")])], f"plr{i}")
    return _per_feature(g, layer, i, x, h)


def _piecewise_linear(g: _Graph, layer, i: int, x: str, opset: int) -> str:
    """PLE: x · scale + shift, clipped by Max and Min against per-component bounds (±inf where
    a component is open), as the layer computes it."""
    scale, shift, lo, hi = (_member_axis(layer, a) for a in layer.coefficients(np.float64))
    z = g.op("Add", [g.op("Mul", [_numeric_inputs(g, layer, i, x), g.const(scale, f"ple_scale{i}")]),
                     g.const(shift, f"ple_shift{i}")], f"ple{i}")
    e = g.op("Min", [g.op("Max", [z, g.const(lo, f"ple_low{i}")]), g.const(hi, f"ple_high{i}")], f"ple{i}")
    return _per_feature(g, layer, i, x, e)


# layer type -> (graph, layer, its index, input name, opset) -> output name: a new layer type
# adds its translation here
LAYER_EXPORTS = {"dense": _dense, "activation": _activation_layer, "batch_norm": _batch_norm,
                 "layer_norm": _layer_norm, "embedding": _embedding, "periodic": _periodic,
                 "piecewise_linear": _piecewise_linear, "residual": _residual,
                 "dropout": lambda g, layer, i, x, opset: x}  # dropout: the identity outside training, no node


def _layer(g: _Graph, layer, i, x: str, opset: int) -> str:
    """Layer `i` (a composite's child: `3_body0`) translated, or a clear error for a type without
    a translation."""
    if layer.type not in LAYER_EXPORTS:
        raise NnctlError(f"layer {str(i).replace('_body', '.body.')} is of type '{layer.type}', which has no "
                         "ONNX form in this nnctl", "nnctl export", "the model still predicts with nnctl predict")
    return LAYER_EXPORTS[layer.type](g, layer, i, x, opset)


def _inputs(g: _Graph, model, onnx, unknown: str) -> tuple[list, str]:
    """Graph inputs and the encoded input matrix (rows, inputs), before scaling; `unknown`:
    what a category training never saw does (error | ignore)."""
    helper, encoder = g.helper, model.encoder
    elem = onnx.TensorProto.DOUBLE if g.dtype == np.float64 else onnx.TensorProto.FLOAT
    fill = encoder.fill or {}
    if not encoder.categories:
        inputs = [helper.make_tensor_value_info("features", elem, ["N", len(encoder.features)])]
        x = "features"
        if fill:
            values = [fill[f] if fill.get(f) is not None else 0.0 for f in encoder.features]
            x = g.op("Where", [g.op("IsNaN", [x]), g.const(values, "fill"), x], "filled")
        return inputs, x
    inputs, pieces = [], []
    names = input_names(encoder.features, output_names(model))
    for column in encoder.features:
        if column in encoder.categories:
            inputs.append(helper.make_tensor_value_info(names[column], onnx.TensorProto.STRING, ["N", 1]))
            if column in encoder.embedding:
                pieces.append(_code(g, names[column], encoder.categories[column], fill.get(column), unknown))
            else:
                pieces.append(_one_hot(g, names[column], encoder.categories[column], fill.get(column), unknown))
        else:
            inputs.append(helper.make_tensor_value_info(names[column], elem, ["N", 1]))
            x = names[column]
            if fill.get(column) is not None:
                x = g.op("Where", [g.op("IsNaN", [x]), g.const([fill[column]], "fill"), x], "filled")
            pieces.append(x)
    return inputs, g.op("Concat", pieces, "encoded", axis=1)


def input_names(columns: list, outputs=OUTPUT_NAMES) -> dict:
    """{column: graph input name}: the column's own name, but for one named like an output
    (`label`, `probabilities`, `prediction`, or `output_names` of several targets), which gets
    `_input` added until it is free."""
    names, taken = {}, set(columns) | set(outputs)
    for column in columns:
        name = column
        while name in outputs or (name != column and name in taken):
            name += "_input"
        names[column] = name
        taken.add(name)
    return names


def _one_hot(g: _Graph, column: str, categories: list, fill, unknown: str) -> str:
    """A string column (rows, 1) -> its one-hot block (rows, categories). A missing value is
    an empty string, or what a missing value becomes as text (`df[col].astype(str)` writes NaN
    as 'nan', None as 'None'): predict reads the same cells as missing. Under `missing: mean`
    it is filled with the training mode."""
    missing = _missing_keys(categories, fill)
    keys = list(categories) + missing
    values = list(categories) + [fill] * len(missing)
    # known categories map to themselves; anything else to a value no category has
    mapped = g.op("LabelEncoder", [column], "category", domain="ai.onnx.ml", keys_strings=keys,
                  values_strings=values, default_string="\u0000unknown")
    onehot = g.op("OneHotEncoder", [mapped], "onehot", domain="ai.onnx.ml", cats_strings=list(categories),
                  zeros=1 if unknown == "ignore" else 0)
    shaped = g.op("Reshape", [onehot, g.const([-1, len(categories)], "shape", np.int64)], "onehot2d")
    return shaped if g.dtype == np.float32 else g.op("Cast", [shaped], "onehot64", to=11)


def build_onnx(model, opset: int = DEFAULT_OPSET, run_name: str = "", interval: float | None = None,
               sets: float | None = None, threshold: float | None = None, unknown: str | None = None):
    """The ONNX ModelProto of a loaded nnctl Model (see the module docstring); with `interval`
    L (regression) also the outputs `lower` and `upper`, with `sets` L (classification)
    `prediction_set`, as `nnctl predict --interval` / `--sets` give them. Two classes: `label`
    is decided at `threshold`, else at the model's saved threshold, as predict decides it.
    `unknown` (error | ignore) overrides the model's unknown_category, as predict
    --unknown-category does."""
    from .conformal import ConformalColumns, conformal_columns
    from .predict import check_threshold, effective_threshold

    if model.targets is not None:  # each target's threshold and conformal outputs, as predict's
        from .predict import PredictOptions
        from .targets import conformal_of, target_thresholds

        given = {name: t for name, (t, _) in target_thresholds(model, threshold).items()}
        thresholds = {v.name: effective_threshold(v, given.get(v.name))[0] for v in model.targets}
        per_target = conformal_of(model, PredictOptions(interval=interval, sets=sets))
        threshold, conformal = None, ConformalColumns()
        added = {f"{name}_{n.replace('prediction_', '')}": c.option for name, c in per_target.items() for n in c.names}
    else:
        check_threshold(model, threshold)
        threshold = effective_threshold(model, threshold)[0]
        conformal, thresholds, per_target = conformal_columns(model, interval, sets), {}, {}
        added = {n: conformal.option for n in conformal.names}
    onnx, helper, numpy_helper = _onnx()
    clash = [c for c in model.meta["features"] if c in added]
    if clash:
        raise NnctlError(f"column '{clash[0]}' has the name of an output that {added[clash[0]]} adds",
                         added[clash[0]], "leave the option out, or rename that column and train again")
    if not MIN_OPSET <= opset <= onnx.defs.onnx_opset_version():
        raise NnctlError(f"opset {opset} cannot express this model: nnctl exports opsets {MIN_OPSET} to "
                         f"{onnx.defs.onnx_opset_version()} (this onnx package's newest)", "--opset",
                         f"leave --opset out for {DEFAULT_OPSET}")
    network, meta = model.network, model.meta
    dtype = np.dtype(network.dtype).type
    categorical = bool(model.encoder.categories)
    named = output_names(model) + tuple(n for n in added if model.targets is not None)
    g = _Graph(helper, numpy_helper, dtype, input_names(meta["features"], named).values() if categorical
               else ["features"])
    g.taken |= set(named)
    unknown = unknown or model.encoder.unknown
    inputs, x = _inputs(g, model, onnx, unknown)
    x = _scaled(g, meta["scaler"], x)
    for i, layer in enumerate(network.layers):
        x = _layer(g, layer, i, x, opset)
    spread = None
    if network.members is not None:
        if conformal.needs_spread:
            spread = _members_spread(g, model.meta.get("target_scaler"), x, opset)
        x = _members_mean(g, network.output_head, x, opset) if model.targets is None else x
    elem = onnx.TensorProto.DOUBLE if dtype == np.float64 else onnx.TensorProto.FLOAT
    if model.targets is not None:
        outputs = _targets_outputs(g, model, x, onnx, elem, opset, thresholds, per_target)
    else:
        outputs = _outputs(g, model, x, onnx, elem, threshold) + _conformal_outputs(
            g, conformal, onnx, elem, spread, dict(zip(CONFORMAL_NAMES, CONFORMAL_NAMES)))
    graph = helper.make_graph(g.nodes, "nnctl", inputs, outputs, g.initializers)
    opsets = [helper.make_opsetid("", opset), helper.make_opsetid("ai.onnx.ml", ML_OPSET)]
    proto = helper.make_model(graph, opset_imports=opsets, producer_name="nnctl", producer_version=__version__,
                              doc_string=_doc(model, unknown))
    proto.ir_version = helper.find_min_ir_version_for(opsets)
    import json

    info = {"features": json.dumps(meta["features"]), "task": meta["task"], "target": meta["target"],
            "nnctl_version": __version__, "run": run_name}
    if model.targets is not None:  # what each output is, for whoever reads the file
        info["target"] = json.dumps(meta["target"])
        info["targets"] = json.dumps([{"name": v.name, "task": v.task, "outputs": list(dict.fromkeys(
            target_output_names(v).values())), **({"classes": v.classes} if v.classes else {})} for v in model.targets])
    if model.classes is not None:
        info["classes"] = json.dumps(model.classes)
    if threshold is not None:
        info["threshold"] = repr(float(threshold))
    if conformal.option is not None:  # what the extra outputs mean, for whoever reads the file
        info["conformal"] = json.dumps({"level": conformal.level, "q": conformal.q, "outputs": conformal.names})
    if any(t is not None for t in thresholds.values()):  # several targets: {target: T}
        info["threshold"] = json.dumps({k: float(t) for k, t in thresholds.items() if t is not None})
    if per_target:
        info["conformal"] = json.dumps({name: {"level": c.level, "q": c.q, "outputs": list(
            conformal_output_names(name, c).values())} for name, c in per_target.items()})
    renamed = {name: column for column, name in input_names(meta["features"], named).items() if name != column}
    if categorical and renamed:
        info["renamed_inputs"] = json.dumps(renamed)
    helper.set_model_props(proto, info)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _scaled(g: _Graph, scaler: dict, x: str) -> str:
    """The feature scaler (data/scaling.py): (x − offset) / scale, then robust's smooth clip or
    quantile's interpolation on the inputs they map."""
    x = g.op("Div", [g.op("Sub", [x, g.const(scaler["offset"], "offset")]), g.const(scaler["scale"], "scale")],
             "scaled")
    width = len(scaler["offset"])
    if scaler.get("kind") == "robust" and scaler.get("clipped"):
        mask = np.zeros((1, width), dtype=bool)
        mask[0, scaler["clipped"]] = True
        clip = scaler.get("clip", SMOOTH_CLIP)
        # bounded as scaling.smooth_clip bounds it: a square that overflows would send x to 0
        bound = g.const(clip * CLIP_BOUND, "clip_bound")
        u = g.op("Max", [g.op("Min", [x, bound]), g.op("Neg", [bound])])
        ratio = g.op("Div", [u, g.const(clip, "clip")])
        root = g.op("Sqrt", [g.op("Add", [g.const(1.0, "one"), g.op("Mul", [ratio, ratio])])])
        x = g.op("Where", [g.const(mask, "clipped", bool), g.op("Div", [u, root]), x], "clipped")
    elif scaler.get("kind") == "quantile" and scaler.get("quantiles"):
        tables = quantile_tables(scaler, width)
        x = g.op("Where", [g.const(tables[-1][None, :], "mapped", bool), _interp(g, x, tables[:-1]), x], "quantiles")
    return x


def _interp(g: _Graph, x: str, tables) -> str:
    """np.interp of each column of x (N, D) through its own knots, without a search operator:
    the segment of a value is how many inner knots it reaches (see scaling.quantile_tables)."""
    inner, low, high, start, score, slope = tables
    width, segments = start.shape
    x = g.op("Min", [g.op("Max", [x, g.const(low, "low")]), g.const(high, "high")], "inside")
    reached = g.op("GreaterOrEqual", [g.op("Unsqueeze", [x, g.const([2], "axis", np.int64)]), g.const(inner, "inner")])
    count = g.op("ReduceSum", [g.op("Cast", [reached], to=7), g.const([2], "axis", np.int64)], keepdims=0)
    index = g.op("Add", [count, g.const(np.arange(width)[None, :] * segments, "rows", np.int64)], "segment")
    at = [g.op("Gather", [g.const(t.reshape(-1), name), index], name) for t, name in
          ((start, "start"), (score, "score"), (slope, "slope"))]
    return g.op("Add", [at[1], g.op("Mul", [at[2], g.op("Sub", [x, at[0]])])], "interp")


def _unlinked(g: _Graph, scaler: dict, v: str) -> str:
    """g⁻¹(v) of the target transform (data/scaling.py): expm1 for log1p, the inverse quantile map."""
    kind = scaler.get("kind", "standard")
    if kind == "log1p":
        return g.op("Sub", [g.op("Exp", [v]), g.const(1.0, "one")], "expm1")
    if kind == "quantile":
        maps = {str(k): [scores, knots] for k, (knots, scores) in enumerate(zip(scaler["knots"], scaler["scores"]))}
        return _interp(g, v, quantile_tables({"quantiles": maps}, len(maps))[:-1])
    return v


def _over_members(g: _Graph, x: str, opset: int, keepdims: int = 0) -> str:
    """The mean over the member axis (axis 0)."""
    if opset >= 18:  # ReduceMean takes its axes as an input from opset 18, as an attribute before
        return g.op("ReduceMean", [x, g.const([0], "member_axis", np.int64)], "members_mean", keepdims=keepdims)
    return g.op("ReduceMean", [x], "members_mean", axes=[0], keepdims=keepdims)


def _members_spread(g: _Graph, scaler, x: str, opset: int) -> str:
    """The members' standard deviation [N] of a regression's value in the target's units
    (`scaler`, its target scaler), from their outputs [K, N, 1]: what normalized conformal
    intervals scale by."""
    deviation = g.op("Sub", [x, _over_members(g, x, opset, keepdims=1)])
    spread = g.op("Sqrt", [_over_members(g, g.op("Mul", [deviation, deviation]), opset)], "spread")
    if scaler:
        spread = g.op("Mul", [spread, g.const(np.abs(scaler["scale"]), "target_scale")])
    return g.op("Reshape", [spread, g.const([-1], "flat", np.int64)], "spread")


def _members_mean(g: _Graph, head: str, x: str, opset: int) -> str:
    """The members' outputs [K, N, outputs] -> what `_outputs` takes from a single network: the
    mean output for regression, else the logits of the mean probability (log p̄ for a softmax,
    whose softmax is p̄ again; log p̄ − log(1 − p̄) for a sigmoid), which a temperature divides."""
    if head == "softmax":
        x = g.op("Softmax", [x], "member_probabilities", axis=-1)
    elif head == "sigmoid":
        x = g.op("Sigmoid", [x], "member_probabilities")
    mean = _over_members(g, x, opset)
    if head == "softmax":
        return g.op("Log", [mean], "mean_logits")
    if head == "sigmoid":
        rest = g.op("Sub", [g.const(1.0, "one"), mean])
        return g.op("Sub", [g.op("Log", [mean]), g.op("Log", [rest])], "mean_logits")
    return mean


def _outputs(g: _Graph, model, x: str, onnx, elem, threshold: float | None = None) -> list:
    return _head(g, x, onnx, elem, model.task, model.network.output_head, model.meta.get("target_scaler"),
                 model.classes, model.temperature, threshold, dict(zip(OUTPUT_NAMES, OUTPUT_NAMES)))


def _head(g: _Graph, x: str, onnx, elem, task: str, last: str, scaler, classes, temperature: float,
          threshold: float | None, names: dict) -> list:
    """One target's outputs from its logits `x` [N, outputs]: `names["prediction"]` [N] in its
    units (regression), else `names["label"]` [N] and `names["probabilities"]` [N, classes]."""
    helper = g.helper
    if task == "regression":
        if scaler:
            x = g.op("Add", [g.op("Mul", [x, g.const(scaler["scale"], "target_scale")]),
                             g.const(scaler["offset"], "target_offset")], "linked")
            g.linked = x
            x = _unlinked(g, scaler, x)
        g.nodes.append(helper.make_node("Reshape", [x, g.const([-1], "flat", np.int64)], [names["prediction"]]))
        return [helper.make_tensor_value_info(names["prediction"], elem, ["N"])]
    probabilities = names["probabilities"]
    if temperature != 1.0:  # training.calibration: the probabilities predict gives
        x = g.op("Div", [x, g.const(temperature, "temperature")], "calibrated")
    if last == "sigmoid":
        p = g.op("Sigmoid", [x])
        g.nodes.append(helper.make_node("Concat", [g.op("Sub", [g.const([1.0], "one"), p]), p], [probabilities],
                                        axis=1))
    else:
        g.nodes.append(helper.make_node("Softmax", [x], [probabilities], axis=1))
    if threshold is None:
        index = g.op("ArgMax", [probabilities], "index", axis=1, keepdims=0)
    else:  # predict's own test, p ≥ T, as not (p < T): the positive class's index is 1
        positive = g.op("Gather", [probabilities, g.const(1, "positive_column", np.int64)], "p_positive", axis=1)
        below = g.op("Less", [positive, g.const(threshold, "threshold")], "below_threshold")
        index = g.op("Cast", [g.op("Not", [below])], "index", to=onnx.TensorProto.INT64)
    integers = all(isinstance(c, int) and not isinstance(c, bool) for c in classes)
    if integers:
        labels, label_type = g.const(classes, "classes", np.int64), onnx.TensorProto.INT64
    else:
        name = g.name("classes")
        g.initializers.append(g.helper.make_tensor(name, onnx.TensorProto.STRING, [len(classes)],
                                                   [str(c).encode() for c in classes]))
        labels, label_type = name, onnx.TensorProto.STRING
    g.nodes.append(helper.make_node("Gather", [labels, index], [names["label"]], axis=0))
    return [helper.make_tensor_value_info(names["label"], label_type, ["N"]),
            helper.make_tensor_value_info(probabilities, elem, ["N", len(classes)])]


def target_output_names(view) -> dict:
    """A target's ONNX outputs, named after it: `<target>` (its label or value) and for a
    classification `<target>_probabilities`."""
    return {"prediction": view.name, "label": view.name, "probabilities": f"{view.name}_probabilities"}


def output_names(model) -> tuple:
    """The graph's outputs' names: OUTPUT_NAMES, or each target's (`target_output_names`)."""
    if model.targets is None:
        return OUTPUT_NAMES
    return tuple(name for view in model.targets for name in dict.fromkeys(target_output_names(view).values()))


def _targets_outputs(g: _Graph, model, x: str, onnx, elem, opset: int, thresholds: dict, conformal: dict) -> list:
    """Several targets: each target's block of the last layer's outputs (`x` [N, Σ outputs], or
    [K, N, Σ outputs] for an ensemble, averaged per target as `_members_mean` does) through its
    own head, decided at its threshold ({target: T or None}), then its conformal outputs
    ({target: ConformalColumns}: `<target>_lower`, `<target>_upper` or `<target>_set`)."""
    outputs, members = [], model.network.members is not None
    for view in model.targets:
        ends = [g.const([edge], "edge", np.int64) for edge in (view.start, view.stop)]
        block = g.op("Slice", [x, *ends, g.const([-1], "last_axis", np.int64)], f"{view.name}_block")
        own, spread = conformal.get(view.name), None
        if members and own is not None and own.needs_spread:
            spread = _members_spread(g, view.meta.get("target_scaler"), block, opset)
        if members:
            block = _members_mean(g, view.meta["output"], block, opset)
        names = target_output_names(view)
        outputs += _head(g, block, onnx, elem, view.task, view.meta["output"], view.meta.get("target_scaler"),
                         view.classes, view.temperature, thresholds.get(view.name), names)
        if own is not None:
            outputs += _conformal_outputs(g, own, onnx, elem, spread, {**conformal_output_names(view.name, own),
                                                                       **names})
    return outputs


CONFORMAL_NAMES = ("lower", "upper", "prediction_set")


def conformal_output_names(target: str, conformal) -> dict:
    """A target's conformal outputs, named as predict's columns: `<target>_lower`,
    `<target>_upper` (--interval) or `<target>_set` (--sets)."""
    return {n: f"{target}_{n.replace('prediction_', '')}" for n in conformal.names}


def _conformal_outputs(g: _Graph, conformal, onnx, elem, spread: str | None, names: dict) -> list:
    """`lower` and `upper` [N], the prediction ∓ q (for a log1p or quantile target g⁻¹(g(ŷ) ∓ q)),
    or `prediction_set` [N, classes], true where 1 − p ≤ q: the constant q of split conformal,
    computed once from the model's scores. Normalized scores: the half-width is q·(σ + floor),
    σ the members' `spread` [N]. `names`: each of those outputs' name and the `prediction` and
    `probabilities` they are made from."""
    helper = g.helper
    names = {"prediction": "prediction", "probabilities": "probabilities", **names}
    if conformal.option == "--interval" and not is_linear(conformal.target):
        q, flat = g.const(conformal.q, "half_width"), g.const([-1], "flat", np.int64)
        for name, op in ((names["lower"], "Sub"), (names["upper"], "Add")):
            bound = _unlinked(g, conformal.target, g.op(op, [g.linked, q]))
            g.nodes.append(helper.make_node("Reshape", [bound, flat], [name]))
        return [helper.make_tensor_value_info(names[name], elem, ["N"]) for name in ("lower", "upper")]
    if conformal.option == "--interval":
        q = g.const(conformal.q, "half_width")
        if spread is not None:
            q = g.op("Mul", [q, g.op("Add", [spread, g.const(conformal.floor, "floor")])], "half_width")
        g.nodes.append(helper.make_node("Sub", [names["prediction"], q], [names["lower"]]))
        g.nodes.append(helper.make_node("Add", [names["prediction"], q], [names["upper"]]))
        return [helper.make_tensor_value_info(names[name], elem, ["N"]) for name in ("lower", "upper")]
    if conformal.option == "--sets":
        # predict's own test, 1 − p ≤ q (p ≥ 1 − q would round differently); in a float32 graph a
        # row whose score is within float32 rounding of q can still land on the other side
        score = g.op("Sub", [g.const(1.0, "one"), names["probabilities"]], "score")
        g.nodes.append(helper.make_node("LessOrEqual", [score, g.const(conformal.q, "q")], [names["prediction_set"]]))
        return [helper.make_tensor_value_info(names["prediction_set"], onnx.TensorProto.BOOL,
                                              ["N", len(conformal.labels)])]
    return []


def _doc(model, unknown: str) -> str:
    meta = model.meta
    if model.encoder.categories:
        how = ("one input per column, named after it, shape [N, 1]: numbers as floats (NaN for missing), "
               "categories as strings (an empty string, 'nan' or 'None' for missing; "
               + ("a category training never saw adds nothing, as an all-zero one-hot)" if unknown == "ignore" else
                  "a category training never saw fails the whole run: onnxruntime's 'Unknown Category and "
                  "zeros = 0', or 'indices element out of data bounds' for an embedded column; export with "
                  "--unknown-category ignore to read it as adding nothing)"))
        renamed = {n: c for c, n in input_names(meta["features"], output_names(model)).items() if n != c}
        if renamed:
            how += " (named like an output, " + ", ".join(f"column '{c}' is input '{n}'" for n, c in renamed.items()) + ")"
    else:
        how = f"'features', shape [N, {len(meta['features'])}], columns in this order: {', '.join(meta['features'])}"
    if model.targets is not None:
        out = "; ".join(f"'{v.name}' [N] in its own units" if v.task == "regression" else
                        f"'{v.name}' [N] (one of {', '.join(map(str, v.classes))}) and '{v.name}_probabilities' "
                        f"[N, {len(v.classes)}]" for v in model.targets)
        target = "', '".join(meta["target"])
        doc = f"nnctl model of several targets, '{target}'. Inputs: {how}. Outputs: {out}."
    elif model.task == "regression":
        out = f"'prediction' [N]: {meta['target']} in its own units"
    else:
        out = f"'label' [N] (one of {', '.join(map(str, model.classes))}) and 'probabilities' [N, {len(model.classes)}]"
    if model.targets is None:
        doc = f"nnctl {meta['task']} model of '{meta['target']}'. Inputs: {how}. Outputs: {out}."
    if model.network.dtype == np.float64 and any(getattr(layer, "name", None) == "gelu" for _, layer in model.network.leaves()):
        doc += " A float64 graph; its gelu layers compute in float32 (onnxruntime has no float64 gelu)."
    return doc


def export_model(model_path, output=None, opset: int = DEFAULT_OPSET, interval: float | None = None,
                 sets: float | None = None, threshold: float | None = None, unknown: str | None = None) -> Path:
    """Write the ONNX file of a run folder's (or model.npz's) model; returns its path
    (default `<run>/model.onnx`). `interval` / `sets`: add the conformal outputs (see build_onnx)."""
    from ..atomic import atomic_file
    from ..runs.model import load_model

    model = load_model(model_path)
    output = Path(output) if output is not None else Path(model.path).parent / "model.onnx"
    if output.is_dir():
        raise NnctlError("--output is a folder", str(output), "give a file name, e.g. model.onnx")
    proto = build_onnx(model, opset, Path(model.path).parent.name, interval, sets, threshold, unknown)
    try:
        with atomic_file(output, "wb") as fh:
            fh.write(proto.SerializeToString())
    except (PermissionError, FileNotFoundError) as exc:
        raise NnctlError(f"cannot write there: {exc.strerror}", str(output), "give a writable --output path")
    return output
