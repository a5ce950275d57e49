"""`nnctl trace`: training steps of the config's real network, every number kept.

For N rows of the training part, in float64: the initial weights; the forward pass layer by
layer (z = a·W + b, a = f(z)); the loss; the backward pass (the output delta, then
delta = (delta_next · W_nextᵀ) ⊙ f'(z) for each hidden layer); every gradient; and the update
with the weights before and after. Repeated for K steps on the same rows.
"""
from __future__ import annotations

import numpy as np

from ..nn.optimizers import network_optimizer
from ..nn.schedules import learning_rate
from ..training.build import architecture, prepare_float64


def _m(a) -> list:
    # + 0.0 turns -0.0 (ReLU's z * 0 for negative z, a delta masked to 0) into 0.0: the same
    # number, but "-0." on screen would puzzle a reader
    return (np.asarray(a, dtype=np.float64) + 0.0).tolist()


def run_trace(config, overrides=(), rows: int = 4, steps: int = 1) -> dict:
    network, X, y, cfg, weights = prepare_float64(config, overrides, rows)
    training = cfg["training"]
    optimizer = network_optimizer(network, training)
    lr = learning_rate(training, 0)
    layers = len(network.weights)
    record = {
        "config": str(config), "architecture": architecture(network.sizes), "rows": int(len(X)),
        "activations": network.layer_activations, "loss": network.loss_name,
        "optimizer": training["optimizer"], "learning_rate": lr, "l2": training["l2"],
        "input": _m(X), "targets": _m(y),
        "initial": [{"layer": i, "W": _m(W), "b": _m(b)} for i, (W, b) in enumerate(zip(network.weights, network.biases))],
        "steps": [],
    }
    for step in range(1, steps + 1):
        network.forward(X)
        loss = network.loss_value(y, weights)
        network.backward(y, weights)
        _, zs, outs, deltas = network.internals()
        forward = [{"layer": i, "activation": network.layer_activations[i], "z": _m(zs[i]), "a": _m(outs[i])}
                   for i in range(layers)]
        backward = [{"layer": i, "delta": _m(deltas[i]), "dW": _m(network.grads_W[i]), "db": _m(network.grads_b[i])}
                    for i in reversed(range(layers))]
        before = [(W.copy(), b.copy()) for W, b in zip(network.weights, network.biases)]
        optimizer.step([network.flat_grads], lr)
        update = [{"layer": i, "W_before": _m(Wb), "W_after": _m(W), "b_before": _m(bb), "b_after": _m(b)}
                  for i, ((Wb, bb), W, b) in enumerate(zip(before, network.weights, network.biases))]
        record["steps"].append({"step": step, "forward": forward, "loss": loss, "backward": backward,
                                "update": update})
    return record
