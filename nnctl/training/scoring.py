"""Targets in the loss's form, and a network's loss and metric on a part of the data."""
from __future__ import annotations

import numpy as np

from ..config.typed import TrainingConfig
from ..errors import NnctlError
from ..nn.network import CHUNK, Network
from ..resources import chunk_rows


def metric_name(task: str) -> str:
    """The metric logged beside the loss: accuracy for classification, R² for regression."""
    return "accuracy" if task == "classification" else "r2"


def metric_column(dataset) -> str:
    """The history column of the metric logged beside the loss: val_accuracy or val_r2; with
    several targets, the first target's (val_price_r2)."""
    if getattr(dataset, "targets", None) is not None:
        from .multiscore import main_columns

        return main_columns(dataset_heads(dataset))[0]
    return f"val_{metric_name(dataset.task)}"


def targets_for(network: Network, y: np.ndarray) -> np.ndarray:
    """Targets in the form the network's loss takes: one-hot rows for cross_entropy, a column
    of 0/1 for binary_cross_entropy, floats for regression — all (rows, outputs). Several
    targets: each head's block in its form, side by side (multiscore.loss_targets)."""
    if network.heads is not None:
        from .multiscore import loss_targets

        return loss_targets(network, y)
    if network.loss_name == "cross_entropy":
        onehot = np.zeros((len(y), network.n_outputs), dtype=network.dtype)
        onehot[np.arange(len(y)), y.astype(np.int64, copy=False)] = 1
        return onehot
    return y.astype(network.dtype, copy=False).reshape(len(y), -1)


def scoring_chunk(ws) -> int:
    """Rows per forward pass when scoring in the workspace `ws`: CHUNK, fewer when their buffers
    would pass the memory budget's share for them (`resources.chunk_rows`). The training loop's
    workspace counts backward's arrays too: a chunk larger than its batches grows them as well.
    Worked out once per workspace (and once more when backward's arrays join it): a training loop
    that scores every epoch does not read the memory budget every epoch."""
    backward = ws.backward_ready
    rows = ws.memo.get(("scoring_chunk", backward))
    if rows is None:
        rows = ws.memo[("scoring_chunk", backward)] = chunk_rows(ws.row_bytes(backward),
                                                                 ws.row_bytes(backward, widest=True), CHUNK)
    return rows


def score(network: Network, task: str, X: np.ndarray, y: np.ndarray, targets=None) -> tuple[float, float]:
    """(loss, accuracy or R²) of the network on (X, y), X: (rows, inputs); one forward pass in
    chunks of rows. `targets` is `targets_for(network, y)`, when the caller already has it."""
    loss, value, _ = score_with(network, task, X, y, targets)
    return loss, value


def _scored(network: Network, out: np.ndarray, t: np.ndarray, ws) -> tuple[float, np.ndarray]:
    """(the loss of a chunk's forward pass, the output to score): with members, the ensemble's,
    the loss and output of the members' mean output (what early stopping and checkpoints
    judge), not the members' own."""
    if network.members is None:
        return network.loss_value(t, ws=ws), out
    mean = network.mean_output(out)
    return network.output_loss(mean, t), mean


def score_with(network: Network, task: str, X: np.ndarray, y: np.ndarray, targets=None,
               extra=(), ws=None) -> tuple[float, float, dict]:
    """`score`, and {name: value} of the `extra` history columns (EXTRA_METRICS) in the same
    forward pass; the outputs are kept only when some are asked for. `ws`: the workspace to
    score in (the training loop's, so that scoring allocates nothing), else a new one."""
    if network.heads is not None:
        return _score_heads(network, X, y, targets, extra, ws)
    given = None if targets is None else (lambda _: targets)
    return score_chunks(network, task, [(X, y)] if len(X) else [], extra, ws, given)


def _score_heads(network, X, y, targets, extra, ws) -> tuple[float, float, dict]:
    """score_with of several targets: (summed loss, the first target's metric, {every other
    target's metric column and the `extra` ones})."""
    from .multiscore import history_values, main_columns, score_multi

    loss, values = score_multi(network, X, y, targets, extra, ws)
    columns = history_values(values)
    first = columns.pop(main_columns(network.heads)[0])
    return loss, first, columns


def score_heads_part(network: Network, chunks, extra=(), targets=None, ws=None) -> tuple[float, dict]:
    """`multiscore.score_multi` of a part given as (X, y) chunks, chunk by chunk; with `targets(y)`
    (the training part's smoothed targets, in memory: one chunk) over the chunks joined."""
    from .multiscore import score_multi, score_multi_chunks

    if targets is None:
        return score_multi_chunks(network, chunks, extra, ws)
    X, y = _joined(chunks)
    return score_multi(network, X, y, targets(y), extra, ws)


def _joined(chunks) -> tuple[np.ndarray, np.ndarray]:
    chunks = list(chunks)
    if len(chunks) == 1:
        return chunks[0]
    return np.concatenate([c[0] for c in chunks]), np.concatenate([c[1] for c in chunks])


