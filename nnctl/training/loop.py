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

from ..config.typed import TrainingConfig
from ..errors import NnctlError
from ..nn.clipping import clip_grad_norm
from ..nn.diagnostics import Diagnostics
from ..nn.losses import smooth_labels
from ..nn.network import Network
from .callbacks import Callback
from .checkpoint import checkpoint_path
from .optimization import LearningRate, network_optimizer
from ..data.source import batch_bounds
from .scoring import (metric_column, metric_name, metrics_in_use, row_weights, score_chunks, targets_for,
                      watched_metrics)
from .stopping import EarlyStopping, maximized


PROGRESS_SECONDS = 0.5  # how often the loop reports progress inside an epoch


@dataclass
class TrainResult:
    history: list[dict]
    status: str  # completed | early_stopped | interrupted
    best_epoch: int | None
    seconds: float
    epochs: int = 0  # completed epochs (history holds only the logged ones)
    diagnostics: list = field(default_factory=list)  # per logged epoch and layer (nn.diagnostics)
    restored_best: bool = False  # early stopping put back the best epoch's weights
    best_by: str = "val_loss"  # what best_epoch is best at
    metrics: dict = field(default_factory=dict)
    run: object = None  # the run folder's Path, once saved
    clipped_steps: int = 0  # steps whose gradient training.grad_clip scaled down
    steps: int = 0  # optimizer steps taken (counted when grad_clip is set)


