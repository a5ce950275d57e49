"""The training loop: epochs of shuffled mini-batches, forward -> loss -> backward -> update.

It reports through a small callback interface (`Callback`), so the live table, plain log
lines, JSON lines and tests all watch the same loop. Validation, history and early stopping
live here; nothing here prints.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from .errors import NnctlError
from .metrics import r2
from .network import MLP
from .optimizers import learning_rate, make_optimizer


class Callback:
    """What a reporter may implement; every method is optional."""

    def on_train_begin(self, info: dict) -> None: ...

    def on_epoch_end(self, log: dict) -> None: ...

    def on_train_end(self, result: "TrainResult") -> None: ...


@dataclass
class TrainResult:
    history: list[dict]
    status: str  # completed | early_stopped | interrupted
    best_epoch: int | None
    seconds: float
    metrics: dict = field(default_factory=dict)
    run: object = None  # the run folder's Path, once saved


def targets_for(network: MLP, y: np.ndarray) -> np.ndarray:
    """Targets in the form the network's loss takes: class indices for cross_entropy, a float
    column of 0/1 for binary_cross_entropy, floats for regression."""
    if network.loss_name == "cross_entropy":
        return y.astype(np.int64, copy=False)
    return y.astype(network.dtype, copy=False).reshape(len(y), -1)


def metric_name(task: str) -> str:
    return "accuracy" if task == "classification" else "r2"


CHUNK = 65536  # rows per forward pass when scoring, to bound memory


def score(network: MLP, task: str, X: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(loss, accuracy or R²) of the network on (X, y): one forward pass, in chunks of rows."""
    if len(X) == 0:
        return float("nan"), float("nan")
    t = targets_for(network, y)
    total, correct, outputs = 0.0, 0, []
    for s in range(0, len(X), CHUNK):
        out = network.forward(X[s:s + CHUNK])
        total += network.loss_value(t[s:s + CHUNK]) * len(out)
        if task == "regression":
            outputs.append(out.copy())
        else:
            predicted = out.argmax(axis=1) if out.shape[1] > 1 else (out[:, 0] > 0.5)
            correct += int(np.count_nonzero(predicted == y[s:s + CHUNK]))
    if task == "regression":
        return total / len(X), r2(t, np.concatenate(outputs))
    return total / len(X), correct / len(X)


class _EarlyStopping:
    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.maximize = cfg["metric"] in ("val_accuracy", "val_r2")
        self.best = -math.inf if self.maximize else math.inf
        self.best_epoch = None
        self.best_params = None
        self.waited = 0

    def update(self, log: dict, network: MLP) -> bool:
        """Record the epoch; True when training should stop."""
        value = log[self.cfg["metric"]]
        gain = value - self.best if self.maximize else self.best - value
        if gain > self.cfg["min_delta"] or self.best_epoch is None:
            self.best, self.best_epoch, self.waited = value, log["epoch"], 0
            if self.cfg["restore_best"]:
                self.best_params = network.get_params()
            return False
        self.waited += 1
        return self.waited >= self.cfg["patience"]


def train(network: MLP, dataset, training: dict, seed: int = 0, callback: Callback | None = None,
          should_stop=None) -> TrainResult:
    """Train `network` in place on `dataset` under the resolved `training` config.

    `should_stop()` is polled after every batch (an interrupt sets it): training then ends after
    the current batch with status `interrupted`. A loss that becomes NaN or infinite raises
    NnctlError suggesting a lower learning rate."""
    callback = callback or Callback()
    X, y = dataset.X_train, targets_for(network, dataset.y_train)
    rows = len(X)
    batch = min(training["batch_size"] or rows, rows)
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(2)[1])
    optimizer = make_optimizer(network.params, training)
    has_val = len(dataset.X_val) > 0
    stopper = _EarlyStopping(training["early_stopping"]) if training["early_stopping"] else None
    callback.on_train_begin({"epochs": training["iterations"], "rows": rows, "batch_size": batch,
                             "batches": -(-rows // batch), "validation": has_val,
                             "metric": f"val_{metric_name(dataset.task)}",
                             "task": dataset.task})
    start = time.perf_counter()
    # overflow shows up as a non-finite loss, reported below with advice; numpy's own
    # RuntimeWarnings would only add noise on stderr
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        history, status = _epochs(network, dataset, training, optimizer, rng, X, y, batch, callback,
                                  should_stop, stopper, start)
    if stopper and stopper.best_params is not None and status != "interrupted":
        network.set_params(stopper.best_params)
    best_epoch = stopper.best_epoch if stopper else _best_epoch(history, "val_loss" if has_val else "train_loss")
    result = TrainResult(history, status, best_epoch, time.perf_counter() - start)
    result.metrics = final_metrics(network, dataset, result)
    callback.on_train_end(result)
    return result


def final_metrics(network: MLP, dataset, result: TrainResult) -> dict:
    name = metric_name(dataset.task)
    metrics = {"status": result.status, "epochs": len(result.history), "best_epoch": result.best_epoch,
               "seconds": round(result.seconds, 4)}
    for part, X, y in (("train", dataset.X_train, dataset.y_train), ("validation", dataset.X_val, dataset.y_val)):
        if len(X):
            loss, value = score(network, dataset.task, X, y)
            metrics[part] = {"loss": loss, name: value, "rows": len(X)}
    return metrics


def _best_epoch(history: list[dict], key: str) -> int | None:
    finite = [row for row in history if math.isfinite(row[key])]
    return min(finite, key=lambda row: row[key])["epoch"] if finite else None


def _epochs(network, dataset, training, optimizer, rng, X, y, batch, callback, should_stop, stopper, start):
    """Run the epochs; returns (history, status)."""
    rows = len(X)
    has_val = len(dataset.X_val) > 0
    metric = f"val_{metric_name(dataset.task)}"
    # one contiguous buffer per epoch: batches are then views, not gathered copies
    X_epoch, y_epoch = (np.empty_like(X), np.empty_like(y)) if training["shuffle"] else (X, y)
    history = []
    for epoch in range(training["iterations"]):
        lr = learning_rate(training, epoch)
        if training["shuffle"]:
            order = rng.permutation(rows)
            np.take(X, order, axis=0, out=X_epoch)
            np.take(y, order, axis=0, out=y_epoch)
        total, interrupted = 0.0, False
        for s in range(0, rows, batch):
            xb, yb = X_epoch[s:s + batch], y_epoch[s:s + batch]
            network.forward(xb)
            loss = network.loss_value(yb)
            if not math.isfinite(loss):
                raise NnctlError(f"training diverged: the loss became {loss} in epoch {epoch + 1}",
                                 "training.learning_rate",
                                 f"lower training.learning_rate (now {training['learning_rate']:g}), "
                                 "or scale the data (data.scale: standard)")
            total += loss * len(xb)
            network.backward(yb)
            optimizer.step(network.grads, lr)
            if should_stop is not None and should_stop():
                interrupted = True
                break
        if interrupted:
            return history, "interrupted"
        log = {"epoch": epoch + 1, "train_loss": total / rows}
        if has_val:
            log["val_loss"], log[metric] = score(network, dataset.task, dataset.X_val, dataset.y_val)
        log["learning_rate"] = lr
        log["seconds"] = time.perf_counter() - start
        history.append(log)
        callback.on_epoch_end(log)
        if stopper and stopper.update(log, network):
            return history, "early_stopped"
    return history, "completed"
