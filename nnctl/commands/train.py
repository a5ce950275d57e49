"""`nnctl train`: the resolved config -> dataset -> network -> training -> a run folder.

    cfg = load_config("configs/iris.yaml", ["training.iterations=50"])
    run = train_config(cfg, runs_dir="runs").run      # -> Path of the run folder
"""
from __future__ import annotations

import time

from ..config import dump_config
from ..data import load_dataset
from ..errors import NothingTrained
from ..runs.folder import atomic_run_folder, check_name, ensure_writable, write_history, write_json
from ..runs.model import build_meta, save_model
from ..training import train
from ..training.build import architecture, build_network
from ..training.scoring import metric_name
from .plot import try_plot_run


def train_config(cfg: dict, runs_dir="runs", name: str = "run", callback=None, should_stop=None,
                 plot: bool = True, cache: bool = True):
    """Train the resolved config and save a run folder; returns the TrainResult, whose `run`
    is the folder's path. An interrupt (`should_stop()`) before the first epoch completes saves
    nothing and raises NothingTrained."""
    check_name(name)
    runs_dir = ensure_writable(runs_dir)
    dataset = load_dataset(cfg, cache=cache)
    network = build_network(cfg, dataset)
    nothing = "interrupted before the first epoch completed: nothing was trained, no run was saved"
    if should_stop is not None and should_stop():
        raise NothingTrained(nothing)
    with atomic_run_folder(runs_dir, name) as run:
        result = train(network, dataset, cfg["training"], seed=cfg["seed"], callback=callback,
                       should_stop=should_stop)
        if result.status == "interrupted" and result.epochs == 0:
            raise NothingTrained(nothing)
        tmp = run["tmp"]
        save_model(tmp / "model.npz", network, build_meta(network, dataset, cfg))
        (tmp / "config.yaml").write_text(dump_config(cfg))
        write_history(tmp / "history.csv", result.history)
        metrics = {**result.metrics, "task": dataset.task, "architecture": architecture(network.sizes),
                   "metric": metric_name(dataset.task),
                   "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
        write_json(tmp / "metrics.json", metrics)
        if plot:
            try_plot_run(tmp, result.history, name)
    result.run = run["final"]
    return result