class R2Sums:
    """R² per output gathered chunk by chunk: each chunk's rows, mean, squared deviations and
    squared residuals (float64), merged as Chan et al. merge variances. One chunk gives exactly
    `nn.metrics.r2`'s figure (the same sums in the same order); several, the same to float
    rounding (about 1e-12 relative)."""

    def __init__(self):
        self.n, self.mean, self.m2, self.res = 0, 0.0, 0.0, 0.0

    def add(self, t: np.ndarray, out: np.ndarray) -> None:
        """t, out: (..., rows, outputs) targets and predictions; a leading axis (members) is kept."""
        t = np.asarray(t, dtype=np.float64)
        out = np.asarray(out, dtype=np.float64)
        n, mean = t.shape[-2], t.mean(axis=-2)
        m2 = ((t - mean[..., None, :]) ** 2).sum(axis=-2)
        res = ((t - out) ** 2).sum(axis=-2)
        if self.n == 0:
            self.n, self.mean, self.m2, self.res = n, mean, m2, res
            return
        total = self.n + n
        delta = mean - self.mean
        self.m2 = self.m2 + m2 + delta ** 2 * (self.n * n / total)
        self.mean = self.mean + delta * (n / total)
        self.res, self.n = self.res + res, total

    def value(self):
        """R² averaged over outputs (scikit-learn's uniform_average); per member with a leading axis."""
        with np.errstate(divide="ignore", invalid="ignore"):
            # scikit-learn: a constant truth scores 1.0 if predicted exactly, else 0.0
            score = np.where(self.m2 > 0, 1 - self.res / self.m2, np.where(self.res == 0, 1.0, 0.0))
        return np.mean(score, axis=-1)


def score_chunks(network: Network, task: str, chunks, extra=(), ws=None, targets=None) -> tuple[float, float, dict]:
    """`score_with` over a part given as (X, y) chunks (data.source: a part in memory is one
    chunk, a streamed one a shard each): the loss and metric summed chunk by chunk, R² from
    per-chunk sums (`R2Sums`). The `extra` columns rank or count the whole part, so only when some
    are asked for are its outputs and labels kept. `targets(y)`: a chunk's targets in the loss's
    form (default `targets_for`)."""
    if network.heads is not None:  # several targets: the first target's metric, the others' columns
        from .multiscore import history_values, main_columns

        loss, values = score_heads_part(network, chunks, extra, targets, ws)
        columns = history_values(values)
        return loss, columns.pop(main_columns(network.heads)[0]), columns
    n, total, correct = 0, 0.0, 0
    sums = R2Sums()
    kept = []
    ws = network.workspace() if ws is None else ws
    chunk = scoring_chunk(ws)
    for X, y in chunks:
        t = targets_for(network, y) if targets is None else targets(y)
        outputs = np.empty(t.shape, dtype=network.dtype) if task == "regression" or extra else None
        for start, out in network.forward_chunks(X, chunk, ws):
            loss, out = _scored(network, out, t[start:start + out.shape[-2]], ws)
            end = start + len(out)
            total += loss * len(out)
            if outputs is not None:
                outputs[start:end] = out
            if task != "regression":
                predicted = out.argmax(axis=1) if out.shape[1] > 1 else (out[:, 0] > 0.5)
                correct += int(np.count_nonzero(predicted == y[start:end]))
        if task == "regression":
            sums.add(t, outputs)
        elif extra:
            kept.append((y, outputs))
        n += len(X)
    if n == 0:
        return float("nan"), float("nan"), {name: float("nan") for name in extra}
    if task == "regression":
        return total / n, float(sums.value()), {}
    more = extra_scores(extra, *_joined(kept)) if extra else {}
    return total / n, correct / n, more


def part_counts(dataset, part: str) -> np.ndarray:
    """Rows per class of the training or validation part: as a streamed dataset counted them
    while writing its shards, or counted from the part's targets (data.source: in memory, one
    shard)."""
    counts = getattr(dataset, "counts", None)
    if counts:
        return np.asarray(counts[part])
    n = len(dataset.classes)
    return sum((np.bincount(y, minlength=n) for y in dataset.parts[part].targets()), np.zeros(n, dtype=np.int64))


# history columns beyond train_loss, val_loss and the task's own metric (always logged): each is
# measured on the validation part only when an early stop or a sweep watches it
EXTRA_METRICS = ("val_roc_auc", "val_average_precision", "val_f1", "val_balanced_accuracy")
TWO_CLASSES = ("val_average_precision",)
# these rank the rows by score, so every class they rank must be in the validation part
RANKED = ("val_roc_auc", "val_average_precision")


def extra_scores(names, y: np.ndarray, outputs: np.ndarray) -> dict:
    """{name: value} of EXTRA_METRICS names, from class indices `y` and the network's outputs
    (softmax rows, or one sigmoid column for two classes), as scikit-learn computes them."""
    from ..nn import metrics

    proba = outputs.astype(np.float64)
    if proba.shape[1] == 1:
        proba = np.hstack([1 - proba, proba])
    predicted = proba.argmax(axis=1)
    n = proba.shape[1]
    compute = {"val_roc_auc": lambda: metrics.roc_auc(y, proba),
               "val_average_precision": lambda: metrics.average_precision(y == 1, proba[:, 1]),
               "val_f1": lambda: metrics.f1_score(y, predicted, n),
               "val_balanced_accuracy": lambda: metrics.balanced_accuracy(y, predicted, n)}
    return {name: compute[name]() for name in names}


