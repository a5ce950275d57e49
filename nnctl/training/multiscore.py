"""Several targets: their targets in the loss's form, their class weights, and each target's
loss and metrics on a part of the data.

History columns are `val_<target>_<metric>` (`val_price_r2`, `val_condition_accuracy`); each
target's accuracy or R² is always logged, its loss and the EXTRA_METRICS when a key asks for
them. `metrics.json` and `evaluate --json` name the same values `<target>.<metric>`.
"""
from __future__ import annotations

import numpy as np

from ..config.spec import TARGET_METRICS
from ..errors import NnctlError
from ..nn.losses import LOSSES
from ..nn.metrics import r2

EXTRA = ("roc_auc", "average_precision", "f1", "balanced_accuracy")


def head_task(head) -> str:
    return LOSSES[head.loss].task


def own_metric(head) -> str:
    return "accuracy" if head_task(head) == "classification" else "r2"


def column(target: str, metric: str) -> str:
    return f"val_{target}_{metric}"


def main_columns(heads) -> list[str]:
    """The columns logged every measured epoch: each target's accuracy or R², in order."""
    return [column(h.name, own_metric(h)) for h in heads]


def parse_column(name: str, heads) -> tuple | None:
    """(head index, metric) of a `val_<target>_<metric>` column of these heads, or None."""
    for i, h in enumerate(heads):
        for metric in TARGET_METRICS:
            if name == column(h.name, metric):
                return i, metric
    return None


def _task_has(task: str, metric: str) -> bool:
    """Whether a target of `task` logs `metric`: every target its loss, a regression R² alone."""
    return metric == "loss" or (metric == "r2") == (task == "regression")


def check_column(name: str, dataset, key: str, heads) -> None:
    """NnctlError naming `key` when `name` is not a column these targets can log."""
    if name in ("train_loss", "val_loss"):
        return
    found = parse_column(name, heads)
    names = ", ".join(h.name for h in heads)
    if found is None:
        raise NnctlError(f"{name} is not a column of these targets ({names})", key,
                         f"use val_loss, or val_<target>_<metric>, e.g. {main_columns(heads)[0]}")
    i, metric = found
    task = head_task(heads[i])
    target = dataset.targets[i]
    if not _task_has(task, metric):
        fits = [m for m in TARGET_METRICS if _task_has(task, m)
                and (m != "average_precision" or len(target.classes or ()) == 2)]
        raise NnctlError(f"{name}: {metric} is not a metric of the {task} target '{target.name}'", key,
                         f"use one of {', '.join(column(target.name, m) for m in fits)}")
    if metric == "average_precision" and len(target.classes) != 2:
        raise NnctlError(f"{name} needs two classes, but '{target.name}' has {len(target.classes)}", key,
                         "use roc_auc, f1 or balanced_accuracy")


def extra_columns(watched: dict, heads) -> list[str]:
    """The watched columns beyond main_columns, in the heads' order."""
    main = set(main_columns(heads))
    return [name for name in watched if name not in main and parse_column(name, heads) is not None]


