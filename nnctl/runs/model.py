"""`model.npz`: a trained network plus everything predict needs, and the `Model` that uses it.

Arrays W0..W{L-1} (fan_in, fan_out) and b0..b{L-1} (fan_out,), and `meta`, a 0-d unicode array
holding one JSON object (format, activations, task, features, classes, scaler, ...). Loaded with
`allow_pickle=False` only; anything malformed is an NnctlError naming the file.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .. import __version__
from ..data.encoding import FeatureEncoder
from ..errors import NnctlError
from ..npzfile import read_npz
from ..nn.losses import LOSSES
from ..nn.network import MLP

FORMAT = "nnctl-mlp"
FORMAT_VERSION = 1
OUTPUT_LOSS = {"softmax": "cross_entropy", "sigmoid": "binary_cross_entropy", "identity": "mse"}


def build_meta(network: MLP, dataset, cfg: dict) -> dict:
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "nnctl_version": __version__,
        "activations": network.layer_activations,
        "loss": network.loss_name,
        "task": dataset.task,
        "target": dataset.target,
        "inputs": dataset.encoder.inputs,
        "dtype": str(network.dtype),
        **dataset.encoder.to_meta(),
    }
    if dataset.task == "classification":
        meta["classes"] = dataset.classes
    else:
        meta["target_scaler"] = dataset.target_scaler
    return meta


def save_model(path, network: MLP, meta: dict) -> None:
    arrays = {}
    for i, (W, b) in enumerate(zip(network.weights, network.biases)):
        arrays[f"W{i}"], arrays[f"b{i}"] = W, b
    with open(path, "wb") as fh:
        np.savez(fh, meta=np.array(json.dumps(meta)), **arrays)


def model_path(path) -> Path:
    """A run folder or a model.npz -> the model.npz."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.npz"
        if not path.exists():
            raise NnctlError("no model.npz in this folder", str(path.parent), "pass a run folder written by `nnctl train`")
    elif not path.exists():
        raise NnctlError("model not found", str(path), "pass a run folder or its model.npz")
    return path


MODEL_FILE = ("model file", "corrupt or not a .npz", "train again, or point at another run")
FLOATS = (np.dtype(np.float32), np.dtype(np.float64))  # the dtypes nnctl trains in


def load_model(path) -> "Model":
    path = model_path(path)
    where = str(path)
    meta = _read_meta(read_npz(path, *MODEL_FILE, limit=_meta_limit, names=("meta",)), where)
    arrays = read_npz(path, *MODEL_FILE, limit=format1_limit(meta))
    weights, biases = _read_layers(arrays, meta, where)
    activations = meta["activations"]
    loss = meta.get("loss") or OUTPUT_LOSS.get(activations[-1])
    if loss not in LOSSES or LOSSES[loss].output != activations[-1]:
        raise NnctlError(f"model's output activation '{activations[-1]}' is not one nnctl knows", where)
    from ..nn.activations import ACTIVATIONS

    for name in activations[:-1]:
        if name not in ACTIVATIONS:
            raise NnctlError(f"model uses the activation '{name}', which this nnctl does not know", where)
    return Model(MLP(weights, biases, activations[:-1], loss), meta, path)


def _meta_limit(name: str, header) -> str | None:
    if header.shape != () or header.dtype.kind != "U":
        return f"`meta` is {header.dtype} {header.shape}, not one JSON text"
    return None


