"""`model.npz`: a trained network plus everything predict needs, and the `Model` that uses it.

Format 2: `meta` (a 0-d unicode array holding one JSON object: format, layers, output, task,
features, classes, scaler, ...) and each layer's arrays as `layers.<i>.<name>`, e.g. `layers.0.W`
(fan_in, fan_out) and `layers.0.b` (fan_out,). `meta.layers` lists the layers in order, each
`{"type": ..., **settings}`; `meta.output` is the head the loss owns (softmax, sigmoid, identity).
Format 1, which nnctl wrote before layers were objects (arrays W0, b0, ... and
`meta.activations`), is still read, as the same dense/activation layers. Loaded with
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
from ..nn.layers import LAYERS, Activation, Dense
from ..nn.losses import LOSSES
from ..nn.network import Network

FORMAT = "nnctl-mlp"
FORMAT_VERSION = 2
OUTPUT_LOSS = {"softmax": "cross_entropy", "sigmoid": "binary_cross_entropy", "identity": "mse"}


def build_meta(network: Network, dataset, cfg: dict) -> dict:
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "nnctl_version": __version__,
        "layers": layer_specs(network),
        "output": network.output_head,
        "loss": network.loss_name,
        "task": dataset.task,
        "target": dataset.target,
        "inputs": dataset.encoder.inputs,
        "dtype": str(network.dtype),
        **dataset.encoder.to_meta(),
    }
    if dataset.task == "classification":
        meta["classes"] = dataset.classes
        if len(dataset.classes) == 2:  # the sigmoid's output is the probability of this class
            meta["positive_class"] = dataset.classes[1]
    else:
        meta["target_scaler"] = dataset.target_scaler
    return meta


def layer_specs(network: Network) -> list[dict]:
    """meta.layers: each layer's type and settings, in order."""
    return [{"type": layer.type, **layer.settings()} for layer in network.layers]


def save_model(path, network: Network, meta: dict) -> None:
    with open(path, "wb") as fh:
        np.savez(fh, meta=np.array(json.dumps(meta)), **network.arrays())


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


def load_model(path) -> "Model":
    path = model_path(path)
    where = str(path)
    arrays = read_npz(path, "model file", "corrupt or not a .npz", "train again, or point at another run")
    meta = _read_meta(arrays, where)
    if meta["format_version"] == 1:
        network = _format1_network(arrays, meta, where)
    else:
        network = _format2_network(arrays, meta, where)
    inputs = meta.get("inputs", meta["features"])
    if len(inputs) != network.n_inputs:
        raise NnctlError(f"the model's first layer takes {network.n_inputs} inputs but meta names {len(inputs)}",
                         where)
    return Model(network, meta, path)


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
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        raise NnctlError(f"model format_version {version!r} is newer than this nnctl reads ({FORMAT_VERSION})", where,
                         "upgrade nnctl: pip install -U nnctl")
    layout = ("activations",) if version == 1 else ("layers", "output")
    for key in layout + ("task", "features", "scaler"):
        if key not in meta:
            raise NnctlError(f"model meta lacks `{key}`", where)
    if meta["task"] == "classification" and not meta.get("classes"):
        raise NnctlError("model meta lacks `classes`", where)
    return meta


def _loss(output, meta: dict, where: str) -> str:
    loss = meta.get("loss") or OUTPUT_LOSS.get(output)
    if loss not in LOSSES or LOSSES[loss].output != output:
        raise NnctlError(f"model's output activation '{output}' is not one nnctl knows", where)
    return loss


def _format2_network(arrays: dict, meta: dict, where: str) -> Network:
    specs = meta["layers"]
    if not isinstance(specs, list) or not specs or not all(isinstance(s, dict) for s in specs):
        raise NnctlError("model meta `layers` is not a list of layers", where)
    loss = _loss(meta["output"], meta, where)
    layers = []
    for i, spec in enumerate(specs):
        kind = spec.get("type")
        if kind not in LAYERS:
            raise NnctlError(f"model layer {i} is of type {kind!r}, which this nnctl does not know", where,
                             "upgrade nnctl: pip install -U nnctl")
        prefix = f"layers.{i}."
        own = {name[len(prefix):]: a for name, a in arrays.items() if name.startswith(prefix)}
        for name, a in own.items():
            if a.dtype.kind != "f":
                raise NnctlError(f"model array {prefix}{name} holds {a.dtype}, not floats", where)
        try:
            layers.append(LAYERS[kind].from_saved({k: v for k, v in spec.items() if k != "type"}, own))
        except (KeyError, TypeError, ValueError) as exc:
            missing = f"lacks the array {prefix}{exc.args[0]}" if isinstance(exc, KeyError) else f"is not valid: {exc}"
            raise NnctlError(f"model layer {i} ({kind}) {missing}", where)
    return _network(layers, loss, len(meta.get("inputs", meta["features"])), where)


def _network(layers, loss, n_inputs, where) -> Network:
    try:
        return Network(layers, loss, n_inputs)
    except ValueError as exc:
        raise NnctlError(f"model layer shapes do not chain: {exc}", where)


def _format1_network(arrays: dict, meta: dict, where: str) -> Network:
    """Format 1: W0, b0, ... and one activation per layer, the output's last."""
    activations = meta["activations"]
    if not isinstance(activations, list) or not activations:
        raise NnctlError("model meta `activations` is not a list of names", where)
    loss = _loss(activations[-1], meta, where)
    layers = []
    for i, name in enumerate(activations):
        for array in (f"W{i}", f"b{i}"):
            if array not in arrays:
                raise NnctlError(f"model file lacks the array {array}", where)
        W, b = arrays[f"W{i}"], arrays[f"b{i}"]
        if W.dtype.kind != "f" or b.dtype.kind != "f" or W.ndim != 2 or b.shape != (W.shape[1],):
            raise NnctlError(f"layer {i}: W{i} {W.shape} and b{i} {b.shape} are not a float layer", where)
        layers.append(Dense(W, b))
        if i < len(activations) - 1:
            try:
                layers.append(Activation(name))
            except ValueError:
                raise NnctlError(f"model uses the activation '{name}', which this nnctl does not know", where)
    return _network(layers, loss, len(meta.get("inputs", meta["features"])), where)


class Model:
    """A loaded model: `predict(df)` gives labels or values, `predict_proba(df)` class
    probabilities (rows, classes)."""

    def __init__(self, network: Network, meta: dict, path=None):
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
