"""Backprop gradients against central finite differences, on the network's own forward/backward.

Any layer type is checked the same way, through its named arrays (`layers.0.W`, ...). Layers that
act differently in training (dropout, batch statistics) are checked in training mode, with their
randomness fixed by the caller for the whole check.

For each parameter array P and a sample of its entries p: numeric = (L(p + h) - L(p - h)) / 2h,
analytic = backward()'s gradient. The relative error of an array is its largest absolute
difference divided by the largest gradient magnitude in it, so entries whose gradient is
near zero do not blow the ratio up. Run in float64.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .network import Network

NOISE = 1e-8  # gradients smaller than this cannot be told from zero by differences of step 1e-6


@dataclass
class ParamCheck:
    name: str  # layers.0.W, layers.0.b, ...
    shape: tuple
    checked: int  # entries compared
    max_abs: float
    max_rel: float

    def passed(self, tol: float) -> bool:
        return bool(self.max_rel <= tol)


def check_gradients(network: Network, X: np.ndarray, y: np.ndarray, h: float = 1e-6, max_entries: int | None = 200,
                    seed: int = 0, w: np.ndarray | None = None, training: bool = True) -> list[ParamCheck]:
    """Compare the gradient of every trainable array of `network` (float64) on (X, y), with
    optional row weights w (rows, 1); at most `max_entries` entries per array are probed (chosen
    from `seed`), None for all. `training`: the mode of every forward pass."""
    if network.dtype != np.float64:
        raise ValueError("gradient checks need a float64 network")
    rng = np.random.default_rng(seed)
    ws = network.workspace()
    network.forward(X, training, ws=ws)
    network.backward(y, w, ws=ws)
    # random layers (dropout) keep the noise just drawn: every forward pass below must compute
    # the same function as the one whose gradient backward gave. Frozen in this check's own
    # workspace: the layers themselves are not touched.
    ws.freeze(True)
    return _check_arrays(network, X, y, h, max_entries, rng, w, training, ws)


def _check_arrays(network, X, y, h, max_entries, rng, w, training, ws) -> list[ParamCheck]:
    results = []
    for name, param, grad in [(n, p, g.copy()) for n, p, g in network.named_params()]:
        entries = np.arange(param.size)
        if max_entries is not None and param.size > max_entries:
            entries = np.sort(rng.choice(param.size, max_entries, replace=False))
        numeric = np.empty(len(entries))
        for k, j in enumerate(entries):
            # by index into the array itself: a member's array is a strided view, and a
            # flattened copy of it would not move the parameter
            at = np.unravel_index(j, param.shape)
            original = param[at]
            param[at] = original + h
            network.forward(X, training, ws=ws)
            plus = network.loss_value(y, w, ws=ws)
            param[at] = original - h
            network.forward(X, training, ws=ws)
            minus = network.loss_value(y, w, ws=ws)
            param[at] = original
            numeric[k] = (plus - minus) / (2 * h)
        exact = grad.reshape(-1)[entries]
        max_abs = float(np.max(np.abs(exact - numeric))) if len(entries) else 0.0
        scale = max(float(np.max(np.abs(exact), initial=0.0)), float(np.max(np.abs(numeric), initial=0.0)))
        # an array whose gradient is zero in exact arithmetic (a dense bias before batch norm,
        # which the batch mean cancels) shows central differences' rounding noise, ~1e-10: below
        # NOISE its error is judged as it stands, not relative to that noise
        max_rel = max_abs / scale if scale > NOISE else max_abs
        results.append(ParamCheck(name, param.shape, len(entries), max_abs, max_rel))
    return results