def format1_limit(meta: dict):
    """A read_npz limit for a format-1 model: only `meta`, W0..W{L-1} and b0..b{L-1} of float32
    or float64, with the input and output widths `meta` implies, judged before any data is read."""
    n = len(meta["activations"])
    inputs = len(meta.get("inputs", meta["features"]))
    classes = meta.get("classes")
    outputs = (1 if len(classes) == 2 else len(classes)) if meta["task"] == "classification" else \
        len(meta["target_scaler"]["offset"]) if meta.get("target_scaler") else None
    expected = {"meta"} | {f"{p}{i}" for p in "Wb" for i in range(n)}

    def limit(name: str, header) -> str | None:
        if name not in expected:
            return f"it holds an array `{name}` that a model with {n} layers does not have"
        if name == "meta":
            return _meta_limit(name, header)
        if header.dtype not in FLOATS:
            return f"`{name}` is {header.dtype}, where nnctl models hold float32 or float64"
        ndim = 2 if name[0] == "W" else 1
        if len(header.shape) != ndim:
            return f"`{name}` has shape {header.shape}, not {ndim}-D"
        if name == "W0" and header.shape[0] != inputs:
            return f"`W0` has {header.shape[0]} rows, but meta names {inputs} inputs"
        if outputs is not None and name in (f"W{n - 1}", f"b{n - 1}") and header.shape[-1] != outputs:
            return f"`{name}` has {header.shape[-1]} outputs, but meta implies {outputs}"
        return None

    return limit


def _read_meta(arrays: dict, where: str) -> dict:
    if "meta" not in arrays:
        raise NnctlError("model file has no `meta` array", where)
    try:
        meta = json.loads(str(arrays["meta"].item()))
    except (ValueError, TypeError):
        raise NnctlError("model file's meta is not a JSON object", where)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise NnctlError(f"not an nnctl model (format is {meta.get('format') if isinstance(meta, dict) else None!r})", where)
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise NnctlError(f"model format_version {version!r} is newer than this nnctl reads ({FORMAT_VERSION})", where,
                         "upgrade nnctl: pip install -U nnctl")
    for key in ("activations", "task", "features", "scaler"):
        if key not in meta:
            raise NnctlError(f"model meta lacks `{key}`", where)
    if meta["task"] == "classification" and not meta.get("classes"):
        raise NnctlError("model meta lacks `classes`", where)
    problem = _meta_problem(meta)
    if problem:
        raise NnctlError(f"model meta is damaged: {problem}", where, "train again, or point at another run")
    return meta


def _names(value) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _numbers(value, length: int) -> bool:
    return (isinstance(value, list) and len(value) == length
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value))


def _meta_problem(meta: dict) -> str | None:
    """What is wrong with the kinds of value in a model's meta (a hand-edited or damaged file),
    or None: each would otherwise fail deep inside predict."""
    if not _names(meta["activations"]) or not meta["activations"]:
        return "`activations` must be a non-empty list of names"
    if meta.get("loss") is not None and not isinstance(meta["loss"], str):
        return "`loss` must be a loss's name"
    if meta.get("decimal", ".") not in (".", ",") or meta.get("unknown_category", "error") not in ("error", "ignore"):
        return "`decimal` must be '.' or ',', and `unknown_category` error or ignore"
    if meta["task"] not in ("classification", "regression"):
        return f"`task` is {meta['task']!r}, not classification or regression"
    if not _names(meta["features"]) or not meta["features"]:
        return "`features` must be a non-empty list of column names"
    categories = meta.get("categories") or {}
    if not isinstance(categories, dict) or not all(_names(v) for v in categories.values()):
        return "`categories` must map columns to lists of categories"
    if "inputs" in meta and not _names(meta["inputs"]):
        return "`inputs` must be a list of column names"
    if len(set(meta["features"])) != len(meta["features"]):
        return "`features` names a column twice"
    fill = meta.get("fill")
    if fill is not None and (not isinstance(fill, dict) or not all(
            v is None or (isinstance(v, str) if f in categories else _numbers([v], 1)) for f, v in fill.items())):
        return "`fill` must map each column to a value of its kind (a category, or a number)"
    width = sum(len(categories[f]) if f in categories else 1 for f in meta["features"])
    scaler = meta["scaler"]
    if not isinstance(scaler, dict) or not _numbers(scaler.get("offset"), width) \
            or not _numbers(scaler.get("scale"), width):
        return f"`scaler` must hold `offset` and `scale`, {width} numbers each (one per input)"
    classes = meta.get("classes")
    if meta["task"] == "classification" and (not isinstance(classes, list) or len(classes) < 2
                                             or any(isinstance(c, (list, dict)) for c in classes)
                                             or len({str(c) for c in classes}) != len(classes)):
        return "`classes` must list two or more different labels"
    target = meta.get("target_scaler")
    width = len(target["offset"]) if isinstance(target, dict) and isinstance(target.get("offset"), list) else 0
    if target is not None and (not width or not _numbers(target["offset"], width)
                               or not _numbers(target.get("scale"), width)):
        return "`target_scaler` must hold `offset` and `scale`, lists of as many numbers as outputs"
    return None


