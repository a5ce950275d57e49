"""Weight initializers: name -> sampler `(rng, fan_in, fan_out) -> float64 array (fan_in, fan_out)`.

Biases always start at zero. Each sampler's standard deviation:

- he, he_uniform:      sqrt(2 / fan_in)            keeps ReLU activations' variance layer to layer
- xavier (glorot):     sqrt(2 / (fan_in + fan_out)), uniform on ±sqrt(6 / (fan_in + fan_out))
- xavier_normal:       sqrt(2 / (fan_in + fan_out))
- lecun:               sqrt(1 / fan_in)
- normal:              0.05
"""
from __future__ import annotations

import numpy as np


def he(rng, fan_in, fan_out):
    return rng.normal(0.0, np.sqrt(2.0 / fan_in), size=(fan_in, fan_out))


def he_uniform(rng, fan_in, fan_out):
    limit = np.sqrt(6.0 / fan_in)
    return rng.uniform(-limit, limit, size=(fan_in, fan_out))


def xavier(rng, fan_in, fan_out):
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=(fan_in, fan_out))


def xavier_normal(rng, fan_in, fan_out):
    return rng.normal(0.0, np.sqrt(2.0 / (fan_in + fan_out)), size=(fan_in, fan_out))


def lecun(rng, fan_in, fan_out):
    return rng.normal(0.0, np.sqrt(1.0 / fan_in), size=(fan_in, fan_out))


def normal(rng, fan_in, fan_out):
    return rng.normal(0.0, 0.05, size=(fan_in, fan_out))


INITIALIZERS = {
    "he": he,
    "he_uniform": he_uniform,
    "xavier": xavier,
    "glorot": xavier,
    "xavier_normal": xavier_normal,
    "lecun": lecun,
    "normal": normal,
}


def init_names(activations: list[str], init: str, auto_for) -> list[str]:
    """The initializer of each layer, the output's included. `auto` asks `auto_for(activation)`
    for each hidden layer (He for the ReLU family, Xavier otherwise) and uses Xavier for the
    output layer, whose softmax, sigmoid or identity is not ReLU-like."""
    if init != "auto":
        return [init] * (len(activations) + 1)
    return [auto_for(a) for a in activations] + ["xavier"]
