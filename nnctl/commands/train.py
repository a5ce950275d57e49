"""`nnctl train`: the resolved config -> dataset -> network -> training -> a run folder; and
`nnctl train --resume RUN`: the same, continuing a run from its checkpoint.

    cfg = load_config("configs/iris.yaml", ["training.iterations=50"])
    run = train_config(cfg, runs_dir="runs").run                       # -> Path of the run folder
    more = resume_run(run, ["training.iterations=100"], runs_dir="runs").run
"""
from __future__ import annotations

import copy
import time
from pathlib import Path

from ..atomic import naming_errors
from ..config import dump_config, resolve
from ..config.yamlfile import parse_override, set_override
from ..data import load_dataset
from ..errors import NnctlError, NothingTrained
from ..runs.folder import (atomic_run_folder, check_name, ensure_writable, write_diagnostics, write_history,
                           write_json, write_predictions, write_text)
from ..runs.model import Model, build_meta, save_model
from ..training import train
from ..training.build import architecture, build_network
from ..training.checkpoint import Checkpointer, data_digest, load_checkpoint
from ..training.scoring import metric_name
from .plot import try_plot_run
from .predict import evaluate

NOTHING = "interrupted before the first epoch completed: nothing was trained, no run was saved"
# what `--resume` may change: how long to train and how it is shown; anything else would make
# the continued run a different one than the run it continues
RESUMABLE = (("training", "iterations"), ("training", "log_every"), ("training", "display_rows"),
             ("training", "early_stopping", "patience"))


def train_config(cfg: dict, runs_dir="runs", name: str = "run", callback=None, should_stop=None,
                 plot: bool = True, cache: bool = True, resume=None, fold=None, dataset=None, folder=None,
                 metrics: dict | None = None):
    """Train the resolved config and save a run folder; returns the TrainResult, whose `run`
    is the folder's path. An interrupt (`should_stop()`) before the first epoch completes saves
    nothing and raises NothingTrained. `resume` is `(arrays, meta, path)` of a checkpoint to
    continue from (see `resume_run`); `fold` (i, K) validates on fold i of K (see
    `load_dataset`); `dataset`, when the caller has prepared it already (a sweep on Ray);
    `folder`: the run folder's exact name inside `runs_dir`, instead of `<name>-<timestamp>`;
    `metrics`: more history columns to log, {name: the key that asks for them} (see `train`)."""
    check_name(name)
    runs_dir = ensure_writable(runs_dir)
    if dataset is None:
        dataset = load_dataset(cfg, cache=cache, fold=fold)
    network = build_network(cfg, dataset, fresh=resume is not None)
    every = cfg["training"]["checkpoint_every"]
    digest = data_digest(dataset) if every is not None or resume is not None else None
    if resume is not None and digest != resume[1]["data_digest"]:
        raise NnctlError("the data changed since that run trained on it: resuming needs the same data",
                         cfg["data"]["path"], "restore the file, or start a new run (model.init_from) on the new data")
    if should_stop is not None and should_stop():
        raise NothingTrained(NOTHING)
    created = time.strftime("%Y-%m-%dT%H:%M:%S")
    with atomic_run_folder(runs_dir, name, folder) as run:
        tmp = run["tmp"]
        write_text(tmp / "config.yaml", dump_config(cfg))  # first: a killed run still says what it was
        checkpointer = None
        if every is not None:
            checkpointer = Checkpointer(tmp, every, {"config": cfg, "name": name, "data_digest": digest,
                                                     "created": created})
        result = train(network, dataset, cfg["training"], seed=cfg["seed"], callback=callback,
                       should_stop=should_stop, resume=resume, checkpointer=checkpointer, metrics=metrics)
        if resume is None and result.status == "interrupted" and result.epochs == 0:
            raise NothingTrained(NOTHING)
        meta = build_meta(network, dataset, cfg)
        with naming_errors(tmp / "model.npz"):
            save_model(tmp / "model.npz", network, meta)
        model = Model(network, meta, tmp / "model.npz")
        write_history(tmp / "history.csv", result.history)
        write_diagnostics(tmp / "diagnostics.csv", result.diagnostics)
        if len(dataset.X_val):
            write_predictions(tmp / "validation.csv", model, dataset.X_val, dataset.y_val)
        if cfg["data"]["test_path"]:  # scored once, with the final model, as `nnctl evaluate` would
            result.metrics["test"] = evaluate(model, cfg["data"]["test_path"], given_as="data.test_path")
        metrics = {**result.metrics, "task": dataset.task, "architecture": architecture(network.sizes),
                   "metric": metric_name(dataset.task), "created": created}
        if fold is not None:
            metrics["fold"] = {"index": fold[0], "folds": fold[1]}
        if resume is not None:
            metrics["resumed_from"] = str(resume[2])
        write_json(tmp / "metrics.json", metrics)
    result.run = run["final"]
    if plot:  # an extra, drawn once the run is complete: a kill while drawing strands nothing
        try_plot_run(result.run, result.history, name)
    return result


def resume_config(meta: dict, overrides, where: str) -> dict:
    """The checkpoint's config with `--set` overrides of the keys that may change; any other
    difference is an NnctlError naming the key."""
    saved = meta["config"]
    raw, set_paths = copy.deepcopy(saved), []
    for text in overrides:
        keys, value = parse_override(text)
        set_override(raw, keys, value)
        set_paths.append(keys)
    cfg = resolve(raw, base_dir=Path.cwd(), source=where, set_paths=set_paths)
    for keys in _differences(saved, cfg):
        if keys not in RESUMABLE:
            allowed = ", ".join(".".join(k) for k in RESUMABLE)
            raise NnctlError(f"{'.'.join(keys)} cannot change when resuming", f"--set {'.'.join(keys)}",
                             f"only {allowed} may; to change the data, architecture or optimizer, "
                             "start a new run from this one's weights with model.init_from")
    completed, iterations = meta["completed"], cfg["training"]["iterations"]
    if iterations <= completed:
        raise NnctlError(f"that run has already trained {completed} epochs (training.iterations is {iterations})",
                         where, f"--set training.iterations=N with N above {completed} to train on")
    waited = (meta.get("stopper") or {}).get("waited", 0)
    patience = (cfg["training"]["early_stopping"] or {}).get("patience", 0)
    if meta.get("status") == "early_stopped" and waited >= patience:
        raise NnctlError(f"that run stopped early at epoch {completed}: {waited} epochs without improvement "
                         f"used up its patience ({patience})", where,
                         f"--set training.early_stopping.patience=N with N above {waited} to train on")
    return cfg


def _differences(a, b, keys: tuple = ()) -> list[tuple]:
    if isinstance(a, dict) and isinstance(b, dict):
        found = []
        for k in dict.fromkeys(list(a) + list(b)):
            found += _differences(a.get(k), b.get(k), keys + (k,))
        return found
    return [] if a == b else [keys]


def resume_run(run, overrides=(), runs_dir="runs", name: str | None = None, callback=None, should_stop=None,
               plot: bool = True, cache: bool = True):
    """Continue `run` (a run folder, complete or killed) from its checkpoint in a new run folder;
    `run` itself is only read. Returns the TrainResult like `train_config`."""
    arrays, meta = load_checkpoint(run)
    cfg = resume_config(meta, overrides, str(run))
    return train_config(cfg, runs_dir, meta["name"] if name is None else name, callback, should_stop, plot, cache,
                        resume=(arrays, meta, Path(run)))
