"""An ensemble's members stop and slow down on their own validation scores.

With `model.ensemble: K`, member i is the network `seed + i` trains alone, and that holds
through early stopping and a plateau schedule too: each member watches its own validation
score, halves its own learning rate when that stalls and keeps its own best epoch's weights.
Training ends when every member has stopped; a stopped member takes no more steps (its rate is
0). The ensemble's validation loss and metric, the mean prediction's, are still what
`history.csv` logs.

Why not one stop for all on the mean's score: that stops every member at the epoch where their
mean looked best on the validation rows, which on small tables is often an early one (during
warm-up the members disagree most, so their mean scores well) where each member is far from its
own best. Members that are their own runs make the mean's log loss / squared error at most the
members' average on every row (convexity), so the ensemble is never worse than its average
member.
"""
from __future__ import annotations

import numpy as np

from .loop import _Loop
from .optimization import LearningRate
from .scoring import R2Sums, extra_scores, scoring_chunk, targets_for
from .stopping import MAXIMIZED, EarlyStopping


def member_scores(network, task: str, chunks, extra=(), ws=None):
    """From one pass over a part given as (X, y) chunks (data.source): the mean prediction's
    (loss, metric, {extra column: value}), as `score_chunks` gives them, and each member's own log
    ({"val_loss", "val_accuracy" | "val_r2", extra columns}), as the member alone measures it."""
    K = network.members
    ws = network.workspace() if ws is None else ws
    chunk = scoring_chunk(ws)
    rows, total, own, correct = 0, 0.0, np.zeros(K), np.zeros(K + 1)
    sums, kept = R2Sums(), []
    for X, y in chunks:
        t = targets_for(network, y)
        outputs = np.empty((K + 1,) + t.shape, dtype=network.dtype)  # the members', then their mean
        for start, out in network.forward_chunks(X, chunk, ws):
            n = out.shape[-2]
            part = t[start:start + n]
            own += network.member_losses(np.broadcast_to(part, out.shape), ws=ws) * n
            mean = network.mean_output(out)
            total += network.output_loss(mean, part) * n
            outputs[:K, start:start + n], outputs[K, start:start + n] = out, mean
        if task == "regression":
            sums.add(np.broadcast_to(t, outputs.shape), outputs)
        else:
            predicted = outputs.argmax(axis=-1) if outputs.shape[-1] > 1 else outputs[..., 0] > 0.5
            correct += np.count_nonzero(predicted == y, axis=-1)
            if extra:
                kept.append((y, outputs))
        rows += len(X)
    if task == "regression":
        r2s = sums.value()
        return (total / rows, float(r2s[K]), {}), [{"val_loss": own[k] / rows, "val_r2": float(r2s[k])}
                                                   for k in range(K)]
    if extra:
        y = np.concatenate([k[0] for k in kept]) if len(kept) > 1 else kept[0][0]
        outputs = np.concatenate([k[1] for k in kept], axis=1) if len(kept) > 1 else kept[0][1]
    scores = [extra_scores(extra, y, outputs[k]) if extra else {} for k in range(K + 1)]
    ensemble = (total / rows, float(correct[K] / rows), scores[K])
    return ensemble, [{"val_loss": own[k] / rows, "val_accuracy": float(correct[k] / rows), **scores[k]}
                      for k in range(K)]


class _Row:
    """What member k's EarlyStopping snapshots: member k's row of one whole-network snapshot."""

    def __init__(self, stopping: "MemberStopping", network, k: int):
        self.stopping, self.network, self.k = stopping, network, k

    def snapshot(self):
        best, net, k = self.stopping.best_params, self.network, self.k
        if best is None:
            best = self.stopping.best_params = net.snapshot()
        best["params"].reshape(net.members, -1)[k] = net.flat_params.reshape(net.members, -1)[k]
        for name, a in net.named_state():
            best[name][k] = a[k]
        return True  # the stopper's own best_params only says that there is one


