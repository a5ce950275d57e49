"""Learning-rate schedules, per epoch (epoch counts from 0), as PyTorch's StepLR, ExponentialLR
and CosineAnnealingLR (with T_max = iterations).

    constant:     lr
    step:         lr · gamma^(epoch // step_size)
    exponential:  lr · gamma^epoch
    cosine:       min_lr + (lr − min_lr) · (1 + cos(π · epoch / iterations)) / 2
"""
from __future__ import annotations

import math


def constant(lr, epoch, epochs, s):
    return lr


def step(lr, epoch, epochs, s):
    return lr * s["gamma"] ** (epoch // s["step_size"])


def exponential(lr, epoch, epochs, s):
    return lr * s["gamma"] ** epoch


def cosine(lr, epoch, epochs, s):
    low = s["min_learning_rate"]
    return low + (lr - low) * (1 + math.cos(math.pi * epoch / max(epochs, 1))) / 2


# name -> (function, its own keys with their defaults)
SCHEDULES = {
    "constant": (constant, {}),
    "step": (step, {"step_size": 50, "gamma": 0.1}),
    "exponential": (exponential, {"gamma": 0.99}),
    "cosine": (cosine, {"min_learning_rate": 0.0}),
}


def learning_rate(training: dict, epoch: int) -> float:
    """The learning rate for `epoch` under the resolved config's `training` section."""
    schedule = training["schedule"]
    function, _ = SCHEDULES[schedule["name"]]
    return function(training["learning_rate"], epoch, training["iterations"], schedule)
