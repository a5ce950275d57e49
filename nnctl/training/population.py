"""A population: K runs of one architecture trained as the members of one pass, each on its own
data. Where `model.ensemble` judges the members' mean on one split, here member k is exactly
the run that its seed (and its split, its scaler, its shuffle) would train alone: its own
training rows, validation scores, history, early stopping and final weights. What it shares
with the others is only the arithmetic: each batch is (K, rows, features), one product per
layer for all of them.

    results = train_population(network, datasets, cfg.training, seeds=[42, 43, 44])
    results[k].result, results[k].network, results[k].checkpoint

Each member's plateau schedule, if any, lowers its own rate on its own validation score. A
member that stops early leaves the pass: its result and its checkpoint are taken when it stops,
as its run alone would end there, and the epochs after it train a smaller population of the
members still active (`_Live`: their rows of the weights, optimizer state, data and generators),
so a stopped member costs no more forward/backward work. Each member's arithmetic is its own
(per-member products, losses, clipping and updates), so the others' results stay bit-identical.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..errors import NnctlError
from ..nn.diagnostics import Diagnostics
from ..nn.network import CHUNK, Network
from .callbacks import Callback
from ..nn.losses import smooth_labels
from .optimization import LearningRate
from ..data.source import batch_bounds
from .loop import TrainResult, _Loop, check_finite, final_metrics, label_classes, log_every
from .scoring import extra_scores, metrics_in_use, row_weights, targets_for, watched_metrics
from .stopping import EarlyStopping, maximized


@dataclass
class Member:
    """One member's run as it ended: its TrainResult (metrics included), its network alone
    (the weights its run saves: the best epoch's when early stopping restored them) and the
    (arrays, meta) of the checkpoint its run alone would write last."""

    result: TrainResult
    network: Network
    checkpoint: tuple


def same_shapes(datasets) -> str | None:
    """Why these datasets cannot be one population's (None when they can): every member needs
    as many training and validation rows and inputs as the others, in memory."""
    if not all(getattr(d, "resident", True) for d in datasets):  # data.source: a part on disk is read a window at a time
        return "the data is streamed from disk"
    first = datasets[0]
    for name in ("X_train", "X_val"):
        shapes = {getattr(d, name).shape for d in datasets}
        if len(shapes) > 1:
            part = "training" if name == "X_train" else "validation"
            return f"their {part} parts differ in shape ({', '.join(str(s) for s in sorted(shapes))})"
    if any(d.n_outputs != first.n_outputs for d in datasets):
        return "their targets differ in outputs"
    return None


def train_population(network: Network, datasets: list, training, seeds: list[int], watched: dict | None = None,
                     should_stop=None, labels: list[str] | None = None, rates: list | None = None) -> list[Member]:
    """Train `network` (K members, member k initialized from seeds[k]) on `datasets` (one per
    member, of one shape: `same_shapes`) under `training`; a list of K Members. A member whose
    loss becomes non-finite is an NnctlError naming it (`labels[k]`, default "seed <seed>");
    `should_stop()` true ends training with KeyboardInterrupt (a population is all or nothing).
    `rates`: each member's own `training` where members differ in `learning_rate` or `l2` (the
    rest of `training` is theirs in common)."""
    loop = PopulationLoop(network, datasets, training, seeds, Callback(), should_stop, watched or {})
    loop.labels = labels or [f"seed {s}" for s in seeds]
    loop.own_rates(rates or [training] * len(seeds))
    start = time.perf_counter()
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        if loop.run(start) == "interrupted":
            raise KeyboardInterrupt
    return loop.finished


class _MemberView:
    """What EarlyStopping snapshots: member k of the population, as its network alone."""

    def __init__(self, network: Network, k: int):
        self.network, self.k = network, k

    def snapshot(self) -> dict:
        return self.network.member_snapshot(self.k)


class _MemberRates:
    """Each member's learning rate of an epoch, (K, 1): member k's schedule from its own base
    rate; a plateau in it lowers member k's rate on member k's own logged score (`observe`), as
    its run alone does."""

    def __init__(self, schedules: list):
        self.schedules = schedules
        self.watched = schedules[0].watched

    def __call__(self, epoch: int) -> np.ndarray:
        self.logged = [s(epoch) for s in self.schedules]  # as each run alone logs its rate
        # float64, as a run alone's Python float: the optimizer rounds each factor it makes once
        return np.array(self.logged)[:, None]

    def observe(self, k: int, log: dict) -> None:
        self.schedules[k].observe(log)


class PopulationLoop(_Loop):
    """The in-memory loop over K members with their own data: batches (K, b, features) gathered
    from each member's training rows in its own order; per-member losses, scores, stoppers,
    histories and diagnostics."""

    # once a member stops, train only the active ones (`_Live`); False keeps every member in the
    # pass, its rows frozen: the same results at more cost (tests compare the two)
    compact = True

    def __init__(self, network, datasets, training, seeds, callback, should_stop, watched):
        self.datasets, self.seeds = datasets, list(seeds)
        super().__init__(network, datasets[0], training, seeds[0], callback, should_stop, watched)
        K = self.members
        # member k shuffles as seed k alone would (training.loop: SeedSequence(seed).spawn(2)[1])
        self.rngs = [np.random.default_rng(np.random.SeedSequence(s).spawn(2)[1]) for s in self.seeds]
        self.rng = self.rngs[0]
        extra = watched_metrics(training, watched)
        for d in datasets[1:]:  # a column each member's validation part must give
            metrics_in_use(extra, d)
        self.stoppers = [EarlyStopping.from_config(training.early_stopping) for _ in range(K)] \
            if training.early_stopping else None
        self.views = [_MemberView(network, k) for k in range(K)]
        self.histories = [[] for _ in range(K)]
        self.active = np.ones(K, dtype=bool)
        self.live = None  # once a member has stopped: the active members alone (`_Live`)
        self.index = np.arange(K)  # the members the pass trains (all, or live's)
        self.decay = None  # each member's own l2, (K, 1), where members differ in it
        self.frozen = None  # (member indices, their params) once a member has stopped, without `compact`
        self.clipped = np.zeros(K, dtype=np.int64)
        self.finished: list = [None] * K
        self.step = self._step
        self.labels = [f"seed {s}" for s in self.seeds]

    def diagnostics_for(self, network) -> Diagnostics:
        return Diagnostics(network, self.ws, apart=True)

    def own_rates(self, trainings: list) -> None:
        """Member k learns at trainings[k]'s learning rate (under the common schedule, a plateau
        of its own on its own score) and decays by its l2: the optimizer then updates the (K, P)
        parameters with (K, 1) rates."""
        K, network = self.members, self.network
        rates = [t.learning_rate for t in trainings]
        l2s = [t.l2 for t in trainings]
        watched = self.schedule.watched  # the run alone's plateau metric (None: no plateau)
        if len(set(rates)) == 1 and len(set(l2s)) == 1 and watched is None:
            return  # one rate for all: scalars, as a run alone has
        from .optimization import build_optimizer

        decay = self.decay = None if len(set(l2s)) == 1 else np.array(l2s)[:, None]  # float64: see nn.optimizers
        self.optimizer = build_optimizer([network.flat_params.reshape(K, -1)], self.training,
                                         decay=[network.decay_mask.reshape(K, -1)], weight_decay=decay)
        self.grads = [network.flat_grads.reshape(K, -1)]
        metric = watched or "val_loss"
        self.schedule = _MemberRates([LearningRate(t, metric, maximized(metric)) for t in trainings])

    def setup_data(self) -> None:
        """Each member's training rows, targets and weights stacked: (K, rows, ...)."""
        network, training, datasets = self.network, self.training, self.datasets
        self.X = np.stack([d.X_train for d in datasets])
        self.y = np.stack([targets_for(network, d.y_train) for d in datasets])
        if self.dataset.task == "classification" and training.label_smoothing:
            self.y = smooth_labels(self.y, training.label_smoothing, label_classes(network))
        weights = [row_weights(training.class_weight, d, d.y_train, network.dtype) for d in datasets]
        self.w = None if weights[0] is None else np.stack(weights)
        if self.has_val:
            self.X_val = np.stack([d.X_val for d in datasets])
            self.y_val = np.stack([d.y_val for d in datasets])
            self.val_targets = np.stack([targets_for(network, d.y_val) for d in datasets])
        else:
            self.val_targets = None
        # the members' rows are one window of one shard (data.source), cut as a run alone cuts it
        self.part, self.n_windows, self.window_shards = self.dataset.parts["train"], 1, 1
        self.shuffle = training.shuffle and self.batch < self.rows
        self.fill, self.order, self.prepared = False, None, 0
        self.cut_key, self.cut_batches = None, []
        K, rows = self.members, self.rows
        self.bounds = batch_bounds(rows, self.batch)
        # member k's row i, read from the members' rows as one (K·rows, ...) array
        self.offsets = (np.arange(K) * rows)[:, None]
        self.X_epoch, self.y_epoch = np.empty_like(self.X), np.empty_like(self.y)
        self.w_epoch = None if self.w is None else np.empty_like(self.w)
        if not self.shuffle:  # one order for good: the rows as they are
            self.gather(np.tile(np.arange(rows), (K, 1)))

    def window(self, order, w: int) -> int:
        return self.rows  # the members' rows are stacked in memory once (setup_data)

    def make_batches(self, n: int, bounds: list[int]) -> list:
        """Batch-major memory: each batch's (K, b, ...) rows are one contiguous block (numpy's
        matmul leaves BLAS for a batch strided across the members' whole parts)."""
        K = self.members

        def batch(a, s, e):
            return None if a is None else a.reshape(-1, a.shape[-1])[K * s:K * e].reshape(K, e - s, a.shape[-1])

        return [tuple(batch(a, s, e) for a in (self.X_epoch, self.y_epoch, self.w_epoch))
                for s, e in zip(bounds[:-1], bounds[1:])]

    def gather(self, order: np.ndarray) -> None:
        """Fill the batch-major buffers from each member's rows in its `order` (K, rows)."""
        K, b, bounds = self.members, self.batch, self.bounds
        # the leading batches of b rows at once, the (at most two) others one by one
        full = next((i for i in range(len(bounds) - 1) if bounds[i + 1] - bounds[i] != b), len(bounds) - 1)
        index = order + self.offsets
        flat = np.concatenate([index[:, :bounds[full]].reshape(K, -1, b).transpose(1, 0, 2).reshape(-1)]
                              + [index[:, s:e].reshape(-1) for s, e in zip(bounds[full:-1], bounds[full + 1:])])
        for source, out in ((self.X, self.X_epoch), (self.y, self.y_epoch), (self.w, self.w_epoch)):
            if source is not None:
                np.take(source.reshape(-1, source.shape[-1]), flat, axis=0, out=out.reshape(-1, out.shape[-1]),
                        mode="clip")

    def batch_loss(self, network, yb, wb, ws, rows: int) -> np.ndarray:
        return network.member_losses(yb, wb, ws) * rows  # (K,): each member's summed batch loss

    def count_clipped(self, norm, clipped) -> None:
        self.clipped[self.index] += norm > self.clip

    def _step(self, grads, lr) -> None:
        self.optimizer.step(grads, lr)
        if self.frozen is not None:  # stopped members keep the weights they stopped with
            members, params = self.frozen
            self.network.flat_params.reshape(self.members, -1)[members] = params

    def epoch(self, epoch: int, measured: bool, diagnose: bool = False):
        """`_Loop.epoch` over the active members only once one has stopped (`_Live`); the
        training losses (K,) with 0 for stopped members, whose logs are no longer made."""
        if self.live is None:
            return super().epoch(epoch, measured, diagnose)
        with self.live:
            loss = super().epoch(epoch, measured, diagnose)
        if loss is None or np.isscalar(loss):
            return loss
        full = np.zeros(self.members)
        full[self.index] = loss
        return full

    def run(self, start: float) -> str:
        epochs, every = self.training.iterations, log_every(self.training)
        for epoch in range(1, epochs + 1):
            logged = epoch == 1 or epoch == epochs or epoch % every == 0
            measured = logged or self.stoppers is not None or self.schedule.watched is not None
            train_loss = self.epoch(epoch, measured, diagnose=logged)
            if train_loss is None:
                return "interrupted"
            self.completed = epoch
            if measured:
                for k, log in zip(np.flatnonzero(self.active), self.measure_members(epoch, train_loss, start)):
                    if self.schedule.watched is not None:
                        self.schedule.observe(k, log)
                    stop = self.stoppers is not None and self.stoppers[k].update(log, self.views[k])
                    if logged or stop:
                        self.histories[k].append(log)
                    if stop:
                        self.finish(k, "early_stopped", start)
                if not self.active.any():
                    return "early_stopped"
        for k in np.flatnonzero(self.active):
            self.finish(k, "completed", start)
        return "completed"

    def measure_members(self, epoch: int, train_loss: np.ndarray, start: float) -> list[dict]:
        """Each active member's log of the epoch (as `measure` gives a run alone)."""
        scores = self.score_members() if self.has_val else None
        logs = []
        for k in np.flatnonzero(self.active):
            where = f"{self.advice} ({self.labels[k]})"
            log = {"epoch": epoch, "train_loss": float(train_loss[k])}
            check_finite(log["train_loss"], epoch, where)
            if scores is not None:
                log["val_loss"], log[self.metric] = float(scores[0][k]), float(scores[1][k])
                log.update(scores[2][k])
                check_finite(log["val_loss"], epoch, where)
            log["learning_rate"] = self.lr if np.isscalar(self.lr) else self.schedule.logged[k]
            log["seconds"] = self.elapsed(start)
            logs.append(log)
        return logs

    def score_members(self):
        """(losses (K,), metrics (K,), [{extra column: value}] per member) on each member's own
        validation part, in chunks of rows as a run alone scores it; once a member has stopped,
        of the active members only (the others' entries 0 and {})."""
        if self.live is None:
            return self._score()
        with self.live:
            losses, metrics, more = self._score()
        K, index = self.members, self.index
        whole = np.zeros(K), np.zeros(K), [{} for _ in range(K)]
        whole[0][index], whole[1][index] = losses, metrics
        for i, k in enumerate(index):
            whole[2][k] = more[i]
        return whole

    def _score(self):
        network, ws, task = self.network, self.ws, self.dataset.task
        X, t, y = self.X_val, self.val_targets, self.y_val
        K, rows = self.members, X.shape[1]
        keep = task == "regression" or self.extra
        outputs = np.empty(t.shape, dtype=network.dtype) if keep else None
        total, correct = np.zeros(K), np.zeros(K)
        # chunks of CHUNK rows as a run alone's, each passed CHUNK / K rows at a time (members'
        # (K, 2,048, 128) arrays leave the cache: 2.7x the time of 8 runs' scoring on W2)
        for s, out in network.forward_chunks(X, CHUNK, ws):
            n = out.shape[1]
            total += network.member_losses(t[:, s:s + n], ws=ws) * n
            if outputs is not None:
                outputs[:, s:s + n] = out
            if task != "regression":
                predicted = out.argmax(axis=-1) if out.shape[-1] > 1 else out[..., 0] > 0.5
                correct += np.count_nonzero(predicted == y[:, s:s + n], axis=1)
        if task == "regression":
            from ..nn.metrics import r2

            return total / rows, np.array([r2(t[k], outputs[k]) for k in range(K)]), [{} for _ in range(K)]
        more = [extra_scores(self.extra, y[k], outputs[k]) if self.extra else {} for k in range(K)]
        return total / rows, correct / rows, more

    def finish(self, k: int, status: str, start: float) -> None:
        """Member k's run ends here: its checkpoint state now, its weights (the best epoch's
        when its stopper kept them), its final metrics; then the others train on without it (`_Live`)."""
        stopper = self.stoppers[k] if self.stoppers is not None else None
        checkpoint = self.member_state(k, start)
        alone = self.network.member(k)
        restored = bool(stopper and stopper.best_params is not None)
        if restored:
            alone.restore(stopper.best_params)
        best_by = stopper.metric if stopper else "val_loss" if self.has_val else "train_loss"
        history = self.histories[k]
        best_epoch = stopper.best_epoch if stopper else (min(history, key=lambda r: r[best_by])["epoch"]
                                                          if history else None)
        diagnostics = [{key: v for key, v in row.items() if key != "member"}
                       for row in self.diagnostics if row["member"] == k]
        result = TrainResult(history, status, best_epoch, self.elapsed(start), self.completed,
                             diagnostics=diagnostics, restored_best=restored, best_by=best_by)
        dataset = self.datasets[k]
        # the training targets as its loop trained on them (smoothed labels), as a run alone scores
        result.metrics = final_metrics(alone, dataset, result, self.extra, self.loss_targets)
        if self.clip is not None:
            result.clipped_steps, result.steps = int(self.clipped[k]), self.steps
            result.metrics.update(clipped_steps=result.clipped_steps, steps=self.steps)
        check_finite(result.metrics["train"]["loss"], max(result.epochs, 1), f"{self.advice} ({self.labels[k]})")
        self.finished[k] = Member(result, alone, checkpoint)
        self.active[k] = False
        if not self.active.any() or status != "early_stopped":
            return
        if self.compact:
            self.live = _Live(self, self.live)
        else:  # the whole pass trains on, the stopped members' rows put back after each step
            stopped = np.flatnonzero(~self.active)
            self.frozen = (stopped, self.network.flat_params.reshape(self.members, -1)[stopped].copy())

    def member_state(self, k: int, start: float) -> tuple[dict, dict]:
        """(arrays, meta) of the checkpoint member k's run alone would write now (`_Loop.state`
        of a network without members)."""
        K, row = self.members, k
        optimizer = self.optimizer.state()
        if self.live is not None:  # the active members' state is the smaller pass's
            optimizer, K, row = self.live.optimizer.state(), len(self.index), int(np.flatnonzero(self.index == k)[0])
        arrays = {name: np.array(a[k]) for name, a in self.network.arrays().items()}
        arrays.update({f"opt_{name}": v.reshape(K, -1)[row].copy() for name, v in optimizer.items() if name != "t"})
        meta = {"completed": self.completed, "rng": self.rngs[k].bit_generator.state, "optimizer_t": optimizer["t"],
                "history": self.histories[k], "seconds": self.elapsed(start), "batches_done": 0, "partial_loss": 0.0,
                "diagnostics": [{key: v for key, v in row.items() if key != "member"}
                                for row in self.diagnostics if row["member"] == k]}
        if self.clip is not None:
            meta["clipped_steps"], meta["steps"] = int(self.clipped[k]), self.steps
        if self.dropout_rng is not None:  # member k's own masks' generator (nn.layers.MemberGenerators)
            meta["dropout_rng"] = self.dropout_rng.generators[k].bit_generator.state
        if self.schedule.watched is not None:  # its plateau's reductions
            meta["schedule"] = self.schedule.schedules[k].state()
        if self.stoppers is not None:
            stopper = self.stoppers[k]
            meta["stopper"] = stopper.state()
            if stopper.best_params is not None:
                arrays.update({f"best.{name}": v for name, v in stopper.best_params.items()})
        return arrays, meta


