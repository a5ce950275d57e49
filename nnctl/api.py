"""The plain Python API the command line is a thin layer over.

    cfg = load_config("configs/iris.yaml", ["training.iterations=50"])
    run = train_config(cfg, runs_dir="runs").run      # -> Path of the run folder
    predictions = predict_csv(run, "datasets/iris.csv")  # -> DataFrame
    report = evaluate_csv(run, "datasets/iris.csv")      # -> dict of metrics
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .config import dump_config, hidden_activations
from .data import Dataset, load_dataset
from .errors import NnctlError
from .losses import LOSSES, loss_for
from .network import MLP


def architecture(sizes) -> str:
    return " → ".join(str(s) for s in sizes)


def choose_loss(cfg: dict, dataset: Dataset) -> str:
    n_classes = len(dataset.classes) if dataset.classes else None
    loss = loss_for(dataset.task, n_classes, cfg["training"]["loss"])
    if LOSSES[loss].task != dataset.task:
        raise NnctlError(f"training.loss {loss} is for {LOSSES[loss].task}, but this is a {dataset.task} task",
                         "training.loss", "use loss: auto, or set model.task")
    if loss == "binary_cross_entropy" and n_classes != 2:
        raise NnctlError(f"training.loss binary_cross_entropy needs two classes, the target has {n_classes}",
                         "training.loss", "use cross_entropy (or auto)")
    return loss


def build_network(cfg: dict, dataset: Dataset) -> MLP:
    """The config's network for this dataset: fresh from the seed, or from `model.init_from`."""
    sizes = [dataset.n_inputs] + list(cfg["model"]["layers"]) + [dataset.n_outputs]
    _check_model_fits(sizes, cfg, dataset)
    activations = hidden_activations(cfg)
    loss = choose_loss(cfg, dataset)
    dtype = np.dtype(cfg["training"]["dtype"])
    if cfg["model"]["init_from"]:
        return _warm_start(cfg["model"]["init_from"], sizes, activations, loss, dtype)
    return MLP.initialize(sizes, activations, loss, cfg["model"]["init"], cfg["seed"], dtype)


def _check_model_fits(sizes, cfg: dict, dataset: Dataset) -> None:
    """Weights, gradients, two optimizer states, scratch and the float64 draw: about six
    copies of the parameters; plus pre-activations, activations, what activations save for
    backward, and deltas per batch row."""
    from .resources import require_memory

    itemsize = np.dtype(cfg["training"]["dtype"]).itemsize
    params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    n = len(dataset.X_train)
    rows = max(min(cfg["training"]["batch_size"] or n, n), min(n, 65536))  # a batch, or a scoring chunk
    needed = params * itemsize * 6 + 4 * rows * sum(sizes[1:]) * itemsize
    require_memory(needed, f"the network {architecture(sizes)} ({params:,} parameters)", "model.layers",
                   "use smaller layers (model.layers) or a smaller batch_size")


def _warm_start(path, sizes, activations, loss, dtype) -> MLP:
    from .model import load_model

    source = load_model(path).network
    if len(source.weights) != len(sizes) - 1:
        raise NnctlError(f"model.init_from has {len(source.weights)} layers, the config builds {len(sizes) - 1}",
                         "model.init_from", f"the config's architecture is {architecture(sizes)}")
    for i, W in enumerate(source.weights):
        if W.shape != (sizes[i], sizes[i + 1]):
            raise NnctlError(f"model.init_from layer {i} has weights {W.shape[0]}×{W.shape[1]}, "
                             f"the config needs {sizes[i]}×{sizes[i + 1]}", "model.init_from",
                             f"the config's architecture is {architecture(sizes)}")
    return MLP([W.astype(dtype) for W in source.weights], [b.astype(dtype) for b in source.biases],
               activations, loss)


