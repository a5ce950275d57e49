"""One trial (or one cross-validation fold) as a job: a plain function of a dict, run in a
local worker process or as a Ray task. Nothing here prints."""
from __future__ import annotations

import math
import socket
import time
from pathlib import Path

from ..runs.folder import RunFolder
from ..training import Callback


def metric_value(metrics: dict, name: str):
    """The final value of a history column from metrics.json: val_loss -> validation.loss."""
    part, _, key = name.partition("_")
    scores = metrics.get({"val": "validation", "train": "train"}[part]) or {}
    if key not in scores:  # several targets: val_price_r2 -> validation["price.r2"]
        key = next((dotted for i in range(len(key)) if key[i] == "_" and (dotted := f"{key[:i]}.{key[i + 1:]}")
                    in scores), key)
    value = scores.get(key)
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


class _Pruning(Callback):
    """Reports each logged epoch's metric to the Optuna trial and asks whether to stop."""

    def __init__(self, trial, metric: str):
        self.trial, self.metric, self.pruned = trial, metric, False

    def on_epoch_end(self, log):
        value = log.get(self.metric)
        if value is not None and math.isfinite(value):
            self.trial.report(value, int(log["epoch"]))
            self.pruned = self.pruned or self.trial.should_prune()

    def __call__(self) -> bool:  # should_stop
        return self.pruned


def _pruning_trial(prune: dict):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    import optuna

    from .space import pruner

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalFileBackend(prune["journal"]))
    study = optuna.load_study(study_name=prune["study"], storage=storage,
                              pruner=pruner(prune["sweep"], prune["iterations"]))
    return optuna.trial.Trial(study, prune["trial_id"])


def run_job(job: dict) -> dict:
    """Train `job["cfg"]` into `<runs_dir>/<folder>` (with `folds`, one run per fold inside
    it, scored by their mean) and return {state, value, epochs, seconds, node, run, error}."""
    from ..commands.train import RunOptions, train_config
    from ..errors import NnctlError

    start = time.perf_counter()
    out = {"state": "complete", "value": None, "epochs": 0, "seconds": 0.0, "node": job.get("node") or
           socket.gethostname(), "run": str(Path(job["runs_dir"]) / job["folder"]), "error": None}
    metric = job["metric"]["name"]
    watched = {metric: "metric.name"}  # logged every epoch, and scored in metrics.json
    folds = job.get("folds")
    try:
        if folds:
            values, epochs = [], 0
            for i in range(folds):
                options = RunOptions(Path(job["runs_dir"]) / job["folder"], "fold", folder=f"fold_{i}", plot=False)
                result = train_config(job["cfg"], options=options, fold=(i, folds),
                                      dataset=(job.get("datasets") or {}).get(i), metrics=watched)
                values.append(metric_value(result.metrics, metric))
                epochs += result.epochs
            out["fold_values"] = values
            out["value"] = None if None in values else sum(values) / len(values)
            out["epochs"] = epochs
        else:
            pruning = _Pruning(_pruning_trial(job["prune"]), metric) if job.get("prune") else None
            options = RunOptions(job["runs_dir"], "trial", folder=job["folder"], plot=False, callback=pruning,
                                 should_stop=pruning, cache=job.get("cache", True))
            result = train_config(job["cfg"], options=options, dataset=job.get("dataset"),
                                  fold=tuple(job["fold"]) if job.get("fold") else None, metrics=watched)
            out["value"], out["epochs"] = metric_value(result.metrics, metric), result.epochs
            if pruning is not None and pruning.pruned:
                out["state"] = "pruned"
                RunFolder(result.run).update_metrics(status="pruned")  # not "interrupted": nobody stopped it
        if out["value"] is None and out["state"] == "complete":
            out["state"], out["error"] = "failed", f"the run has no {metric} (no validation part?)"
    except NnctlError as exc:
        out["state"], out["error"] = "failed", str(exc).splitlines()[0]
    except MemoryError:
        out["state"], out["error"] = "failed", "out of memory"
    out["seconds"] = time.perf_counter() - start
    return out