def _read_layers(arrays: dict, meta: dict, where: str):
    n = len(meta["activations"])
    weights, biases = [], []
    for i in range(n):
        for name in (f"W{i}", f"b{i}"):
            if name not in arrays:
                raise NnctlError(f"model file lacks the array {name}", where)
        W, b = arrays[f"W{i}"], arrays[f"b{i}"]
        if W.dtype.kind != "f" or b.dtype.kind != "f" or W.ndim != 2 or b.shape != (W.shape[1],):
            raise NnctlError(f"layer {i}: W{i} {W.shape} and b{i} {b.shape} are not a float layer", where)
        if weights and weights[-1].shape[1] != W.shape[0]:
            raise NnctlError(f"layer shapes do not chain: W{i - 1} {weights[-1].shape} then W{i} {W.shape}", where)
        for name, values in ((f"W{i}", W), (f"b{i}", b)):
            if not np.isfinite(values).all():
                kinds = " and ".join(k for k, test in (("NaN", np.isnan), ("inf", np.isinf)) if test(values).any())
                raise NnctlError(f"model file's {name} holds {kinds} values: a model must have finite weights",
                                 where, "the run diverged or the file is damaged: train again "
                                        "(a lower training.learning_rate helps), or point at another run")
        weights.append(W)
        biases.append(b.astype(W.dtype))
    if len(meta.get("inputs", meta["features"])) != weights[0].shape[0]:
        raise NnctlError(f"W0 expects {weights[0].shape[0]} inputs but meta names "
                         f"{len(meta.get('inputs', meta['features']))}", where)
    return weights, biases


class Model:
    """A loaded model: `predict(df)` gives labels or values, `predict_proba(df)` class
    probabilities (rows, classes)."""

    def __init__(self, network: MLP, meta: dict, path=None):
        self.network, self.meta, self.path = network, meta, path
        self.encoder = FeatureEncoder.from_meta(meta)

    @property
    def task(self) -> str:
        return self.meta["task"]

    @property
    def classes(self) -> list | None:
        return self.meta.get("classes")

    def inputs(self, df, where="data") -> np.ndarray:
        return self.encoder.transform(df, self.network.dtype, where=where)

    def _output(self, X: np.ndarray) -> np.ndarray:
        # a model can overflow on inputs far outside its training range; the ±inf or NaN it gives
        # is reported as such (null in JSON), so NumPy's RuntimeWarnings would only add noise
        with np.errstate(over="ignore", invalid="ignore", under="ignore"):
            return self.network.predict_output(X)

    def proba_from_inputs(self, X: np.ndarray) -> np.ndarray:
        out = self._output(X)
        if len(self.classes) == 2:
            return np.hstack([1 - out, out])
        return out

    def values_from_inputs(self, X: np.ndarray) -> np.ndarray:
        out = self._output(X).astype(np.float64)
        scaler = self.meta.get("target_scaler")
        if scaler:
            out = out * np.asarray(scaler["scale"]) + np.asarray(scaler["offset"])
        return out[:, 0] if out.shape[1] == 1 else out

    def predict_proba(self, df, where="data") -> np.ndarray:
        return self.proba_from_inputs(self.inputs(df, where))

    def predict(self, df, where="data") -> np.ndarray:
        X = self.inputs(df, where)
        if self.task == "regression":
            return self.values_from_inputs(X)
        return self.labels(self.proba_from_inputs(X))

    def labels(self, proba: np.ndarray) -> np.ndarray:
        return np.asarray(self.classes, dtype=object)[proba.argmax(axis=1)]
