"""The training loop on a streamed dataset (`data.streaming`): the same epochs, logging, early
stopping, clipping, schedules and checkpoints as `loop._Loop`, with the rows read from shards on
disk a window at a time.

Shuffling without loading: each epoch visits the shards in an order drawn from the loop's
generator, reads `window` rows' worth of them (whole shards) into one buffer, permutes those
rows with the same generator and cuts them into batches; a window's last batch may be short.
A row thus meets rows of a few shards, not of the whole table, and memory holds two windows
(as read and as permuted) whatever the table's size.

Resume is exact: a checkpoint taken mid-epoch holds the epoch's shard order, the window and
batch reached and the window's row permutation, and the generator's state after drawing it.
"""
from __future__ import annotations

import time

import numpy as np

from ..nn.losses import smooth_labels
from .loop import PROGRESS_SECONDS, _Loop, label_classes
from .scoring import class_weights, score_chunks


def batch_bounds(n: int, batch: int) -> list[int]:
    """Where a window of n rows is cut into batches of `batch` rows. A last batch of one row
    (which batch norm cannot normalize) is avoided: the last two batches then share their rows."""
    bounds = list(range(0, n, batch)) + [n]
    if len(bounds) > 2 and n - bounds[-2] == 1:
        bounds[-2] = bounds[-3] + (n - bounds[-3]) // 2
    return bounds


