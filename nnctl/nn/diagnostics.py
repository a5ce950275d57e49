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

import numpy as np

RELU_FAMILY = ("relu", "leaky_relu")  # activations whose units can die (zero gradient below 0)


def dead_fraction(z: np.ndarray) -> float:
    """z: (rows, units) pre-activations of one batch -> share of units ≤ 0 on every row."""
    return float(np.mean(np.all(z <= 0, axis=0))) if z.size else 0.0


def layer_diagnostics(network, weights_before: np.ndarray, zs: list, epoch: int) -> list[dict]:
    """One row per layer for the step just taken. `weights_before`: the flat parameters before
    the step; `zs`: the step's pre-activations per layer (rows, units)."""
    rows, offset = [], 0
    flat = network.flat_params
    for i, (W, b, grad) in enumerate(zip(network.weights, network.biases, network.grads_W)):
        end = offset + W.size
        change = flat[offset:end].astype(np.float64) - weights_before[offset:end]
        weight_norm = float(np.linalg.norm(W.astype(np.float64)))
        activation = network.layer_activations[i]
        rows.append({"epoch": epoch, "layer": i,
                     "grad_norm": float(np.linalg.norm(grad.astype(np.float64))),
                     "weight_norm": weight_norm,
                     "update_ratio": float(np.linalg.norm(change)) / weight_norm if weight_norm > 0 else float("nan"),
                     "dead_fraction": dead_fraction(zs[i]) if activation in RELU_FAMILY else None})
        offset = end + b.size
    return rows