def train_config(cfg: dict, runs_dir="runs", name: str = "run", callback=None, should_stop=None,
                 plot: bool = True, cache: bool = True):
    """Train the resolved config and save a run folder; returns the TrainResult, whose `run`
    is the folder's path."""
    from .model import build_meta, save_model
    from .runs import atomic_run_folder, ensure_writable, write_history, write_json
    from .trainer import train

    runs_dir = ensure_writable(runs_dir)
    dataset = load_dataset(cfg, cache=cache)
    network = build_network(cfg, dataset)
    with atomic_run_folder(runs_dir, name) as run:
        result = train(network, dataset, cfg["training"], seed=cfg["seed"], callback=callback,
                       should_stop=should_stop)
        tmp = run["tmp"]
        save_model(tmp / "model.npz", network, build_meta(network, dataset, cfg))
        (tmp / "config.yaml").write_text(dump_config(cfg))
        write_history(tmp / "history.csv", result.history)
        metrics = {**result.metrics, "task": dataset.task, "architecture": architecture(network.sizes),
                   "metric": "accuracy" if dataset.task == "classification" else "r2",
                   "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
        write_json(tmp / "metrics.json", metrics)
        if plot:
            from .plot import try_plot_run

            try_plot_run(tmp, result.history, name)
    result.run = run["final"]
    return result


PREDICT_CHUNK_CELLS = 20_000_000  # cells parsed at a time: about 160 MB as float64


def _chunks(data_path, columns, chunk_rows=None):
    """The CSV in chunks of rows, sized by its column count so memory stays bounded however
    long or wide the file is."""
    from .csvfile import read_csv, sniff

    sniffed = sniff(Path(data_path), None)
    if chunk_rows is None:
        chunk_rows = max(1000, PREDICT_CHUNK_CELLS // max(len(sniffed[2]), 1))
    return read_csv(data_path, None, columns=columns, chunksize=chunk_rows, sniffed=sniffed)


def predict_frames(model, data_path, proba: bool = False, chunk_rows: int | None = None):
    """DataFrames of predictions for the CSV, one per chunk of rows: `prediction` (original
    labels, or numbers for regression) and with `proba` one `p_<class>` column per class.
    Columns are matched by name; extra columns are ignored, missing ones are an error."""
    import pandas as pd

    where = str(data_path)
    for chunk in _chunks(data_path, model.encoder.features, chunk_rows=chunk_rows):
        chunk.columns = [str(c).strip() for c in chunk.columns]
        X = model.inputs(chunk, where)
        if model.task == "regression":
            values = model.values_from_inputs(X)
            frame = pd.DataFrame({"prediction": values} if values.ndim == 1 else
                                 {f"prediction_{i}": values[:, i] for i in range(values.shape[1])})
        else:
            p = model.proba_from_inputs(X)
            frame = pd.DataFrame({"prediction": pd.Series(model.labels(p), dtype=object)})
            if proba:
                for i, c in enumerate(model.classes):
                    frame[f"p_{c}"] = p[:, i]
        yield frame


def predict_csv(model_path, data_path, proba: bool = False):
    """All predictions for a CSV as one DataFrame (see `predict_frames`)."""
    import pandas as pd

    from .model import load_model

    model = load_model(model_path)
    frames = list(predict_frames(model, data_path, proba))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"prediction": []})


def evaluate_csv(model_path, data_path, chunk_rows: int | None = None) -> dict:
    """Every metric of the model on a labelled CSV (scikit-learn's definitions): for
    classification accuracy, balanced_accuracy, precision, recall, f1 (macro), log_loss and the
    confusion matrix with its labels; for regression mse, rmse, mae, r2."""
    from .encoding import category_label
    from .metrics import classification_report, regression_report
    from .model import load_model

    model = load_model(model_path)
    target = model.meta["target"]
    where = str(data_path)
    truths, outputs = [], []
    index = {category_label(c): i for i, c in enumerate(model.classes or [])}
    for chunk in _chunks(data_path, list(dict.fromkeys(model.encoder.features + [target])), chunk_rows=chunk_rows):
        chunk.columns = [str(c).strip() for c in chunk.columns]
        if chunk[target].isna().any():
            raise NnctlError(f"target column '{target}' has missing values", where, "drop those rows to evaluate")
        X = model.inputs(chunk, where)
        if model.task == "regression":
            truths.append(chunk[target].to_numpy(dtype=np.float64))
            outputs.append(model.values_from_inputs(X))
        else:
            keys = [category_label(v) for v in chunk[target]]
            unknown = [k for k in keys if k not in index]
            if unknown:
                raise NnctlError(f"label '{unknown[0]}' in column '{target}' is not a class the model knows", where,
                                 f"its classes: {', '.join(map(str, model.classes))}")
            truths.append(np.array([index[k] for k in keys], dtype=np.int64))
            outputs.append(model.proba_from_inputs(X))
    if not truths:
        raise NnctlError("data file has no rows to evaluate", where)
    y, out = np.concatenate(truths), np.concatenate(outputs)
    report = {"task": model.task, "rows": int(len(y))}
    if model.task == "regression":
        return {**report, **regression_report(y, out)}
    metrics = classification_report(y, out.argmax(axis=1), out, len(model.classes))
    return {**report, **metrics, "labels": model.classes}


def check_thresholds(report: dict, fail_under: list[str], fail_over: list[str]) -> list[str]:
    """Messages for every missed threshold; unknown metric names are an NnctlError."""
    from .metrics import CLASSIFICATION_METRICS, REGRESSION_METRICS

    valid = CLASSIFICATION_METRICS if report["task"] == "classification" else REGRESSION_METRICS
    missed = []
    for flag, specs in (("--fail-under", fail_under), ("--fail-over", fail_over)):
        for spec in specs:
            name, _, raw = spec.partition("=")
            name = name.strip()
            try:
                limit = float(raw)
            except ValueError:
                raise NnctlError(f"{flag} expects METRIC=NUMBER, got '{spec}'", flag, f"e.g. {flag} {valid[0]}=0.9")
            if name not in valid:
                from .errors import did_you_mean

                raise NnctlError(f"unknown metric '{name}'{did_you_mean(name, valid)}", flag,
                                 f"valid metrics for {report['task']}: {', '.join(valid)}")
            value = report[name]
            if flag == "--fail-under" and not value >= limit:
                missed.append(f"{name} {value:.4f} is under {limit:g}")
            if flag == "--fail-over" and not value <= limit:
                missed.append(f"{name} {value:.4f} is over {limit:g}")
    return missed
