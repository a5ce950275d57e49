"""How backpropagation itself is doing, layer by layer, measured on one training step:

- grad_norm     ‖∂L/∂Wᵢ‖ (Frobenius) of the step's batch: vanishing gradients show as the first
                layers' norms orders of magnitude below the last's; exploding ones as growth;
- weight_norm   ‖Wᵢ‖ after the step;
- update_ratio  ‖ΔWᵢ‖ / ‖Wᵢ‖ of the step: about 1e-3 is the usual healthy size; far below, the
                learning rate barely moves the weights; far above, it tears them around;
- dead_fraction for ReLU-family layers, the share of units whose pre-activation was ≤ 0 for every
                row of the batch (they pass no gradient back: "dead ReLUs").
"""
from __future__ import annotations

import math

import numpy as np

RELU_FAMILY = ("relu", "leaky_relu")  # activations whose units can die (zero gradient below 0)


def dead_fraction(z: np.ndarray) -> float:
    """z: (rows, units) pre-activations of one batch -> share of units ≤ 0 on every row."""
    # a unit is dead when even its largest pre-activation over the batch is ≤ 0
    return np.count_nonzero(z.max(axis=0) <= 0) / z.shape[1] if z.size else 0.0


class Diagnostics:
    """Measures a network's steps layer by layer, from its flat parameter and gradient arrays
    (W0, b0, W1, b1, ...): each norm is one dot product of a layer's slice with itself."""

    def __init__(self, network):
        self.network = network
        self.slices, offset = [], 0
        for W, b in zip(network.weights, network.biases):
            self.slices.append(slice(offset, offset + W.size))  # the weights; the bias follows
            offset += W.size + b.size
        self.relu = [i for i, name in enumerate(network.layer_activations) if name in RELU_FAMILY]

    def before_step(self) -> np.ndarray:
        """A copy of the parameters, taken just before the step to be measured."""
        return self.network.flat_params.copy()

    def after_step(self, before: np.ndarray, zs: list, epoch: int) -> list[dict]:
        """One row per layer for the step just taken; `zs`: its pre-activations per layer."""
        params, grads, dot = self.network.flat_params, self.network.flat_grads, np.dot
        change = params - before
        rows = []
        for i, s in enumerate(self.slices):
            g, w, d = grads[s], params[s], change[s]
            weight = math.sqrt(float(dot(w, w)))
            rows.append({"epoch": epoch, "layer": i, "grad_norm": math.sqrt(float(dot(g, g))), "weight_norm": weight,
                         "update_ratio": math.sqrt(float(dot(d, d))) / weight if weight > 0 else float("nan"),
                         "dead_fraction": float(dead_fraction(zs[i])) if i in self.relu else None})
        return rows
