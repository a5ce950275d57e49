"""Early stopping: watch a logged value, stop after `patience` epochs without improvement, and
keep the best epoch's weights."""
from __future__ import annotations

import math

from ..nn.network import MLP


class EarlyStopping:
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

    def state(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "waited": self.waited}

    def load_state(self, state: dict, best_params) -> None:
        # a best of ±inf (nothing measured yet) is stored as null in JSON
        best = state["best"]
        self.best = float(best) if best is not None else (-math.inf if self.maximize else math.inf)
        self.best_epoch, self.waited = state["best_epoch"], int(state["waited"])
        self.best_params = None if best_params is None else best_params.copy()