class StreamLoop(_Loop):
    def setup_data(self) -> None:
        network, dataset, training = self.network, self.dataset, self.training
        self.part = dataset.parts["train"]
        self.X = self.y = self.w = self.val_targets = None
        self.class_w = class_weights(training.class_weight, dataset)
        self.smoothing = training.label_smoothing if dataset.task == "classification" else 0.0
        # several targets: each head's class weights, found once (balanced ones count the shards)
        self.head_w = None
        if network.heads is not None:
            from .multiscore import head_class_weights

            owned = head_class_weights(dataset, network)
            self.head_w = owned if any(weights is not None for _, _, weights in owned) else None
        self.window_shards = max(1, dataset.window // self.part.shard_rows)
        self.n_windows = -(-self.part.n_shards // self.window_shards)
        # one full batch over the whole table in one window: the order cannot change the gradient
        self.shuffle = training.shuffle and not (self.batch >= self.rows and self.n_windows == 1)
        self.X_read, self.y_read = self.part.buffers(self.window_shards)
        self.X_win = np.empty_like(self.X_read) if self.shuffle else self.X_read
        rows = len(self.X_read)
        self.t_win = np.zeros((rows, network.n_outputs), dtype=network.dtype)
        self.w_win = None if self.class_w is None else np.empty((rows, 1), dtype=network.dtype)
        if self.head_w is not None:  # each head's block its own target's weight
            self.w_win = np.empty((rows, network.n_outputs), dtype=network.dtype)

    def arrange(self, n: int, perm) -> None:
        """The window's n rows read, in `perm`'s order, with their targets in the loss's form and
        their class weights."""
        y = self.y_read[:n]
        if perm is not None:
            np.take(self.X_read[:n], perm, axis=0, out=self.X_win[:n], mode="clip")
            y = y[perm]
        t = self.t_win[:n]
        if self.network.heads is not None:
            self.arrange_heads(n, y, t)
            return
        if self.network.loss_name == "cross_entropy":
            t[:] = 0
            t[np.arange(n), y] = 1
        else:
            t[:] = y.reshape(n, -1)
        if self.smoothing:
            t[:] = smooth_labels(t, self.smoothing, label_classes(self.network))
        if self.w_win is not None:
            self.w_win[:n, 0] = self.class_w[y]

    def arrange_heads(self, n: int, y: np.ndarray, t: np.ndarray) -> None:
        """Several targets: y (n, targets) as each head's block of `t`, as the in-memory loop's
        targets_for, smoothing and row weights make them, in the window's buffers."""
        from .multiscore import loss_targets, multi_row_weights, smooth_heads

        loss_targets(self.network, y, out=t)
        if self.training.label_smoothing:
            t[:] = smooth_heads(self.network, t, self.training.label_smoothing)
        if self.head_w is not None:
            multi_row_weights(self.dataset, y, self.network.dtype, self.network, self.head_w, out=self.w_win[:n])

    def epoch(self, epoch: int, measured: bool, diagnose: bool = False) -> float | None:
        network, step, grads, clip, batch = self.network, self.optimizer.step, self.grads, self.clip, self.batch
        lr = self.lr = self.schedule(epoch - 1)
        if self.partial is not None:  # finish the epoch a resumed run was cut short in
            order, first_window, first_batch, perm, total, k, done = self.partial
            self.partial = None
        else:
            n_shards = self.part.n_shards
            order = self.rng.permutation(n_shards) if self.shuffle else np.arange(n_shards)
            first_window, first_batch, perm, total, k, done = 0, 0, None, 0.0, 0, 0
        clock, should_stop = time.perf_counter, self.should_stop
        started = clock()
        sampled = self.sampled if diagnose else ()
        if diagnose:
            self.diagnose.begin_epoch()
        for w in range(first_window, self.n_windows):
            n = self.part.load(order[w * self.window_shards:(w + 1) * self.window_shards], self.X_read, self.y_read)
            if perm is None and self.shuffle:
                perm = self.rng.permutation(n)
            self.arrange(n, perm)
            bounds = batch_bounds(n, batch)
            for b in range(first_batch, len(bounds) - 1):
                s, e = bounds[b], bounds[b + 1]
                xb, yb = self.X_win[s:e], self.t_win[s:e]
                wb = None if self.w_win is None else self.w_win[s:e]
                loss = self.train_step(network, xb, yb, wb, k in sampled, measured, step, grads, lr, clip)
                if measured:
                    total += loss
                k += 1
                done += len(xb)
                if should_stop is not None and should_stop():
                    self.partial = (order, w, b + 1, perm, total, k, done)
                    return None
                now = clock()
                if now >= self.next_progress:
                    self.next_progress = now + PROGRESS_SECONDS
                    self.callback.on_progress({"epoch": epoch, "rows_done": done, "rows": self.rows,
                                               "epoch_seconds": now - started})
            perm, first_batch = None, 0
        if diagnose:
            self.diagnostics += self.diagnose.end_epoch(epoch)
        return total / self.rows

    def state(self, start: float) -> tuple[dict, dict]:
        partial, self.partial = self.partial, None
        try:
            arrays, meta = super().state(start)
        finally:
            self.partial = partial
        if partial is not None:
            order, w, b, perm, total, k, done = partial
            arrays["shard_order"] = order
            if perm is not None:
                arrays["order"] = perm
            meta["batches_done"], meta["partial_loss"] = k, total
            meta["stream"] = {"window": w, "batch": b, "rows_done": done}
        return arrays, meta

    def restore(self, arrays: dict, meta: dict) -> None:
        super().restore(arrays, {**meta, "batches_done": 0})
        if meta.get("batches_done"):
            stream, order = meta.get("stream"), arrays.get("shard_order")
            if stream is None or order is None or order.shape != (self.part.n_shards,):
                raise ValueError("the streamed epoch's position (shard order, window, batch) is missing")
            perm = arrays.get("order")
            if self.shuffle and perm is None:
                raise ValueError("the row order of the window cut short is missing")
            self.partial = (order, int(stream["window"]), int(stream["batch"]), perm, float(meta["partial_loss"]),
                            int(meta["batches_done"]), int(stream["rows_done"]))

    def score_validation(self) -> tuple[float, float, dict]:
        return score_chunks(self.network, self.dataset.task, self.dataset.parts["validation"].chunks(), self.extra,
                            self.ws)