def watched_metrics(training: TrainingConfig, more: dict | None = None) -> dict:
    """{history column: the key that asks for it}: the early-stopping metric, and `more`."""
    stop = training.early_stopping
    return {**({stop.metric: "training.early_stopping.metric"} if stop else {}), **(more or {})}


def metrics_in_use(watched: dict, dataset) -> list[str]:
    """The EXTRA_METRICS among `watched` (see `watched_metrics`) to log each measured epoch,
    in EXTRA_METRICS' order. A column this dataset cannot give is an NnctlError naming the key
    that asks for it."""
    if getattr(dataset, "targets", None) is not None:
        from .multiscore import check_column, extra_columns, main_columns

        heads = dataset_heads(dataset)
        for name, key in watched.items():
            check_column(name, dataset, key, heads)
        return main_columns(heads)[1:] + extra_columns(watched, heads)
    for name, key in watched.items():
        check_metric(name, dataset, key)
    return [name for name in EXTRA_METRICS if name in watched]


def dataset_heads(dataset) -> list:
    """The heads a multi-target dataset's network has (names, losses and output blocks)."""
    from ..nn.heads import Head
    from ..nn.losses import loss_for

    heads, start = [], 0
    for t in dataset.targets:
        heads.append(Head(t.name, loss_for(t.task, len(t.classes) if t.classes else None), start,
                          start + t.n_outputs))
        start += t.n_outputs
    return heads


def check_metric(name: str, dataset, key: str) -> None:
    """NnctlError naming `key` when the history column `name` cannot be measured on `dataset`:
    a classification metric on a regression (or val_r2 on a classification), a two-class
    metric on several classes, a ranking metric whose validation part lacks a class."""
    if name in ("train_loss", "val_loss"):
        return
    task = dataset.task
    if (task == "regression") != (name == "val_r2"):
        other = "val_loss or val_r2" if task == "regression" else \
            f"one of val_loss, val_accuracy, {', '.join(EXTRA_METRICS)}"
        raise NnctlError(f"{name} is for {'regression' if name == 'val_r2' else 'classification'}, but this is "
                         f"a {task}", key, f"use {other}")
    if task == "regression":
        return
    from ..data.encoding import category_label

    labels = [category_label(c) for c in dataset.classes]
    if name in TWO_CLASSES and len(labels) != 2:
        raise NnctlError(f"{name} needs two classes, but column '{dataset.target}' has {len(labels)}", key,
                         "use val_roc_auc (one-vs-rest), val_f1 (macro) or val_balanced_accuracy")
    if name in RANKED and len(dataset.parts["validation"]):
        ranked = labels[1:] if name == "val_average_precision" else labels
        counts = part_counts(dataset, "validation")
        missing = [label for i, label in enumerate(labels) if label in ranked and counts[i] == 0]
        if missing:
            raise NnctlError(f"{name} is undefined: the validation part has no rows of class '{missing[0]}'", key,
                             "hold out more rows (data.validation_split), or use val_f1 or val_balanced_accuracy")


def class_weights(setting, dataset) -> np.ndarray | None:
    """One weight per class from `training.class_weight`: None, `balanced` (n_rows / (n_classes ·
    count_c) over the training part, as scikit-learn), or {label: weight} (labels unnamed there
    weigh 1). A label the data does not have is an NnctlError naming the ones it has."""
    if setting is None:
        return None
    if dataset.task != "classification":
        raise NnctlError("training.class_weight is for classification, but this is a regression",
                         "training.class_weight", "remove it, or set model.task: classification")
    from ..data.encoding import category_label

    n_classes = len(dataset.classes)
    if setting == "balanced":
        counts = part_counts(dataset, "train").astype(np.float64)
        return counts.sum() / (n_classes * np.maximum(counts, 1))  # every training row is in a class
    labels = [category_label(c) for c in dataset.classes]
    for label in setting:
        if label not in labels:
            raise NnctlError(f"training.class_weight names '{label}', which is not a label of column "
                             f"'{dataset.target}'", "training.class_weight", f"its labels: {', '.join(labels)}")
    return np.array([setting.get(label, 1.0) for label in labels])


def row_weights(setting, dataset, y: np.ndarray, dtype, network=None) -> np.ndarray | None:
    """(rows, 1) weights of rows whose class indices are `y`, or None without class weights.
    Several targets: (rows, outputs), each head's block its own target's (multi_row_weights)."""
    if getattr(dataset, "targets", None) is not None:
        from .multiscore import multi_row_weights

        return multi_row_weights(dataset, y, dtype, network)
    weights = class_weights(setting, dataset)
    return None if weights is None else weights[y].astype(dtype).reshape(-1, 1)
