"""Early stopping: watch a logged value, stop after `patience` epochs without improvement, and
keep the best epoch's weights (and layer state)."""
from __future__ import annotations

import math

from ..nn.network import Network
from .scoring import EXTRA_METRICS

MAXIMIZED = ("val_accuracy", "val_r2") + EXTRA_METRICS


def maximized(metric: str) -> bool:
    """Whether a larger `metric` is better: MAXIMIZED, or a target's own (val_price_r2; its
    val_<target>_loss is minimized)."""
    from ..config.spec import TARGET_METRICS

    return metric in MAXIMIZED or (metric.startswith("val_") and metric not in ("val_loss",) and any(
        metric.endswith(f"_{m}") for m in TARGET_METRICS if m != "loss"))


class EarlyStopping:
    def __init__(self, metric: str = "val_loss", patience: int = 10, min_delta: float = 0.0,
                 restore_best: bool = True):
        self.metric, self.patience, self.min_delta, self.restore_best = metric, patience, min_delta, restore_best
        self.maximize = maximized(metric)
        self.best = -math.inf if self.maximize else math.inf
        self.best_epoch = None
        self.best_params = None
        self.waited = 0

    @classmethod
    def from_config(cls, early_stopping: dict) -> "EarlyStopping":
        """From the resolved `training.early_stopping` section."""
        return cls(early_stopping.metric, early_stopping.patience, early_stopping.min_delta,
                   early_stopping.restore_best)

    def update(self, log: dict, network: Network) -> bool:
        """Record the epoch; True when training should stop."""
        value = log[self.metric]
        gain = value - self.best if self.maximize else self.best - value
        if gain > self.min_delta or self.best_epoch is None:
            self.best, self.best_epoch, self.waited = value, log["epoch"], 0
            if self.restore_best:
                self.best_params = network.snapshot()
            return False
        self.waited += 1
        return self.waited >= self.patience

    def state(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "waited": self.waited}

    def load_state(self, state: dict, best_params) -> None:
        # a best of ±inf (nothing measured yet) is stored as null in JSON
        best = state["best"]
        self.best = float(best) if best is not None else (-math.inf if self.maximize else math.inf)
        self.best_epoch, self.waited = state["best_epoch"], int(state["waited"])
        self.best_params = None if best_params is None else {k: v.copy() for k, v in best_params.items()}
