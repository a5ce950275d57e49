"""`nnctl trace`: training steps of the config's real network, every number kept.

For N rows of the training part, in float64: the initial arrays of every trainable layer; the
forward pass layer by layer (each layer's output, the output head's probabilities); the loss; the
backward pass (the delta arriving at each layer, ∂L/∂(its output), last to first, and each
layer's gradients by name); and the update, with each array before and after. Repeated for K
steps on the same rows. Works for any layer type through the layer contract.
"""
from __future__ import annotations

import numpy as np

from ..nn.clipping import clip_grad_norm
from ..training.build import architecture, prepare_float64
from ..training.optimization import build_schedule, network_optimizer


def _m(a) -> list:
    # + 0.0 turns -0.0 (ReLU's z * 0 for negative z, a delta masked to 0) into 0.0: the same
    # number, but "-0." on screen would puzzle a reader
    return (np.asarray(a, dtype=np.float64) + 0.0).tolist()


def _arrays(layer) -> dict:
    return {name: _m(value) for name, value in layer.params.items()}


def run_trace(config, overrides=(), rows: int = 4, steps: int = 1) -> dict:
    network, X, y, cfg, weights = prepare_float64(config, overrides, rows)
    training = cfg.training
    optimizer = network_optimizer(network, training)
    lr = build_schedule(training)(0)
    record = {
        "config": str(config), "architecture": architecture(network.sizes), "rows": int(len(X)),
        "layers": [{"layer": i, "type": layer.type, "name": layer.describe(), **layer.settings()}
                   for i, layer in enumerate(network.layers)],
        "output": network.output_head, "loss": network.loss_name,
        "optimizer": training.optimizer, "learning_rate": lr, "l2": training.l2,
        "input": _m(X), "targets": _m(y),
        "initial": [{"layer": i, "type": layer.type, "params": _arrays(layer)} for i, layer in network.trainable],
        "steps": [],
    }
    if network.heads is not None:  # several targets: each head's block, output, loss and weight λ
        from ..nn.losses import LOSSES

        record["heads"] = [{"target": h.name, "columns": [h.start, h.stop], "output": LOSSES[h.loss].output,
                            "loss": h.loss, "weight": float(lam)} for h, lam in zip(network.heads, network.loss.weights)]
    ws = network.workspace()
    for step in range(1, steps + 1):
        outputs = {}
        output = network.forward(X, training=True, watch=lambda i, out: outputs.__setitem__(i, _m(out)), ws=ws)
        # a layer's own facts about this pass (dropout: its mask's share of zeros), if it has any
        forward = [{"layer": i, "type": layer.type, "name": layer.describe(), "output": outputs[i],
                    **layer.record(buf)} for i, (layer, buf) in enumerate(zip(network.layers, ws.buffers))]
        loss = network.loss_value(y, weights, ws)
        head_losses = None if network.heads is None else \
            network.loss.parts(ws.z, ws.head.output, y, weights)
        arriving = {}
        network.backward(y, weights, watch=lambda i, delta: arriving.__setitem__(i, _m(delta)), ws=ws)
        backward = [{"layer": i, "type": layer.type, "delta": arriving[i],
                     "grads": {name: _m(g) for name, g in layer.grads.items()}}
                    for i, layer in reversed(list(enumerate(network.layers)))]
        before = {i: _arrays(layer) for i, layer in network.trainable}
        if training.grad_clip is not None:  # as the training loop does, before the step
            clip_grad_norm(network.flat_grads, training.grad_clip)
        optimizer.step([network.flat_grads], lr)
        update = [{"layer": i, "type": layer.type, "before": before[i], "after": _arrays(layer)}
                  for i, layer in network.trainable]
        record["steps"].append({"step": step, "forward": forward, "output": _m(output), "loss": loss,
                                "backward": backward, "update": update,
                                **({} if head_losses is None else {"head_losses": head_losses})})
    return record
