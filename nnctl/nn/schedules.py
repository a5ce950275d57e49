"""Learning-rate schedules, per epoch (epoch counts from 0), as PyTorch's StepLR, ExponentialLR,
CosineAnnealingLR and ReduceLROnPlateau, with an optional linear warm-up in front of any of them.

    constant:     lr
    step:         lr · gamma^(epoch // step_size)
    exponential:  lr · gamma^epoch
    cosine:       min_lr + (lr − min_lr) · (1 + cos(π · min(epoch, T) / T)) / 2, T = `decay_epochs`
                  (the epochs it decays over; by default every epoch training may run)
    plateau:      lr, times `factor` each time the watched value has not improved for
                  `patience` epochs in a row, never below `min_lr` (see `Plateau`)
    warm-up w:    lr(0) · (epoch + 1) / (w + 1) for epoch < w, then the schedule from its epoch 0
"""
from __future__ import annotations

import math


def constant(lr: float, epoch: int, epochs: int) -> float:
    return lr


def step(lr: float, epoch: int, epochs: int, step_size: int = 50, gamma: float = 0.1) -> float:
    return lr * gamma ** (epoch // step_size)


def exponential(lr: float, epoch: int, epochs: int, gamma: float = 0.99) -> float:
    return lr * gamma ** epoch


def cosine(lr: float, epoch: int, epochs: int, min_learning_rate: float = 0.0, decay_epochs: int | None = None) -> float:
    span = max(decay_epochs or epochs, 1)
    return min_learning_rate + (lr - min_learning_rate) * (1 + math.cos(math.pi * min(epoch, span) / span)) / 2


def plateau(lr: float, epoch: int, epochs: int, factor: float = 0.5, patience: int = 5, min_lr: float = 1e-6) -> float:
    """The epoch's part of plateau: the base rate; the reductions are `Plateau`'s."""
    return lr


def warmed_up(schedule, warmup: int, epochs: int):
    """`schedule` (epoch, epochs -> lr) behind a linear warm-up of `warmup` epochs: the
    schedule then runs over the epochs left, from its own epoch 0."""
    def lr(epoch: int) -> float:
        if epoch < warmup:
            return schedule(0, max(epochs - warmup, 1)) * (epoch + 1) / (warmup + 1)
        return schedule(epoch - warmup, max(epochs - warmup, 1))
    return lr


class Plateau:
    """ReduceLROnPlateau: a factor on the learning rate, cut by `factor` after `patience`
    observed values in a row without improvement (by more than a relative 1e-4, PyTorch's
    threshold), floored so that the rate stays at or above `min_lr`."""

    def __init__(self, factor: float, patience: int, min_lr: float, maximize: bool = False):
        self.factor, self.patience, self.min_lr, self.maximize = factor, patience, min_lr, maximize
        self.best, self.waited, self.scale = None, 0, 1.0

    def observe(self, value: float) -> None:
        better = self.best is None or (value > self.best + 1e-4 * abs(self.best) if self.maximize
                                       else value < self.best - 1e-4 * abs(self.best))
        if better:
            self.best, self.waited = value, 0
            return
        self.waited += 1
        if self.waited >= self.patience:
            self.scale *= self.factor
            self.waited = 0

    def rate(self, lr: float) -> float:
        return max(lr * self.scale, min(self.min_lr, lr))

    def state(self) -> dict:
        return {"best": self.best, "waited": self.waited, "scale": self.scale}

    def load_state(self, state: dict) -> None:
        self.best, self.waited, self.scale = state["best"], int(state["waited"]), float(state["scale"])


# name -> (function, its own keyword arguments with their defaults)
SCHEDULES = {
    "constant": (constant, {}),
    "step": (step, {"step_size": 50, "gamma": 0.1}),
    "exponential": (exponential, {"gamma": 0.99}),
    "cosine": (cosine, {"min_learning_rate": 0.0, "decay_epochs": None}),
    "plateau": (plateau, {"factor": 0.5, "patience": 5, "min_lr": 1e-6}),
}