class _Live:
    """The members still active once one has stopped, as a population of their own that
    `PopulationLoop.epoch` trains in place of the whole one (`with live:` swaps the loop's
    network, optimizer, workspace, data and generators for theirs, and afterwards writes their
    weights and state back into the whole network's rows, which scoring, snapshots and
    checkpoints read). Built from the previous live population, if any, so that each member's
    optimizer state carries over exactly."""

    SWAPPED = ("network", "optimizer", "step", "grads", "ws", "members", "X", "y", "w", "X_epoch", "y_epoch",
               "w_epoch", "offsets", "rngs", "rng", "diagnose", "schedule", "cut_key", "cut_batches", "X_val", "y_val",
               "val_targets")

    def __init__(self, loop: PopulationLoop, before: "_Live | None"):
        from .optimization import build_optimizer

        old = loop.index  # the members the pass trained until now
        index = np.flatnonzero(loop.active)
        keep = np.searchsorted(old, index)  # their rows in that pass
        source = before.network if before is not None else loop.network
        sub = Network.stack([source.member(int(i)) for i in keep])
        K = len(index)
        previous = before.optimizer if before is not None else loop.optimizer
        training = loop.training
        if isinstance(loop.schedule, _MemberRates) or loop.decay is not None:
            decay = None if loop.decay is None else loop.decay[index]
            optimizer = build_optimizer([sub.flat_params.reshape(K, -1)], training,
                                        decay=[sub.decay_mask.reshape(K, -1)], weight_decay=decay)
            grads = [sub.flat_grads.reshape(K, -1)]
        else:
            from .optimization import network_optimizer

            optimizer, grads = network_optimizer(sub, training), [sub.flat_grads]
        shapes = {name: np.shape(v) for name, v in optimizer.state().items()}  # the active members' own
        optimizer.load_state({name: v if name == "t" else v.reshape(len(old), -1)[keep].reshape(shapes[name])
                              for name, v in previous.state().items()})
        loop.index = index
        rows = loop.rows
        self.loop, self.index = loop, index
        X = loop.X[index] if before is None else before.mine["X"][keep]
        y = loop.y[index] if before is None else before.mine["y"][keep]
        w = None if loop.w is None else (loop.w[index] if before is None else before.mine["w"][keep])
        rngs = [loop.rngs[i] for i in index] if before is None else [before.mine["rngs"][i] for i in keep]
        ws = sub.workspace()
        self.network, self.optimizer = sub, optimizer
        self.mine = {
            "network": sub, "optimizer": optimizer, "step": optimizer.step, "grads": grads, "ws": ws, "members": K,
            "X": X, "y": y, "w": w, "X_epoch": np.empty_like(X), "y_epoch": np.empty_like(y),
            "w_epoch": None if w is None else np.empty_like(w), "offsets": (np.arange(K) * rows)[:, None],
            "rngs": rngs, "rng": rngs[0], "diagnose": Diagnostics(sub, ws, apart=True),
            "schedule": _Slice(loop.schedule, index), "cut_key": None, "cut_batches": []}
        if loop.has_val:  # each active member's validation part, for `score_members`
            for name in ("X_val", "y_val", "val_targets"):
                self.mine[name] = getattr(loop, name)[index] if before is None else before.mine[name][keep]
        else:
            self.mine.update(X_val=None, y_val=None, val_targets=None)
        self.saved: dict = {}

    def __enter__(self):
        loop = self.loop
        self.saved = {name: getattr(loop, name, None) for name in self.SWAPPED}
        for name, value in self.mine.items():
            setattr(loop, name, value)
        if not loop.shuffle and loop.cut_key is None:  # one order for good, as setup_data gathers it
            loop.gather(np.tile(np.arange(loop.rows), (len(self.index), 1)))
        self.diagnosed = len(loop.diagnostics)
        return self

    def __exit__(self, *exc):
        loop = self.loop
        for name in ("cut_key", "cut_batches"):
            self.mine[name] = getattr(loop, name)
        for name, value in self.saved.items():
            setattr(loop, name, value)
        for row in loop.diagnostics[self.diagnosed:]:  # the live pass numbers its members from 0
            row["member"] = int(self.index[row["member"]])
        whole = loop.network
        whole.flat_params.reshape(loop.members, -1)[self.index] = self.network.flat_params.reshape(len(self.index), -1)
        for (name, a), (_, b) in zip(whole.named_state(), self.network.named_state()):
            a[self.index] = b
        return False


class _Slice:
    """A schedule's rates of the active members only: (K, 1) rates cut to their rows."""

    def __init__(self, schedule, index):
        self.schedule, self.index = schedule, index
        self.watched = schedule.watched

    def __call__(self, epoch: int):
        rates = self.schedule(epoch)
        return rates if np.isscalar(rates) else rates[self.index]
