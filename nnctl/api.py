"""The plain Python API the command line is a thin layer over.

    cfg = load_config("configs/iris.yaml", ["training.iterations=50"])
    run = train_config(cfg, runs_dir="runs")          # -> Path of the run folder
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
    activations = hidden_activations(cfg)
    loss = choose_loss(cfg, dataset)
    dtype = np.dtype(cfg["training"]["dtype"])
    if cfg["model"]["init_from"]:
        return _warm_start(cfg["model"]["init_from"], sizes, activations, loss, dtype)
    return MLP.initialize(sizes, activations, loss, cfg["model"]["init"], cfg["seed"], dtype)


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
                 plot: bool = True) -> Path:
    """Train the resolved config and save a run folder; returns its path."""
    from .model import build_meta, save_model
    from .runs import atomic_run_folder, ensure_writable, write_history, write_json
    from .trainer import train

    runs_dir = ensure_writable(runs_dir)
    dataset = load_dataset(cfg)
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

            try_plot_run(tmp, result.history)
    return run["final"]