def log_every(training: TrainingConfig) -> int:
    """Epochs between logged epochs: `auto` keeps about 200 rows of history."""
    every = training.log_every
    return max(1, training.iterations // 200) if every == "auto" else every


def train(network: Network, dataset, training: TrainingConfig, seed: int = 0, callback: Callback | None = None,
          should_stop=None, resume=None, checkpointer=None, metrics: dict | None = None) -> TrainResult:
    """Train `network` in place on `dataset` under the resolved `training` config.

    Every epoch runs forward -> backward -> update over shuffled mini-batches. Logged epochs
    (the first, the last, and every `log_every`-th) also measure the training loss (the mean over
    the epoch's batches) and the validation loss and metric, and go to `history` and the
    callback; with early stopping every epoch is measured. `should_stop()` is polled after every
    batch (an interrupt sets it): training then ends with status `interrupted`. A loss that
    becomes NaN or infinite raises NnctlError suggesting a lower learning rate.

    `resume`: a training.checkpoint.Checkpoint to continue from exactly: weights, optimizer
    state, shuffle generator, early stopping, history, and the rest of an epoch cut short; arrays
    that do not fit this network are an NnctlError naming the checkpoint's path.
    `checkpointer` (a training.checkpoint.Checkpointer) writes checkpoints at epoch ends when
    due, and a last one when training ends (before early stopping restores the best weights).
    `metrics`: more history columns to log, {name: the key that asks for them} (a sweep's
    metric); the early-stopping metric is always logged."""
    callback = callback or Callback()
    loop_class = _Loop
    if network.members:  # members that stop and slow down on their own scores
        from .ensemble import EnsembleLoop, uses_member_loop
        loop_class = EnsembleLoop if uses_member_loop(network, dataset, training) else _Loop
    loop = loop_class(network, dataset, training, seed, callback, should_stop, metrics or {})
    if resume is not None:
        try:
            loop.restore(resume.arrays, resume.meta)
        except ValueError as exc:
            raise NnctlError(f"checkpoint does not match its config: {exc}", str(checkpoint_path(resume.path)))
    loop.checkpointer = checkpointer
    callback.on_train_begin({"epochs": training.iterations, "rows": loop.rows, "batch_size": loop.batch,
                             "batches": -(-loop.rows // loop.batch), "validation": loop.has_val,
                             "metric": loop.metric, "watch": loop.extra, "task": dataset.task,
                             "notes": list(dataset.notes)})
    start = time.perf_counter()
    # overflow shows up as a non-finite loss, reported with advice; numpy's own
    # RuntimeWarnings would only add noise on stderr
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        status = loop.run(start)
        if checkpointer is not None:
            checkpointer.write(loop.state(start), status)
        stopper = loop.stopper
        restored = bool(stopper and stopper.best_params is not None and status != "interrupted")
        if restored:
            network.restore(stopper.best_params)
        best_by = stopper.metric if stopper else "val_loss" if loop.has_val else "train_loss"
        best_epoch = stopper.best_epoch if stopper else _best_epoch(loop.history, best_by)
        result = TrainResult(loop.history, status, best_epoch, loop.elapsed(start), loop.completed,
                             diagnostics=loop.diagnostics, restored_best=restored, best_by=best_by)
        result.metrics = final_metrics(network, dataset, result, loop.extra, loop.loss_targets)
        if loop.clip is not None:
            result.clipped_steps, result.steps = loop.clipped, loop.steps
            result.metrics.update(clipped_steps=loop.clipped, steps=loop.steps)
    # the last update may have broken weights that every measured loss came before
    check_finite(result.metrics["train"]["loss"], max(result.epochs, 1), loop.advice)
    callback.on_train_end(result)
    return result


def final_metrics(network: Network, dataset, result: TrainResult, extra=(), train_targets=None) -> dict:
    """Loss and metric on the training and validation parts, and on the validation part the
    `extra` history columns (val_f1 -> "f1"), each part scored chunk by chunk (data.source).
    `train_targets(y)`: the training part's targets as the loop trained on them (smoothed
    labels), so that its loss is the one training measured."""
    metrics = {"status": result.status, "epochs": result.epochs,
               "best_epoch": result.best_epoch, "seconds": round(result.seconds, 4)}
    name = None if network.heads is not None else metric_name(dataset.task)
    for part, watched, targets in (("train", (), train_targets), ("validation", extra, None)):
        rows = len(dataset.parts[part])
        if rows:
            if name is None:  # several targets: the summed loss and `<target>.<metric>`
                from .multiscore import report_values
                from .scoring import score_heads_part

                loss, values = score_heads_part(network, dataset.chunks(part), watched, targets)
                metrics[part] = {"loss": loss, **report_values(values), "rows": rows}
                continue
            loss, value, more = score_chunks(network, dataset.task, dataset.chunks(part), watched, targets=targets)
            metrics[part] = {"loss": loss, name: value, **{k[len("val_"):]: v for k, v in more.items()}, "rows": rows}
    return metrics


def divergence_advice(training: TrainingConfig, dataset) -> str:
    """What to try when the loss blows up, leaving out what is already so."""
    advice = f"lower training.learning_rate (now {training.learning_rate:g})"
    if (dataset.encoder.scaler or {}).get("kind") == "none":
        advice += ", or scale the inputs (data.scale: standard)"
    elif dataset.task == "regression" and dataset.target_scaler is None:
        advice += ", or standardize the target (data.scale_target: true)"
    return advice


def check_finite(loss: float, epoch: int, advice: str) -> None:
    """NnctlError, with advice, when a loss has become NaN or infinite."""
    if not math.isfinite(loss):
        raise NnctlError(f"training diverged: the loss became {loss} by epoch {epoch}", "training.learning_rate",
                         advice)


def _best_epoch(history: list[dict], key: str) -> int | None:
    # every logged loss is finite: `measure` stops training at the first that is not
    return min(history, key=lambda row: row[key])["epoch"] if history else None


def label_classes(network) -> int:
    """The classes label smoothing spreads over: two for one sigmoid unit, else one per output."""
    return 2 if network.loss_name == "binary_cross_entropy" else network.n_outputs


class _Loop:
    """The epochs of one training run; `run` returns the status and fills `history`."""

    def __init__(self, network, dataset, training, seed, callback, should_stop, watched):
        self.network, self.dataset, self.training = network, dataset, training
        self.callback, self.should_stop = callback, should_stop
        self.rows = len(dataset.parts["train"])
        self.batch = min(training.batch_size or self.rows, self.rows)
        self.members = network.members  # K members: each its own batch order, from seed + i
        self.rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(2)[1])
        self.rngs = [self.rng] + [np.random.default_rng(np.random.SeedSequence(seed + i).spawn(2)[1])
                                  for i in range(1, self.members or 1)]
        self.optimizer = network_optimizer(network, training)
        self.step = self.optimizer.step  # what a batch's update calls (a population also holds stopped members)
        self.has_val = len(dataset.parts["validation"]) > 0
        # a plateau schedule watches what early stopping watches, else the validation loss
        reduce_on = training.early_stopping.metric if training.early_stopping else \
            "val_loss" if self.has_val else "train_loss"
        self.schedule = LearningRate(training, reduce_on, maximized(reduce_on))
        self.grads = [network.flat_grads]
        self.clip = training.grad_clip  # None: no clipping, and no work per batch for it
        self.clipped = self.steps = 0
        # the generator the random layers share (None without any): its state is checkpointed
        self.dropout_rng = network.rng
        # the arrays this loop's passes write: made once, reused by every batch and every scoring
        self.ws = network.workspace()
        self.has_val = len(dataset.parts["validation"]) > 0
        self.metric = metric_column(dataset)
        self.stopper = EarlyStopping.from_config(training.early_stopping) if training.early_stopping else None
        # measured only when in use: each costs a sort or a count of the validation rows
        self.extra = metrics_in_use(watched_metrics(training, watched), dataset)
        self.history: list[dict] = []
        self.completed = 0
        self.advice = divergence_advice(training, dataset)
        self.next_progress = 0.0
        self.checkpointer = None
        self.diagnose = self.diagnostics_for(network)
        self.sampled = Diagnostics.steps_to_measure(-(-self.rows // self.batch), self.rows % self.batch != 0)
        self.diagnostics: list[dict] = []
        self.seconds_before = 0.0  # trained by the run this one resumes
        self.partial = None  # (batches done, row order, loss so far) of the epoch cut short
        self.fill = False  # whether batches are gathered one at a time (`fill_batch`)
        self.setup_data()

    def diagnostics_for(self, network) -> Diagnostics:
        return Diagnostics(network, self.ws)

    def setup_data(self) -> None:
        """The training part as windows of its shards (data.source: a part in memory is one
        shard, so one window of all its rows), whether to shuffle, and the buffers a window is
        read into; the rows themselves are read and prepared by `window`."""
        dataset, training = self.dataset, self.training
        self.part = dataset.parts["train"]
        self.window_shards = max(1, dataset.window // self.part.shard_rows)
        self.n_windows = -(-self.part.n_shards // self.window_shards)
        # one full batch over the whole part in one window: the order cannot change the gradient
        self.shuffle = training.shuffle and not (self.batch >= self.rows and self.n_windows == 1)
        # members each see a window's rows in their own order, gathered a batch at a time into one
        # (K, batch, ...) buffer (`fill`): K copies of a window's rows would leave the cache
        self.fill = bool(self.members) and self.shuffle
        self.read_buffers = self.part.window_buffers(self.window_shards)
        self.capacity = min(self.window_shards * self.part.shard_rows, self.rows)  # a window's most rows
        self.read_from = None  # the (X, y) read that `X`, `y`, `w` were prepared from
        self.prepared = 0  # how many times they were
        self.X = self.y = self.w = None
        self.epoch_buffers = None
        self.cut_key, self.cut_batches, self.bounds = None, [], [0]
        self.order = None

    def loss_targets(self, y: np.ndarray) -> np.ndarray:
        """Targets `y` in the loss's form as training uses them (label smoothing applied)."""
        network, dataset, training = self.network, self.dataset, self.training
        t = targets_for(network, y)
        if dataset.task == "classification" and training.label_smoothing:
            t = smooth_labels(t, training.label_smoothing, label_classes(network))
        elif network.heads is not None and training.label_smoothing:
            from .multiscore import smooth_heads

            t = smooth_heads(network, t, training.label_smoothing)
        return t

    def window(self, order: np.ndarray, w: int) -> int:
        """Read window w of the epoch's shard `order` and prepare its rows (`X`; `y`, targets in
        the loss's form; `w`, their class weights); the rows it holds. A window read from the
        same arrays as the last one (a part in memory) is not prepared again."""
        X, y = self.part.read(order[w * self.window_shards:(w + 1) * self.window_shards], self.read_buffers)
        if self.read_from is None or self.read_from[0] is not X or self.read_from[1] is not y:
            self.read_from = (X, y)
            self.X, self.y = X, self.loss_targets(y)
            # class weights multiply each training row's loss; validation losses stay unweighted
            self.w = row_weights(self.training.class_weight, self.dataset, y, self.network.dtype, self.network)
            self.prepared += 1
        return len(X)

    def epoch_arrays(self) -> tuple:
        """The buffers a window's rows are gathered into in their epoch's order, made once for
        the largest window; with members (`fill`), one (K, batch, ...) buffer each."""
        if self.epoch_buffers is None:
            if self.fill:
                K, b = self.members, self.batch
                self.epoch_buffers = tuple(None if a is None else np.empty((K, b) + a.shape[1:], dtype=a.dtype)
                                           for a in (self.X, self.y, self.w))
            else:
                self.epoch_buffers = tuple(None if a is None else np.empty((self.capacity,) + a.shape[1:], dtype=a.dtype)
                                           for a in (self.X, self.y, self.w))
        return self.epoch_buffers

    def cut(self, n: int) -> list:
        """The window's batches, (X, y, w) views cut at `batch_bounds`: of the epoch's buffers
        when shuffling (made once per window size), else of the window's rows as they are."""
        key = (n, None if self.shuffle else self.prepared)
        if key != self.cut_key:
            self.cut_key, self.bounds = key, batch_bounds(n, self.batch)
            self.cut_batches = self.make_batches(n, self.bounds)
        return self.cut_batches

    def make_batches(self, n: int, bounds: list[int]) -> list:
        pairs = list(zip(bounds[:-1], bounds[1:]))
        if self.fill:
            def view(whole, rows):  # a short batch: the first K·rows rows of the buffer, contiguous as a full one
                if whole is None:
                    return None
                return whole.reshape(-1)[:self.members * rows * whole.shape[-1]].reshape(
                    (self.members, rows) + whole.shape[2:])

            return [tuple(view(a, e - s) for a in self.epoch_arrays()) for s, e in pairs]
        arrays = self.epoch_arrays() if self.shuffle else (self.X, self.y, self.w)
        return [tuple(None if a is None else a[s:e] for a in arrays) for s, e in pairs]

    def shard_order(self) -> np.ndarray:
        """The epoch's order of the training part's shards (one shard: nothing drawn)."""
        n_shards = self.part.n_shards
        return self.rng.permutation(n_shards) if self.shuffle and n_shards > 1 else np.arange(n_shards)

    def draw(self, n: int) -> np.ndarray:
        """A window's row order: a permutation of its n rows, or with members one each from their
        own generators, (K, n)."""
        if not self.members:
            return self.rng.permutation(n)
        return np.stack([rng.permutation(n) for rng in self.rngs])

    def run(self, start: float) -> str:
        epochs, every = self.training.iterations, log_every(self.training)
        for epoch in range(self.completed + 1, epochs + 1):
            logged = epoch == 1 or epoch == epochs or epoch % every == 0
            measured = logged or self.stopper is not None or self.schedule.watched is not None
            train_loss = self.epoch(epoch, measured, diagnose=logged)
            if train_loss is None:
                return "interrupted"
            self.completed = epoch
            stop = False
            if measured:
                log = self.measure(epoch, train_loss, start)
                self.schedule.observe(log)
                stop = self.stopper is not None and self.stopper.update(log, self.network)
                if logged or stop:
                    self.history.append(log)
                    self.callback.on_epoch_end(log)
            if stop:
                return "early_stopped"
            if self.checkpointer is not None and epoch < epochs and self.checkpointer.due(epoch):
                self.checkpointer.write(self.state(start), "running")
        return "completed"

    def train_step(self, network, xb, yb, wb, diagnosed: bool, measured: bool, step, grads, lr, clip) -> float:
        """One batch, the algorithm itself: forward, the loss, backward, clipping, the update
        (measured layer by layer when `diagnosed`). The batch's summed loss when `measured`,
        else 0.0."""
        ws, members = self.ws, self.members
        network.forward(xb, True, ws=ws)
        # with members, the mean of their losses (loss_value is their sum)
        loss = self.batch_loss(network, yb, wb, ws, xb.shape[-2]) if measured else 0.0
        network.backward(yb, wb, ws=ws)
        norm = None
        if clip is not None:
            # each member clipped by its own norm (diagnostics then take the norm over all of them)
            norm, clipped = clip_grad_norm(network.flat_grads, clip, members)
            self.count_clipped(norm, clipped)
            self.steps += 1
        if diagnosed:
            before = self.diagnose.before_step()
            step(grads, lr)
            self.diagnose.after_step(before, norm)
        else:
            step(grads, lr)
        return loss

    def batch_loss(self, network, yb, wb, ws, rows: int) -> float:
        """The batch's summed loss (its mean times its rows); with members, the mean of theirs."""
        return network.loss_value(yb, wb, ws) * rows / (self.members or 1)

    def count_clipped(self, norm, clipped) -> None:
        """`clipped`: whether the step was scaled down, or with members how many of them were."""
        self.clipped += clipped

    def gather(self, order: np.ndarray) -> None:
        """Fill the epoch's buffers with the window's rows in `order`, (n,); with members
        (K, n) keep the order, which `fill_batch` reads a batch at a time."""
        if self.fill:
            self.order = order
            return
        n = order.shape[-1]
        # mode="clip" skips numpy's bounds-check buffering; `order` is a permutation anyway
        for source, out in zip((self.X, self.y, self.w), self.epoch_arrays()):
            if source is not None:
                np.take(source, order, axis=0, out=out[:n], mode="clip")

    def fill_batch(self, k: int, xb, yb, wb) -> None:
        """Gather the members' batch k of the window, (K, n, ...), from its rows in their order."""
        s = self.bounds[k]
        rows = self.order[:, s:s + xb.shape[1]]
        for source, out in ((self.X, xb), (self.y, yb), (self.w, wb)):
            if source is not None:
                np.take(source, rows, axis=0, out=out, mode="clip")

    def epoch(self, epoch: int, measured: bool, diagnose: bool = False) -> float | None:
        """One pass over the training rows, window by window; the mean batch loss when `measured`
        (else 0.0), or None when interrupted (`partial` then holds where it stopped: the shard
        order, the window and batch reached, the window's row order, the loss so far, the batches
        and rows done). With `diagnose`, some of the epoch's steps are measured layer by layer and
        averaged (nn.diagnostics)."""
        network, step, grads, clip = self.network, self.step, self.grads, self.clip
        lr = self.lr = self.schedule(epoch - 1)
        if self.partial is not None:  # finish the epoch a resumed run was cut short in
            order, first_window, first_batch, perm, total, k, done = self.partial
            self.partial = None
        else:
            order, first_window, first_batch, perm, total, k, done = self.shard_order(), 0, 0, None, 0.0, 0, 0
        clock, should_stop = time.perf_counter, self.should_stop
        started = clock()
        sampled = self.sampled if diagnose else ()  # the steps to measure, if any
        if diagnose:
            self.diagnose.begin_epoch()
        fill = self.fill_batch if self.fill else None
        for w in range(first_window, self.n_windows):
            n = self.window(order, w)
            if perm is None and self.shuffle:
                perm = self.draw(n)  # per window, not per step
            if perm is not None:
                self.gather(perm)
            batches = self.cut(n)
            for b in range(first_batch, len(batches)):
                xb, yb, wb = batches[b]
                if fill is not None:
                    fill(b, xb, yb, wb)
                loss = self.train_step(network, xb, yb, wb, k in sampled, measured, step, grads, lr, clip)
                if measured:
                    total += loss
                k += 1
                done += xb.shape[-2]
                if should_stop is not None and should_stop():
                    self.partial = (order, w, b + 1, perm, total, k, done)
                    return None
                now = clock()
                if now >= self.next_progress:  # a sign of life inside long epochs, twice a second
                    self.next_progress = now + PROGRESS_SECONDS
                    self.callback.on_progress({"epoch": epoch, "rows_done": done, "rows": self.rows,
                                               "epoch_seconds": now - started})
            perm, first_batch = None, 0
        if diagnose:
            self.diagnostics += self.diagnose.end_epoch(epoch)
        return total / self.rows

    def elapsed(self, start: float) -> float:
        return self.seconds_before + time.perf_counter() - start

    def state(self, start: float) -> tuple[dict, dict]:
        """(arrays, meta) of everything `restore` needs to continue exactly from here."""
        optimizer = self.optimizer.state()
        arrays = {**{name: a.copy() for name, a in self.network.arrays().items()},
                  **{f"opt_{k}": v for k, v in optimizer.items() if k != "t"}}
        meta = {"completed": self.completed, "rng": self.rng.bit_generator.state, "optimizer_t": optimizer["t"],
                "history": self.history, "diagnostics": self.diagnostics, "seconds": self.elapsed(start),
                "batches_done": 0, "partial_loss": 0.0}
        if self.dropout_rng is not None:
            meta["dropout_rng"] = self.dropout_rng.bit_generator.state
        if self.members:  # member 0's batch order is `rng`'s; the others' follow
            meta["member_rngs"] = [rng.bit_generator.state for rng in self.rngs[1:]]
        if self.clip is not None:
            meta["clipped_steps"], meta["steps"] = self.clipped, self.steps
        if self.partial is not None:  # where in the epoch: the shard order, window, batch and row order
            order, w, b, perm, total, k, done = self.partial
            arrays["shard_order"] = order
            if perm is not None:
                arrays["order"] = perm
            meta["batches_done"], meta["partial_loss"] = k, total
            meta["stream"] = {"window": w, "batch": b, "rows_done": done}
        if self.schedule.state() is not None:
            meta["schedule"] = self.schedule.state()
        if self.stopper is not None:
            meta["stopper"] = self.stopper.state()
            if self.stopper.best_params is not None:
                arrays.update({f"best.{k}": v for k, v in self.stopper.best_params.items()})
        return arrays, meta

    def restore(self, arrays: dict, meta: dict) -> None:
        """Continue from `state()`'s (arrays, meta); ValueError when they do not fit this loop."""
        self.network.load_arrays(arrays)
        self.optimizer.load_state({"t": meta["optimizer_t"],
                                   **{k[4:]: v for k, v in arrays.items() if k.startswith("opt_")}})
        self.rng.bit_generator.state = meta["rng"]
        states = meta.get("member_rngs", [])
        if len(states) != len(self.rngs) - 1:
            raise ValueError(f"the checkpoint has {len(states) + 1} members' batch orders, this run {len(self.rngs)}")
        for rng, state in zip(self.rngs[1:], states):
            rng.bit_generator.state = state
        if self.dropout_rng is not None:
            if "dropout_rng" not in meta:
                raise ValueError("the dropout generator's state is missing")
            self.dropout_rng.bit_generator.state = meta["dropout_rng"]
        self.clipped, self.steps = int(meta.get("clipped_steps", 0)), int(meta.get("steps", 0))
        self.schedule.load_state(meta.get("schedule"))
        self.completed = int(meta["completed"])
        self.history = list(meta["history"])
        self.diagnostics = list(meta.get("diagnostics", []))
        self.seconds_before = float(meta["seconds"])
        self.partial = None
        if meta.get("batches_done"):
            self.partial = self.position(arrays, meta)
        if self.stopper is not None and meta.get("stopper"):
            best = {k[5:]: v for k, v in arrays.items() if k.startswith("best.")}
            if best and best.get("params", np.empty(0)).shape != self.network.flat_params.shape:
                raise ValueError("early stopping's best weights do not fit the network")
            self.stopper.load_state(meta["stopper"], best or None)

    def position(self, arrays: dict, meta: dict) -> tuple:
        """`partial` of the epoch a checkpoint was cut short in; ValueError when it is missing or
        does not fit. A checkpoint written before epochs were windows (an in-memory run's: only
        `order` and the batches done) is one window's position."""
        done = int(meta["batches_done"])
        stream, shards = meta.get("stream"), arrays.get("shard_order")
        if stream is None and self.n_windows == 1:
            stream, shards = {"window": 0, "batch": done, "rows_done": min(done * self.batch, self.rows)}, \
                np.arange(self.part.n_shards)
        if stream is None or shards is None or shards.shape != (self.part.n_shards,):
            raise ValueError("the epoch's position (shard order, window, batch) is missing")
        perm = arrays.get("order")
        shape = (self.members, self.rows) if self.members else (self.rows,)
        if self.shuffle and (perm is None or (self.n_windows == 1 and perm.shape != shape)):
            raise ValueError("the row order of the epoch cut short is missing")
        return (shards, int(stream["window"]), int(stream["batch"]), perm, float(meta["partial_loss"]), done,
                int(stream["rows_done"]))

    def score_validation(self) -> tuple[float, float, dict]:
        return score_chunks(self.network, self.dataset.task, self.dataset.chunks("validation"), self.extra, self.ws)

    def measure(self, epoch: int, train_loss: float, start: float) -> dict:
        check_finite(train_loss, epoch, self.advice)
        log = {"epoch": epoch, "train_loss": train_loss}
        if self.has_val:
            log["val_loss"], log[self.metric], extra = self.score_validation()
            log.update(extra)
            # the training loss is measured before each update, validation after the epoch's last
            check_finite(log["val_loss"], epoch, self.advice)
        log["learning_rate"] = self.lr
        log["seconds"] = self.elapsed(start)
        return log
