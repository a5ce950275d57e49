"""Learning-rate schedules, per epoch (epoch counts from 0), as PyTorch's StepLR, ExponentialLR
and CosineAnnealingLR (with T_max = iterations).

    constant:     lr
    step:         lr · gamma^(epoch // step_size)
    exponential:  lr · gamma^epoch
    cosine:       min_lr + (lr − min_lr) · (1 + cos(π · epoch / iterations)) / 2
"""
from __future__ import annotations

import math


def constant(lr: float, epoch: int, epochs: int) -> float:
    return lr


def step(lr: float, epoch: int, epochs: int, step_size: int = 50, gamma: float = 0.1) -> float:
    return lr * gamma ** (epoch // step_size)


def exponential(lr: float, epoch: int, epochs: int, gamma: float = 0.99) -> float:
    return lr * gamma ** epoch


def cosine(lr: float, epoch: int, epochs: int, min_learning_rate: float = 0.0) -> float:
    return min_learning_rate + (lr - min_learning_rate) * (1 + math.cos(math.pi * epoch / max(epochs, 1))) / 2


# name -> (function, its own keyword arguments with their defaults)
SCHEDULES = {
    "constant": (constant, {}),
    "step": (step, {"step_size": 50, "gamma": 0.1}),
    "exponential": (exponential, {"gamma": 0.99}),
    "cosine": (cosine, {"min_learning_rate": 0.0}),
}