class MemberStopping:
    """Early stopping for K members, shaped as `EarlyStopping` for the loop: member k stops after
    `patience` epochs without improving its own score; `update` is True once every member has
    stopped. `best_params` is one snapshot of the whole network whose row k is member k's best
    epoch; `best_epoch` the last of the members' best epochs. `logs` (each member's log of the
    epoch) is set by the loop before each `update`."""

    def __init__(self, early_stopping, members: int):
        self.stoppers = [EarlyStopping.from_config(early_stopping) for _ in range(members)]
        self.metric, self.restore_best = self.stoppers[0].metric, self.stoppers[0].restore_best
        self.active = np.ones(members, dtype=bool)
        self.best_params = None
        self.logs: list[dict] = []

    @property
    def best_epoch(self) -> int | None:
        epochs = [s.best_epoch for s in self.stoppers]
        return None if None in epochs else max(epochs)

    @property
    def best_epochs(self) -> list:
        return [s.best_epoch for s in self.stoppers]

    def update(self, log: dict, network) -> bool:
        for k in np.flatnonzero(self.active):
            if self.stoppers[k].update({"epoch": log["epoch"], **self.logs[k]}, _Row(self, network, k)):
                self.active[k] = False
        return not self.active.any()

    def state(self) -> dict:
        return {"members": [s.state() for s in self.stoppers], "active": self.active.tolist()}

    def load_state(self, state: dict, best_params) -> None:
        if len(state["members"]) != len(self.stoppers):
            raise ValueError(f"the checkpoint stops {len(state['members'])} members, this run {len(self.stoppers)}")
        for s, member in zip(self.stoppers, state["members"]):
            s.load_state(member, None)
            s.best_params = True if best_params is not None and s.best_epoch is not None else None
        self.active[:] = state["active"]
        self.best_params = None if best_params is None else {k: v.copy() for k, v in best_params.items()}


class MemberRates:
    """The learning rate of each member, shaped as `LearningRate` for the loop: K schedules, each
    a plateau watching its own member's score; a stopped member's rate is 0. Called with an
    epoch it gives one float when every member has the same rate, else one rate per parameter
    (the flat array's shape), which every optimizer's arithmetic takes as it takes a float."""

    def __init__(self, training, metric: str, members: int, size: int, dtype):
        self.rates = [LearningRate(training, metric, metric in MAXIMIZED) for _ in range(members)]
        self.watched = self.rates[0].watched
        self.members, self.size, self.dtype = members, size, dtype
        self.active = np.ones(members, dtype=bool)  # MemberStopping's, when there is one
        self.logs: list[dict] = []
        self.last = None  # the members' own rates of the last epoch asked for

    def __call__(self, epoch: int):
        # the members' schedules are one config's: the epoch's base rate is worked out once, and
        # each member's plateau scales it (what each LearningRate would give)
        base = self.rates[0].epoch_rate(epoch)
        rates = np.array([base if r.plateau is None else r.plateau.rate(base) for r in self.rates]) * self.active
        self.last = rates
        if (rates == rates[0]).all():
            return float(rates[0])
        return np.repeat(rates.astype(self.dtype), self.size // self.members)

    def logged(self) -> float:
        """The rate history.csv shows: the mean of the members' rates (stopped members left out)."""
        rates = self.last[self.active] if self.active.any() else self.last
        return float(rates.mean())

    def observe(self, log: dict) -> None:
        for k in np.flatnonzero(self.active):
            self.rates[k].observe(self.logs[k])

    def state(self) -> dict | None:
        states = [r.state() for r in self.rates]
        return None if states[0] is None else {"members": states}

    def load_state(self, state: dict | None) -> None:
        if state:
            for r, member in zip(self.rates, state["members"]):
                r.load_state(member)


class EnsembleLoop(_Loop):
    """`_Loop` for an ensemble with a validation part whose early stopping or plateau schedule
    should act per member (see the module's docstring)."""

    def __init__(self, network, dataset, training, seed, callback, should_stop, watched):
        super().__init__(network, dataset, training, seed, callback, should_stop, watched)
        K = self.members
        # each member's plateau watches what its early stopping watches, else its validation loss
        metric = training.early_stopping.metric if training.early_stopping else "val_loss"
        self.schedule = MemberRates(training, metric, K, network.flat_params.size, network.dtype)
        if training.early_stopping:
            self.stopper = MemberStopping(training.early_stopping, K)
            self.schedule.active = self.stopper.active

    def score_validation(self):
        """The mean prediction's (loss, metric, extra columns), and each member's own log, handed
        to the stoppers and schedules, from one pass over the validation rows."""
        network, dataset = self.network, self.dataset
        ensemble, logs = member_scores(network, dataset.task, dataset.chunks("validation"), self.extra, self.ws)
        self.schedule.logs = logs
        if self.stopper is not None:
            self.stopper.logs = logs
        return ensemble

    def measure(self, epoch: int, train_loss: float, start: float) -> dict:
        log = super().measure(epoch, train_loss, start)
        log["learning_rate"] = self.schedule.logged()
        return log


def uses_member_loop(network, dataset, training) -> bool:
    """Whether an ensemble trains with `EnsembleLoop`: it has a validation part, and early
    stopping or a plateau schedule to act per member on a validation score (the members' own
    training losses are not measured apart: on `train_loss` they stop all at once; nor are the
    members of several targets yet, whose score is a weighted sum over heads)."""
    stop = training.early_stopping
    return bool(network.members and network.heads is None and len(dataset.parts["validation"])
                and (stop or training.schedule["name"] == "plateau") and not (stop and stop.metric == "train_loss"))

