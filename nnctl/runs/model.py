"""`model.npz`: a trained network plus everything predict needs, and the `Model` that uses it.

Format 2: `meta` (a 0-d unicode array holding one JSON object: format, layers, output, task,
features, classes, scaler, ...) and each layer's arrays as `layers.<i>.<name>`, e.g. `layers.0.W`
(fan_in, fan_out) and `layers.0.b` (fan_out,). `meta.layers` lists the layers in order, each
`{"type": ..., **settings}`; `meta.output` is the head the loss owns (softmax, sigmoid, identity).
Format 1, which nnctl wrote before layers were objects (arrays W0, b0, ... and
`meta.activations`), is still read, as the same dense/activation layers. Format 3 is format 2
for a model of K > 1 members (`model.ensemble`): `meta.members` is K and every layer array has a
leading axis of K (`layers.0.W` is (K, fan_in, units)); the model predicts the members' mean. A
model of one member is written as format 2. Loaded with `allow_pickle=False` only; anything
malformed is an NnctlError naming the file.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import __version__
from ..data.encoding import FeatureEncoder
from ..data.scaling import from_training, scaler_problem, target_problem
from ..data.targets import MULTI
from ..errors import NnctlError
from ..npzfile import meta_array, nonfinite, read_meta, read_npz
from ..nn.calibration import T_RANGE
from ..nn.embedding import Embedding
from ..nn.layers import LAYERS, Activation, Dense
from ..nn.losses import LOSSES
from ..nn.network import CHUNK, Network
from ..resources import ROW_MULTIPLE, chunk_rows

FORMAT = "nnctl-mlp"
FORMAT_VERSION = 3  # the newest this nnctl reads; a model of one member is written as 2
OUTPUT_LOSS = {"softmax": "cross_entropy", "sigmoid": "binary_cross_entropy", "identity": "mse"}


def build_meta(network: Network, dataset, cfg) -> dict:
    meta = {
        "format": FORMAT,
        "format_version": 2 if network.members is None else 3,
        "nnctl_version": __version__,
        **({} if network.members is None else {"members": network.members}),
        "layers": layer_specs(network),
        "output": network.output_head,
        "loss": network.loss_name,
        "task": dataset.task,
        "target": dataset.target,
        "inputs": dataset.encoder.inputs,
        "dtype": str(network.dtype),
        **dataset.encoder.to_meta(),
    }
    if network.heads is not None:
        return {**meta, **heads_meta(network, dataset)}
    if dataset.task == "classification":
        meta["classes"] = dataset.classes
        if len(dataset.classes) == 2:  # the sigmoid's output is the probability of this class
            meta["positive_class"] = dataset.classes[1]
    else:
        meta["target_scaler"] = dataset.target_scaler
    return meta


def heads_meta(network: Network, dataset) -> dict:
    """Several targets: `targets` (in order: each one's task, classes or target_scaler, its
    head's output activation, loss and output columns, its weight and initial loss scale) and
    `heads` ({target: [layer indices]}: the dense layer whose column block is its head)."""
    from ..data.targets import target_meta

    last = network.trainable[-1][0]
    loss = network.loss
    targets = [{**target_meta(t), "output": LOSSES[h.loss].output, "loss": h.loss, "columns": [h.start, h.stop],
                "weight": float(w * scale), "loss_scale": float(scale)}
               for t, h, w, scale in zip(dataset.targets, network.heads, loss.weights, loss.scales)]
    return {"targets": targets, "heads": {h.name: [last] for h in network.heads}}


def layer_specs(network: Network) -> list[dict]:
    """meta.layers: each layer's type and settings, in order."""
    return [{"type": layer.type, **layer.settings()} for layer in network.layers]


def save_model(path, network: Network, meta: dict, extra: dict | None = None) -> None:
    """`extra`: more arrays beside the layers', e.g. `conformal.scores`. A meta `conformal`
    entry is kept only with its scores, so that a loaded model's meta saved again with other
    weights still makes a file that loads."""
    extra = extra or {}
    if CONFORMAL_SCORES not in extra:
        meta = {k: v for k, v in meta.items() if k != "conformal"}
    if "targets" in meta:  # several targets: each one's `conformal` entry likewise
        meta = {**meta, "targets": [{k: v for k, v in t.items() if k != "conformal" or target_scores_name(j) in extra}
                                    for j, t in enumerate(meta["targets"])]}
    problem = _unsaved_scaler(meta)
    if problem:  # JSON would write it as null, which load_model refuses: a model that never loads
        raise NnctlError(f"cannot save the model: {problem} is not a finite number", str(path),
                         "rescale the columns with values near float64's limit (1e308), or set data.scale: robust "
                         "and data.target_transform: quantile")
    with open(path, "wb") as fh:
        np.savez(fh, meta=meta_array(meta), **network.arrays(), **extra)


def _unsaved_scaler(meta: dict) -> str | None:
    """The first feature or target scaler value that is inf or NaN (named), or None."""
    scalers = [("the feature scaler", meta.get("scaler")), ("the target scaler", meta.get("target_scaler"))]
    scalers += [(f"target '{t.get('name')}''s scaler", t.get("target_scaler")) for t in meta.get("targets") or []
                if isinstance(t, dict)]
    for what, scaler in scalers:
        if not isinstance(scaler, dict):
            continue
        for key in ("offset", "scale", "knots", "scores"):
            try:
                values = np.asarray(scaler.get(key) or [], dtype=np.float64)
            except (TypeError, ValueError):  # ragged knots: one list per output
                values = np.concatenate([np.asarray(v, np.float64) for v in scaler[key]])
            if not np.isfinite(values).all():
                return f"{what}'s {key}"
        for knots, scores in (scaler.get("quantiles") or {}).values():
            if not (np.isfinite(knots).all() and np.isfinite(scores).all()):
                return f"{what}'s quantiles"
    return None


def save_threshold(model: "Model", threshold: float) -> None:
    """Store a chosen decision threshold in the model's file as `meta.threshold` (what predict,
    serve and export then use unless given --threshold), atomically: the file is replaced whole
    or not at all. Every other array is written back as it was read."""
    path = Path(model.path)
    meta = {**model.meta, "threshold": float(threshold)}
    problem = _threshold_problem(meta, meta.get("classes"))
    if problem:
        raise NnctlError(f"cannot save this threshold: {problem}", str(path))
    _rewrite_meta(model, meta)


def save_target_thresholds(model: "Model", thresholds: dict) -> None:
    """Several targets: store each chosen threshold ({target: T}) in its `meta.targets` entry as
    `threshold`, as `save_threshold` stores one target's."""
    meta = {**model.meta, "targets": [{**t, **({"threshold": float(thresholds[t["name"]])}
                                              if t["name"] in thresholds else {})} for t in model.meta["targets"]]}
    for t in meta["targets"]:
        problem = _threshold_problem(t, t.get("classes"))
        if problem:
            raise NnctlError(f"cannot save the threshold of target '{t['name']}': {problem}", str(model.path))
    _rewrite_meta(model, meta)


def _rewrite_meta(model: "Model", meta: dict) -> None:
    """The model's file with `meta` in place of its own, atomically."""
    from ..atomic import atomic_file

    path = Path(model.path)
    meta_only = _read_meta(read_npz(path, *MODEL_FILE, limit=_meta_limit, names=("meta",)), str(path))
    limit = format1_limit(meta_only) if meta_only["format_version"] == 1 else format2_limit(meta_only)
    arrays = {name: a for name, a in read_npz(path, *MODEL_FILE, limit=limit).items() if name != "meta"}
    try:
        with atomic_file(path, "wb") as fh:
            np.savez(fh, meta=meta_array(meta), **arrays)
    except PermissionError as exc:
        raise NnctlError(f"cannot write the model file: {exc.strerror}", str(path),
                         "make it writable, or copy the run folder and save into the copy")
    model.meta = meta


def model_path(path) -> Path:
    """A run folder or a model.npz -> the model.npz."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.npz"
        if not path.exists():
            raise NnctlError("no model.npz in this folder", str(path.parent), _runs_inside(path.parent))
    elif not path.exists():
        raise NnctlError("model not found", str(path), "pass a run folder or its model.npz")
    return path


def _runs_inside(folder: Path) -> str:
    """The hint for a folder without a model: a `train --seeds` or cv folder holds runs, so
    name the one to use (the seeds' kept run, else the first)."""
    runs = sorted((p for p in folder.glob("*/model.npz")), key=lambda p: p.parent.name)
    runs += sorted(folder.glob("repeat_*/fold_*/model.npz"))
    if not runs:
        return "pass a run folder written by `nnctl train`"
    kept = None
    try:  # a seeds folder's summary.json names its representative; damaged or absent, the first run
        import json

        kept = f"seed_{json.loads((folder / 'summary.json').read_text())['representative']['seed']}"
    except (OSError, ValueError, KeyError, TypeError):
        pass
    chosen = next((p.parent for p in runs if p.parent.name == kept), runs[0].parent)
    what = "the kept run" if chosen.name == kept else "e.g."
    return f"it holds {len(runs)} runs, not one model: pass one of them, {what} {chosen}"


MODEL_FILE = ("model file", "corrupt or not a .npz", "train again, or point at another run")
FLOATS = (np.dtype(np.float32), np.dtype(np.float64))  # the dtypes nnctl trains in


def load_model(path) -> "Model":
    path = model_path(path)
    where = str(path)
    meta = _read_meta(read_npz(path, *MODEL_FILE, limit=_meta_limit, names=("meta",)), where)
    limit = format1_limit(meta) if meta["format_version"] == 1 else format2_limit(meta)
    arrays = read_npz(path, *MODEL_FILE, limit=limit)
    _require_finite(arrays, where)
    problem = _conformal_problem(meta, arrays.get(CONFORMAL_SCORES))
    for j, t in enumerate(meta.get("targets") or []):  # several targets: each one's own scores
        if problem is None and isinstance(t, dict) and ("conformal" in t or target_scores_name(j) in arrays):
            own = {"task": t.get("task"), "conformal": t.get("conformal"), "members": meta.get("members")}
            problem = _conformal_problem(own, arrays.get(target_scores_name(j)))
            problem = problem and f"target {j}: {problem.replace(CONFORMAL_SCORES, target_scores_name(j))}"
    if problem:
        raise NnctlError(f"model file is damaged: {problem}", where, "train again, or point at another run")
    if meta["format_version"] == 1:
        network = _format1_network(arrays, meta, where)
    else:
        network = _format2_network(arrays, meta, where)
    inputs = meta.get("inputs", meta["features"])
    if len(inputs) != network.n_inputs:
        raise NnctlError(f"the model's first layer takes {network.n_inputs} inputs but meta names {len(inputs)}",
                         where)
    model = Model(network, meta, path, arrays.get(CONFORMAL_SCORES))
    if "targets" in meta:
        model.target_scores = {j: arrays[target_scores_name(j)] for j in range(len(meta["targets"]))
                               if target_scores_name(j) in arrays}
    return model


def _meta_limit(name: str, header) -> str | None:
    if header.shape != () or header.dtype.kind != "U":
        return f"`meta` is {header.dtype} {header.shape}, not one JSON text"
    return None


def format1_limit(meta: dict):
    """A read_npz limit for a format-1 model: only `meta`, W0..W{L-1} and b0..b{L-1} of float32
    or float64, with the input and output widths `meta` implies, judged before any data is read."""
    n = len(meta["activations"])
    inputs, outputs = len(meta.get("inputs", meta["features"])), _outputs(meta)
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


def _outputs(meta: dict) -> int | None:
    """The output units that `meta` implies (None when it cannot tell)."""
    classes = meta.get("classes")
    if "targets" in meta:
        return meta["targets"][-1]["columns"][1]
    if meta["task"] == "classification":
        return 1 if len(classes) == 2 else len(classes)
    return len(meta["target_scaler"]["offset"]) if meta.get("target_scaler") else None


def _spec_at(specs, path: list) -> dict | None:
    """The layer spec a path of an array name leads to (`['3', 'body', '0']` for
    `layers.3.body.0.W`: a composite's child), or None when meta lists no such layer."""
    if not path or not path[0].isdigit() or not isinstance(specs, list) or int(path[0]) >= len(specs):
        return None
    spec = specs[int(path[0])]
    if not isinstance(spec, dict):
        return None
    if len(path) == 1:
        return spec
    return _spec_at(spec.get(path[1]), path[2:]) if len(path) > 2 else None


def _dense_paths(specs, path: tuple = ()) -> list[tuple]:
    """The paths (('3', 'body', '0'), as array names hold them) of the dense layers, composites'
    children in their place, in order."""
    found = []
    for i, spec in enumerate(specs if isinstance(specs, list) else []):
        if not isinstance(spec, dict):
            continue
        if spec.get("type") == "dense":
            found.append(path + (str(i),))
        for group, children in spec.items():
            if isinstance(children, list) and children and all(isinstance(c, dict) for c in children):
                found += _dense_paths(children, path + (str(i), group))
    return found
NUMERIC_WIDTH = {"periodic": "width", "piecewise_linear": "bins"}  # a numeric embedding's columns per input


def format2_limit(meta: dict):
    """A read_npz limit for a format-2 model: only `meta` and `layers.<i>.<name>` arrays of the
    layers meta lists, float32 or float64; the first dense layer's rows are the inputs meta
    names and the last's columns the outputs it implies. Judged before any data is read. Format
    3: the same, each layer array with a leading axis of `meta.members`."""
    specs = meta["layers"]
    members = meta.get("members") if meta["format_version"] >= 3 else None
    lead = 0 if members is None else 1
    inputs, outputs = len(meta.get("inputs", meta["features"])), _outputs(meta)
    dense = _dense_paths(specs)
    first = specs[0] if specs and isinstance(specs[0], dict) else {}
    columns = first.get("columns")
    if first.get("type") == "embedding" and isinstance(columns, list) and _numbers(first.get("widths"), len(columns)):
        # the first dense layer takes the inputs less the code columns, plus the embeddings
        inputs += int(sum(first["widths"])) - len(first["columns"])
    for spec in specs[:int(dense[0][0]) if dense else 0]:  # the layers before the first dense one's block
        numeric = spec.get("columns") if isinstance(spec, dict) else None
        size = spec.get(NUMERIC_WIDTH.get(spec.get("type"), ""), None) if isinstance(spec, dict) else None
        if isinstance(numeric, list) and _numbers([size], 1):
            # a numeric embedding: each of its inputs becomes `size` columns
            inputs += len(numeric) * (int(size) - 1)
    deeper = {i for i, spec in enumerate(specs) if isinstance(spec, dict) and spec.get("type") == "periodic"}

    def limit(name: str, header) -> str | None:
        if name == "meta":
            return _meta_limit(name, header)
        if name == CONFORMAL_SCORES:
            return _conformal_limit(meta, header)
        j = target_of_scores(name, meta)
        if j is not None:
            return _conformal_limit(meta["targets"][j], header, name)
        parts = name.split(".")
        if parts[0] != "layers" or _spec_at(specs, parts[1:-1]) is None:
            return f"it holds an array `{name}` that a model with {len(specs)} layers does not have"
        if header.dtype not in FLOATS:
            return f"`{name}` is {header.dtype}, where nnctl models hold float32 or float64"
        if len(header.shape) > 2 + lead + (parts[2] == "W" and parts[1].isdigit() and int(parts[1]) in deeper):
            return f"`{name}` has shape {header.shape}, more dimensions than any layer's array"
        if members is not None and (not header.shape or header.shape[0] != members):
            return f"`{name}` has shape {header.shape}, not a leading axis of the {members} members meta names"
        i, array = tuple(parts[1:-1]), parts[-1]
        if dense and i == dense[0] and array == "W" and len(header.shape) == 2 + lead and \
                header.shape[-2] != inputs:
            return f"`{name}` has {header.shape[-2]} rows, but meta names {inputs} inputs"
        if dense and i == dense[-1] and outputs is not None and header.shape and header.shape[-1] != outputs:
            return f"`{name}` has {header.shape[-1]} outputs, but meta implies {outputs}"
        return None

    return limit


CONFORMAL_SCORES = "conformal.scores"  # split conformal's calibration scores, sorted float64 (n,)


def target_scores_name(j: int) -> str:
    """The array of target j's conformal scores, in a model of several targets (meta
    `targets[j].conformal` is its entry)."""
    return f"{CONFORMAL_SCORES}.{j}"


def target_of_scores(name: str, meta: dict) -> int | None:
    """j when `name` is target j's scores array of this model's targets, else None."""
    head, _, index = name.rpartition(".")
    targets = meta.get("targets")
    if head != CONFORMAL_SCORES or not index.isdigit() or not isinstance(targets, list) or int(index) >= len(targets) \
            or not isinstance(targets[int(index)], dict):
        return None
    return int(index)


def _conformal_limit(meta: dict, header, name: str = CONFORMAL_SCORES) -> str | None:
    entry = meta.get("conformal")
    n = entry.get("n") if isinstance(entry, dict) else None
    if not _count(n):
        return f"it holds `{name}` but meta has no `conformal` entry with its count `n`"
    if header.dtype != np.float64 or header.shape != (n,):
        return f"`{name}` is {header.dtype} {header.shape}, where meta `conformal` implies float64 ({n},)"
    return None


def _conformal_problem(meta: dict, scores) -> str | None:
    """What is wrong with a model's conformal scores and their meta, or None: both or neither,
    n sorted finite scores in the range their kind allows."""
    from ..nn.conformal import CLASSIFICATION_SCORE, NORMALIZED_SCORE, REGRESSION_SCORE

    entry = meta.get("conformal")
    if entry is None:
        return f"it holds `{CONFORMAL_SCORES}` but meta has no `conformal` entry" if scores is not None else None
    kind = REGRESSION_SCORE if meta["task"] == "regression" else CLASSIFICATION_SCORE
    if isinstance(entry, dict) and meta["task"] == "regression" and entry.get("kind") == NORMALIZED_SCORE:
        floor = entry.get("floor")
        if not meta.get("members") or isinstance(floor, bool) or not isinstance(floor, (int, float)) \
                or not (np.isfinite(floor) and floor > 0):
            return "`conformal` of kind normalized_residual needs an ensemble (`members`) and a positive `floor`"
        kind = NORMALIZED_SCORE
    if not isinstance(entry, dict) or entry.get("kind") != kind or not _count(entry.get("n")):
        return f"`conformal` must be {{\"kind\": \"{kind}\", \"n\": rows}} for a {meta['task']} model"
    if scores is None:
        return f"meta `conformal` names {entry['n']} scores, but the file lacks `{CONFORMAL_SCORES}`"
    high = 1.0 if kind == CLASSIFICATION_SCORE else np.inf
    if len(scores) and (scores[0] < 0 or scores[-1] > high or np.any(np.diff(scores) < 0)):
        return f"`{CONFORMAL_SCORES}` must be sorted and within [0, {high:g}]"
    return None


def _count(n) -> bool:
    return isinstance(n, int) and not isinstance(n, bool) and n >= 1


def _require_finite(arrays: dict, where: str) -> None:
    """A model must have finite weights: NaN or inf would predict one class for every row."""
    problem = nonfinite({name: a for name, a in arrays.items() if name != "meta"})
    if problem:
        raise NnctlError(f"model file's {problem}: a model must have finite weights", where,
                         "the run diverged or the file is damaged: train again (a lower "
                         "training.learning_rate helps), or point at another run")


def _read_meta(arrays: dict, where: str) -> dict:
    meta = read_meta(arrays, "model file", where, FORMAT, FORMAT_VERSION)
    version = meta["format_version"]
    layout = ("activations",) if version == 1 else ("layers", "output")
    for key in layout + ("task", "features", "scaler"):
        if key not in meta:
            raise NnctlError(f"model meta lacks `{key}`", where)
    if meta["task"] == "classification" and not meta.get("classes"):
        raise NnctlError("model meta lacks `classes`", where)
    problem = _meta_problem(meta)
    if problem:
        raise NnctlError(f"model meta is damaged: {problem}", where, "train again, or point at another run")
    return meta


def _loss(output, meta: dict, where: str):
    if "targets" in meta:
        return _multi_loss(meta, where)
    loss = meta.get("loss") or OUTPUT_LOSS.get(output)
    if loss not in LOSSES or LOSSES[loss].output != output:
        raise NnctlError(f"model's output activation '{output}' is not one nnctl knows", where)
    return loss


def _multi_loss(meta: dict, where: str):
    """The heads of a multi-target model from meta.targets (checked by `_targets_problem`)."""
    from ..nn.heads import Head, MultiLoss

    targets = meta["targets"]
    loss = MultiLoss([Head(t["name"], t["loss"], *t["columns"]) for t in targets],
                     [t["weight"] / t["loss_scale"] for t in targets])
    loss.scales = np.array([t["loss_scale"] for t in targets], dtype=np.float64)
    return loss


def _targets_problem(meta: dict) -> str | None:
    """What is wrong with a multi-target model's `targets` and `heads`, or None."""
    targets, heads = meta.get("targets"), meta.get("heads")
    if not isinstance(targets, list) or len(targets) < 2 or not all(isinstance(t, dict) for t in targets):
        return "`targets` must list two or more targets"
    start = 0
    for t in targets:
        name, task = t.get("name"), t.get("task")
        if not isinstance(name, str) or task not in ("classification", "regression"):
            return "each of `targets` needs a `name` and a `task` (classification or regression)"
        loss = t.get("loss")
        if loss not in LOSSES or LOSSES[loss].task != task or LOSSES[loss].output != t.get("output"):
            return f"target '{name}' has the loss {loss!r} and output {t.get('output')!r}, which do not fit a {task}"
        classes = t.get("classes")
        if task == "classification" and (not isinstance(classes, list) or len(classes) < 2
                                         or len({str(c) for c in classes}) != len(classes)):
            return f"target '{name}': `classes` must list two or more different labels"
        width = (1 if len(classes) == 2 else len(classes)) if task == "classification" else 1
        if t.get("columns") != [start, start + width]:
            return f"target '{name}': `columns` must be [{start}, {start + width}]"
        start += width
        if not _numbers([t.get("weight"), t.get("loss_scale")], 2) or not t["loss_scale"] > 0 or not t["weight"] >= 0:
            return f"target '{name}': `weight` must be a number >= 0 and `loss_scale` one > 0"
        problem = _threshold_problem(t, classes)
        if problem:
            return f"target '{name}': {problem}"
        if t.get("calibration") is not None and not _temperature_ok(t["calibration"], task):
            return f"target '{name}': `calibration` must be {{\"temperature\": T}} of a classification target"
        scaler = t.get("target_scaler")
        if scaler is not None and (not isinstance(scaler, dict) or not _numbers(scaler.get("offset"), 1)
                                   or not _numbers(scaler.get("scale"), 1) or target_problem(scaler, 1)):
            return f"target '{name}': `target_scaler` must hold one `offset` and one `scale`"
    if meta.get("target") != [t["name"] for t in targets]:
        return "`target` must list the names of `targets`, in order"
    if not isinstance(heads, dict) or list(heads) != meta["target"]:
        return "`heads` must map each target to its layers"
    return None


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
        problem = _settings_problem(kind, spec)
        if problem:
            raise NnctlError(f"model layer {i} ({kind}) is not valid: {problem}", where, DAMAGED_HINT)
        try:
            layer = LAYERS[kind].from_saved({k: v for k, v in spec.items() if k != "type"}, own)
        except (KeyError, TypeError, ValueError) as exc:
            missing = f"lacks the array {prefix}{exc.args[0]}" if isinstance(exc, KeyError) else f"is not valid: {exc}"
            raise NnctlError(f"model layer {i} ({kind}) {missing}", where)
        problem = _arrays_problem(layer, own, prefix)
        if problem:
            raise NnctlError(f"model layer {i} ({kind}) {problem}", where, DAMAGED_HINT)
        layers.append(layer)
    _check_embedding(layers, meta, where)
    network = _network(layers, loss, len(meta.get("inputs", meta["features"])), where)
    if network.members != meta.get("members"):
        raise NnctlError(f"model meta names {meta.get('members') or 1} members, its arrays hold "
                         f"{network.members or 1}", where, "train again, or point at another run")
    return network


DAMAGED_HINT = "train again, or point at another run"


def _settings_problem(kind: str, spec: dict) -> str | None:
    """What a layer's settings hold that would make it predict nonsense rather than fail: a
    normalization's eps must be positive (a negative one makes √(σ² + eps) NaN for every row);
    the same for a composite's children."""
    for group, children in spec.items():
        if isinstance(children, list) and all(isinstance(c, dict) for c in children):
            for j, child in enumerate(children):
                problem = _settings_problem(child.get("type"), child)
                if problem:
                    return f"{group}.{j}: {problem}"
    if kind in ("batch_norm", "layer_norm") and "eps" in spec:
        eps = spec["eps"]
        if not _numbers([eps], 1) or not (np.isfinite(eps) and eps > 0):
            return f"`eps` is {eps!r}, where it must be a positive number"
    return None


def _arrays_problem(layer, own: dict, prefix: str) -> str | None:
    """A layer's arrays in the file are exactly the ones it has (an extra one would be carried
    silently into every copy of the model), and its running variance is not negative."""
    expected = set(layer.params) | set(getattr(layer, "state", {}) or {})
    extra = sorted(set(own) - expected)
    if extra:
        return f"has an array `{prefix}{extra[0]}` that a layer of its type does not have"
    for name, var in own.items():  # a composite's child's too: body.1.running_var
        if name.split(".")[-1] == "running_var" and (np.asarray(var) < 0).any():
            return f"has a negative variance in `{prefix}{name}`: a variance is never below 0"
    return None


def _check_embedding(layers: list, meta: dict, where: str) -> None:
    """meta's embedded columns and the embedding layer agree: each embedded column's code input
    is a code column of the layer, and its table has a row per category meta lists (plus the
    unseen-category row). Fewer categories in meta would send an unseen one to a trained row;
    more would look a code up beyond the table."""
    embedding = meta.get("embedding") or {}
    layer = next((lay for lay in layers if isinstance(lay, Embedding)), None)
    if not embedding and layer is None:
        return
    hint = DAMAGED_HINT
    if layer is None or layers.index(layer) != 0:
        raise NnctlError("model meta embeds columns, but the model's first layer is not an embedding layer"
                         if embedding else "model has an embedding layer that is not its first", where, hint)
    from ..data.encoding import FeatureEncoder

    codes = FeatureEncoder.from_meta(meta).code_columns()
    if [j for j, _ in codes] != layer.columns:
        raise NnctlError(f"model meta `embedding` names {len(codes)} embedded column(s) at inputs "
                         f"{[j for j, _ in codes]}, but the embedding layer looks up inputs {layer.columns}", where,
                         hint)
    for (_, column), k, rows in zip(codes, range(len(codes)), layer.categories):
        listed = len(meta["categories"][column])
        if listed != rows:
            raise NnctlError(f"model meta `categories` lists {listed} categories of the embedded column '{column}', "
                             f"but its table `layers.0.table_{k}` has rows for {rows}", where, hint)


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


def _names(value) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _numbers(value, length: int) -> bool:
    return (isinstance(value, list) and len(value) == length
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value))


def _temperature_ok(calibration, task: str) -> bool:
    if task != "classification" or not isinstance(calibration, dict) or set(calibration) != {"temperature"}:
        return False
    t = calibration["temperature"]
    # only what fit_temperature can give: a T far outside it is 0 or inf once the logits'
    # float32 divides by it, and every probability would be NaN or 0.5
    low, high = T_RANGE[0] * (1 - 1e-9), T_RANGE[1] * (1 + 1e-9)
    return _numbers([t], 1) and bool(np.isfinite(t)) and low <= t <= high


def _meta_problem(meta: dict) -> str | None:
    """What is wrong with the kinds of value in a model's meta (a hand-edited or damaged file),
    or None: each would otherwise fail deep inside predict."""
    if meta["format_version"] == 1 and (not _names(meta["activations"]) or not meta["activations"]):
        return "`activations` must be a non-empty list of names"
    if meta["format_version"] >= 2 and (not isinstance(meta["layers"], list) or not meta["layers"]
                                        or not all(isinstance(s, dict) for s in meta["layers"])):
        return "`layers` must be a non-empty list of layers"
    if meta["format_version"] >= 2 and not isinstance(meta["output"], str):
        return "`output` must be an output head's name"
    members = meta.get("members")
    if meta["format_version"] >= 3 and (isinstance(members, bool) or not isinstance(members, int) or members < 2):
        return "`members` must be the number of members, 2 or more (format 3)"
    if meta["format_version"] < 3 and members is not None:
        return "`members` is for format 3 models"
    if meta.get("loss") is not None and not isinstance(meta["loss"], str):
        return "`loss` must be a loss's name"
    if meta.get("decimal", ".") not in (".", ",") or meta.get("unknown_category", "error") not in ("error", "ignore"):
        return "`decimal` must be '.' or ',', and `unknown_category` error or ignore"
    if meta["task"] == MULTI or "targets" in meta:
        problem = _targets_problem(meta) if meta["task"] == MULTI else "`targets` is for a multitarget model"
        if problem:
            return problem
    elif meta["task"] not in ("classification", "regression"):
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
    embedding = meta.get("embedding") or {}
    if not isinstance(embedding, dict) or any(f not in categories or isinstance(w, bool) or not isinstance(w, int)
                                              or w < 1 for f, w in embedding.items()):
        return "`embedding` must map categorical columns to widths"
    width = sum(len(categories[f]) if f in categories and f not in embedding else 1 for f in meta["features"])
    scaler = meta["scaler"]
    if not isinstance(scaler, dict) or not _numbers(scaler.get("offset"), width) \
            or not _numbers(scaler.get("scale"), width):
        return f"`scaler` must hold `offset` and `scale`, {width} numbers each (one per input)"
    problem = scaler_problem(scaler, width)
    if problem:
        return problem
    classes = meta.get("classes")
    if meta["task"] == "classification" and (not isinstance(classes, list) or len(classes) < 2
                                             or any(isinstance(c, (list, dict)) for c in classes)
                                             or len({str(c) for c in classes}) != len(classes)):
        return "`classes` must list two or more different labels"
    problem = _positive_problem(meta, classes) or _threshold_problem(meta, classes) or _ranges_problem(meta)
    if problem:
        return problem
    calibration = meta.get("calibration")
    if calibration is not None and not _temperature_ok(calibration, meta["task"]):
        return (f"`calibration` must be {{\"temperature\": T}} with T a number from {T_RANGE[0]:g} to {T_RANGE[1]:g} "
                "(the range training fits it in), on a classification")
    target = meta.get("target_scaler")
    width = len(target["offset"]) if isinstance(target, dict) and isinstance(target.get("offset"), list) else 0
    if target is not None and (not width or not _numbers(target["offset"], width)
                               or not _numbers(target.get("scale"), width)):
        return "`target_scaler` must hold `offset` and `scale`, lists of as many numbers as outputs"
    return target_problem(target, width) if target is not None else None


def _two_classes(meta: dict, classes) -> bool:
    return meta["task"] == "classification" and len(classes) == 2


def _positive_problem(meta: dict, classes) -> str | None:
    """`positive_class`: on a two-class model, the class the sigmoid gives (classes[1])."""
    if "positive_class" not in meta:
        return None
    positive = meta["positive_class"]
    if not _two_classes(meta, classes):
        return f"`positive_class` is {positive!r}, but only a two-class model has one"
    if positive not in classes:
        return f"`positive_class` {positive!r} is not one of `classes` ({', '.join(map(str, classes))})"
    if positive != classes[1]:
        return (f"`positive_class` {positive!r} is not classes[1] ({classes[1]!r}), the class whose probability "
                "the model's sigmoid gives")
    return None


def _threshold_problem(meta: dict, classes) -> str | None:
    """`threshold` (evaluate --choose-threshold --save): a probability, on a two-class model."""
    if meta.get("threshold") is None:
        return None
    t = meta["threshold"]
    if not _two_classes(meta, classes):
        return "`threshold` is set, but only a two-class model has one"
    if not _numbers([t], 1) or not 0.0 <= t <= 1.0:
        return f"`threshold` is {t!r}, where it must be a probability from 0 to 1"
    return None


def _ranges_problem(meta: dict) -> str | None:
    """`ranges`: each numeric feature's [min, max] in the training part (range warnings)."""
    ranges = meta.get("ranges")
    if ranges is None:
        return None
    numeric = [f for f in meta["features"] if f not in (meta.get("categories") or {})]
    if not isinstance(ranges, dict) or set(ranges) - set(numeric) or not all(
            _numbers(v, 2) and bool(np.isfinite(v).all()) and v[0] <= v[1] for v in ranges.values()):
        return "`ranges` must map numeric feature columns to [min, max], two finite numbers with min ≤ max"
    return None


def padded_rows(X: np.ndarray) -> np.ndarray:
    """X with zero rows added up to a multiple of ROW_MULTIPLE. BLAS picks its kernels by the
    number of rows (a matrix-vector kernel for one row, tail kernels for a ragged last panel),
    and their sums round differently in float32: the same row alone or among 29 others came out
    a few units in the last place apart. Whole blocks of rows keep every row on the same kernels,
    so a row's prediction does not depend on the rows sent with it."""
    extra = -X.shape[0] % ROW_MULTIPLE
    if not extra:
        return X
    return np.concatenate([X, np.zeros((extra,) + X.shape[1:], dtype=X.dtype)])


class Model:
    """A loaded model: `predict(df)` gives labels or values, `predict_proba(df)` class
    probabilities (rows, classes)."""

    def __init__(self, network: Network, meta: dict, path=None, conformal_scores: np.ndarray | None = None):
        self.network, self.meta, self.path = network, meta, path
        self.conformal_scores = conformal_scores  # sorted (n,), when training had a validation part
        self.encoder = FeatureEncoder.from_meta(meta)
        self._chunk = None

    @property
    def chunk(self) -> int:
        """Rows per forward pass when predicting: CHUNK, fewer where a wide layer's buffers
        would pass the memory budget's share for them (`resources.chunk_rows`)."""
        if self._chunk is None:
            ws = self.network.workspace()
            self._chunk = chunk_rows(ws.row_bytes(), ws.row_bytes(widest=True), CHUNK)
        return self._chunk

    @property
    def task(self) -> str:
        return self.meta["task"]

    @property
    def classes(self) -> list | None:
        return self.meta.get("classes")

    @property
    def targets(self) -> list["TargetView"] | None:
        """Several targets: one TargetView each, in order (what each target's predictions are
        read through); None for a model of one target."""
        if "targets" not in self.meta:
            return None
        views = [TargetView(self, t) for t in self.meta["targets"]]
        for j, view in enumerate(views):
            view.conformal_scores = (getattr(self, "target_scores", None) or {}).get(j)
        return views

    def inputs(self, df, where="data", unknown: str | None = None) -> np.ndarray:
        """`df`'s rows as the network's inputs; `unknown` (error | ignore) overrides the model's
        unknown_category (predict --unknown-category)."""
        return self.encoder.transform(df, self.network.dtype, where=where, unknown=unknown)

    @property
    def threshold(self) -> float | None:
        """The decision threshold saved by `evaluate --choose-threshold --save` (two classes: the
        positive class, classes[1], wins where its probability is at least it), or None."""
        return self.meta.get("threshold")

    @property
    def temperature(self) -> float:
        """What the logits are divided by before the softmax or sigmoid (training.calibration);
        1.0 for an uncalibrated model."""
        return float((self.meta.get("calibration") or {}).get("temperature", 1.0))

    def _output(self, X: np.ndarray) -> np.ndarray:
        rows = X.shape[0]
        X = padded_rows(X)
        # a model can overflow on inputs far outside its training range; the ±inf or NaN it gives
        # is reported as such (null in JSON), so NumPy's RuntimeWarnings would only add noise
        # no lock: each prediction has its own workspace (nn/workspace.py), so the event loop and
        # the thread pool of a served model may predict with it at once
        with np.errstate(over="ignore", invalid="ignore", under="ignore"):
            if self.temperature == 1.0:
                return self.network.predict_output(X, self.chunk)[:rows]
            z = self.network.predict_logits(X, self.chunk)[:rows]
            z /= z.dtype.type(self.temperature)
            return self.network.loss.forward(z, np.empty_like(z))

    def proba_from_inputs(self, X: np.ndarray) -> np.ndarray:
        out = self._output(X)
        if len(self.classes) == 2:
            return np.hstack([1 - out, out])
        return out

    def network_outputs(self, X: np.ndarray) -> np.ndarray:
        """The network's outputs (rows, outputs) on encoded inputs, before the target transform
        is undone (regression) or the classes named. Several targets: each calibrated target's
        block is its head of its logits divided by its temperature."""
        out = self._output(X)
        views = self.targets
        if views is not None and any(v.temperature != 1.0 for v in views):
            out = out.copy()
            for v in views:
                if v.temperature != 1.0:
                    out[:, v.start:v.stop] = _tempered(v.meta["output"], out[:, v.start:v.stop], v.temperature)
        return out

    def member_outputs(self, X: np.ndarray) -> np.ndarray:
        """Each member's own prediction (K, rows, outputs), float64: its class probabilities
        (two columns for two classes), or its values in the target's units. Uncalibrated: a
        temperature belongs to the ensemble's mean, not to one member."""
        out = self.network_member_outputs(X)
        if self.task == "regression":
            return from_training(out, self.meta.get("target_scaler"))
        return np.concatenate([1 - out, out], axis=-1) if len(self.classes) == 2 else out

    def network_member_outputs(self, X: np.ndarray) -> np.ndarray:
        """Each member's network outputs (K, rows, outputs), float64, uncalibrated, before the
        target transform is undone or the classes named."""
        rows = X.shape[0]
        with np.errstate(over="ignore", invalid="ignore", under="ignore"):  # no lock: see _output
            return self.network.predict_members(padded_rows(X), self.chunk)[:, :rows].astype(np.float64)

    def spread_from_inputs(self, X: np.ndarray) -> np.ndarray:
        """The members' standard deviation (population, ddof 0) of each output (rows, outputs):
        of each class probability, or of each value in the target's units; how much the members
        disagree on a row."""
        return self.member_outputs(X).std(axis=0)

    def values_from_inputs(self, X: np.ndarray) -> np.ndarray:
        out = from_training(self._output(X), self.meta.get("target_scaler"))
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


def _tempered(head: str, a: np.ndarray, temperature: float) -> np.ndarray:
    """A softmax or sigmoid head's output `a` again, from its logits divided by `temperature`."""
    from ..nn.network import head_logits

    with np.errstate(over="ignore", under="ignore"):
        z = head_logits(head, a) / temperature
        if head == "sigmoid":
            return (1.0 / (1.0 + np.exp(-z))).astype(a.dtype)
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return (e / e.sum(axis=1, keepdims=True)).astype(a.dtype)


class TargetView:
    """One target of a multi-target model, read as a single-target model reads: `task`,
    `classes`, `meta` (the model's, with this target's entries), and its predictions from the
    model's outputs (rows, Σ outputs): `block`, `proba`, `values`, `labels`."""

    conformal_scores = None  # sorted (n,): this target's validation scores, when training kept them

    def __init__(self, model: Model, spec: dict):
        self.model, self.spec = model, spec
        self.name, self.task = spec["name"], spec["task"]
        self.classes = spec.get("classes")
        self.start, self.stop = spec["columns"]
        self.path, self.network, self.encoder = model.path, model.network, model.encoder
        shared = {k: v for k, v in model.meta.items() if k not in ("targets", "heads", "threshold", "calibration",
                                                                     "conformal")}
        self.meta = {**shared, **{k: v for k, v in spec.items() if k not in ("name", "columns")}, "target": self.name}

    @property
    def threshold(self) -> float | None:
        """This two-class target's decision threshold saved by `evaluate --choose-threshold
        <target>=RULE --save` (its positive class, classes[1], wins where its probability is at
        least it), or None."""
        return self.spec.get("threshold")

    @property
    def temperature(self) -> float:
        """What this target's logits are divided by (training.calibration), 1.0 uncalibrated."""
        return float((self.spec.get("calibration") or {}).get("temperature", 1.0))

    def block(self, outputs: np.ndarray) -> np.ndarray:
        """This target's columns of the model's outputs (rows, Σ outputs)."""
        return outputs[..., self.start:self.stop]

    def proba(self, outputs: np.ndarray) -> np.ndarray:
        """Class probabilities (rows, classes) of a classification target."""
        out = self.block(outputs)
        return np.concatenate([1 - out, out], axis=-1) if len(self.classes) == 2 else out

    def values(self, outputs: np.ndarray) -> np.ndarray:
        """A regression target's values (rows,) in its own units."""
        return from_training(self.block(outputs), self.spec.get("target_scaler"))[..., 0]

    def labels(self, proba: np.ndarray) -> np.ndarray:
        return np.asarray(self.classes, dtype=object)[proba.argmax(axis=1)]

    def member_outputs(self, X: np.ndarray) -> np.ndarray:
        """Each member's own prediction of this target (K, rows, outputs), float64, as
        `Model.member_outputs` gives one target's: its class probabilities, or its value in its
        units (K, rows, 1). Uncalibrated."""
        out = self.block(self.model.network_member_outputs(X))
        if self.task == "regression":
            return from_training(out, self.spec.get("target_scaler"))
        return np.concatenate([1 - out, out], axis=-1) if len(self.classes) == 2 else out

    def spread_from_inputs(self, X: np.ndarray) -> np.ndarray:
        """The members' standard deviation (population) of this target's outputs (rows, outputs)."""
        return self.member_outputs(X).std(axis=0)