def loss_targets(network, y: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """(rows, Σ outputs) of (rows, targets) class indices and values: each block one-hot,
    a 0/1 column or the value, as its head's loss takes it; into `out` when given (a streamed
    window's buffer)."""
    t = np.zeros((len(y), network.n_outputs), dtype=network.dtype) if out is None else out
    if out is not None:
        t[:] = 0
    for j, h in enumerate(network.heads):
        if h.loss == "cross_entropy":
            t[np.arange(len(y)), h.start + y[:, j].astype(np.int64)] = 1
        else:
            t[:, h.start] = y[:, j]
    return t


def smooth_heads(network, t: np.ndarray, epsilon: float) -> np.ndarray:
    """Label smoothing of each classification head's block of loss-form targets `t` (a copy)."""
    from ..nn.losses import smooth_labels

    t = t.copy()
    for h in network.heads:
        if head_task(h) == "classification":
            classes = 2 if h.loss == "binary_cross_entropy" else h.stop - h.start
            t[:, h.start:h.stop] = smooth_labels(t[:, h.start:h.stop], epsilon, classes)
    return t


def multi_row_weights(dataset, y: np.ndarray, dtype, network, owned=None, out=None) -> np.ndarray | None:
    """(rows, Σ outputs): each block its target's class weight of the row; None when no target
    has class weights. `owned`: `head_class_weights`, when the caller has them; `out`: the
    array to fill (a streamed window's buffer)."""
    owned = head_class_weights(dataset, network) if owned is None else owned
    if all(weights is None for _, _, weights in owned):
        return None
    w = np.ones((len(y), network.n_outputs), dtype=dtype) if out is None else out
    if out is not None:
        w[:] = 1
    for j, h, weights in owned:
        if weights is not None:
            w[:, h.start:h.stop] = weights[y[:, j].astype(np.int64)][:, None]
    return w


def head_class_weights(dataset, network) -> list:
    """(target index, head, its class weights or None) per target."""
    from .scoring import class_weights

    return [(j, h, class_weights(t.class_weight, _Single(t, dataset))) for j, (h, t)
            in enumerate(zip(network.heads, dataset.targets))]


class _Single:
    """One target of a multi-target dataset, as class_weights reads a dataset: a streamed one's
    class counts come from its shards' targets, read one shard at a time."""

    def __init__(self, target, dataset):
        self.task, self.classes, self.target = target.task, target.classes, target.name
        j = [t.name for t in dataset.targets].index(target.name)
        self.counts = None
        if target.task == "classification" and target.class_weight == "balanced":
            n = len(target.classes)  # counted a shard at a time (data.source: in memory, one)
            self.counts = {"train": sum((np.bincount(y[:, j].astype(np.int64), minlength=n)
                                         for y in dataset.parts["train"].targets()), np.zeros(n, dtype=np.int64))}


def outputs_of(network, X: np.ndarray, ws=None) -> np.ndarray:
    """(rows, Σ outputs): the output activations, the members' mean with members."""
    from .scoring import scoring_chunk

    ws = network.workspace() if ws is None else ws
    return network.predict_output(X, scoring_chunk(ws), ws)


def score_multi(network, X: np.ndarray, y: np.ndarray, t=None, extra=(), ws=None) -> tuple[float, dict]:
    """(the summed loss Σ λ_t·L_t, {(target, metric): value}) on (X, y): each target's own
    metric, and the `extra` columns asked for (`val_<target>_<metric>`)."""
    heads = network.heads
    if len(X) == 0:
        return float("nan"), {(h.name, own_metric(h)): float("nan") for h in heads}
    t = loss_targets(network, y) if t is None else t
    a = outputs_of(network, X, ws)
    z = network.output_logits(a)
    parts = network.loss.parts(z, a, t)
    loss = float(np.dot(network.loss.weights, parts))
    values = {}
    asked = {parse_column(name, heads) for name in extra}
    for i, h in enumerate(heads):
        block, truth = a[:, h.start:h.stop], t[:, h.start:h.stop]
        if head_task(h) == "regression":
            values[(h.name, "r2")] = r2(truth, block)
        else:
            predicted = block.argmax(axis=1) if block.shape[1] > 1 else (block[:, 0] > 0.5)
            values[(h.name, "accuracy")] = float(np.mean(predicted == y[:, i]))
        _asked(values, i, h, asked, parts, lambda: (y[:, i].astype(np.int64), block))
    return loss, values


def _asked(values: dict, i: int, head, asked: set, parts, labelled) -> None:
    """Into `values`, the `extra` columns asked of head i: its loss (`parts[i]`), or a ranking or
    counting metric of `labelled()`'s (class indices, outputs)."""
    for j, metric in asked:
        if j != i:
            continue
        if metric == "loss":
            values[(head.name, "loss")] = float(parts[i])
        elif metric in EXTRA:
            from .scoring import extra_scores

            labels, outputs = labelled()
            values[(head.name, metric)] = extra_scores([f"val_{metric}"], labels, outputs)[f"val_{metric}"]


def score_multi_chunks(network, chunks, extra=(), ws=None) -> tuple[float, dict]:
    """`score_multi` over a part given as (X, y) chunks (a streamed dataset's shards): each
    head's loss and accuracy summed chunk by chunk, R² from per-head sums (Σt, Σt², Σ(t - a)²),
    as scoring.score_chunks does for one target. Only the heads an `extra` ranking or counting
    metric is asked of keep their outputs and labels."""
    heads = network.heads
    asked = {parse_column(name, heads) for name in extra}
    keep = {i for i, metric in asked if metric in EXTRA}
    n, parts = 0, np.zeros(len(heads))
    correct = np.zeros(len(heads))
    sums = [np.zeros(3) for _ in heads]
    kept = {i: [] for i in keep}
    for X, y in chunks:
        if not len(X):
            continue
        t = loss_targets(network, y)
        a = outputs_of(network, X, ws)
        parts += np.array(network.loss.parts(network.output_logits(a), a, t)) * len(X)
        for i, h in enumerate(heads):
            block = a[:, h.start:h.stop]
            if head_task(h) == "regression":
                truth = t[:, h.start].astype(np.float64)
                sums[i] += [truth.sum(), (truth ** 2).sum(), ((truth - block[:, 0]) ** 2).sum()]
            else:
                predicted = block.argmax(axis=1) if block.shape[1] > 1 else (block[:, 0] > 0.5)
                correct[i] += np.count_nonzero(predicted == y[:, i])
            if i in kept:
                kept[i].append((y[:, i].astype(np.int64), block.copy()))
        n += len(X)
    if n == 0:
        return float("nan"), {(h.name, own_metric(h)): float("nan") for h in heads}
    parts /= n
    values = {}
    for i, h in enumerate(heads):
        if head_task(h) == "regression":
            total, squares, residual = sums[i]
            ss_tot = squares - total ** 2 / n
            values[(h.name, "r2")] = float(1 - residual / ss_tot) if ss_tot > 0 else 1.0 if residual == 0 else 0.0
        else:
            values[(h.name, "accuracy")] = float(correct[i] / n)
        _asked(values, i, h, asked, parts, lambda i=i: tuple(np.concatenate(a) for a in zip(*kept[i])))
    return float(np.dot(network.loss.weights, parts)), values


def history_values(values: dict) -> dict:
    """{val_<target>_<metric>: value} of score_multi's values."""
    return {column(target, metric): v for (target, metric), v in values.items()}


def report_values(values: dict) -> dict:
    """{<target>.<metric>: value}: metrics.json's and evaluate's names."""
    return {f"{target}.{metric}": v for (target, metric), v in values.items()}
