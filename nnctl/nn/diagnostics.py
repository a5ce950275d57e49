"""How backpropagation itself is doing, layer by layer, measured on training steps and averaged
over the steps measured in an epoch (`SAMPLED_STEPS` of them, spread evenly; an epoch's last
batch is left out when it is shorter than the rest, as its few rows make a noisy gradient):

- grad_norm     ‖∂L/∂Wᵢ‖ (Frobenius) of the step's batch: vanishing gradients show as the first
                layers' norms orders of magnitude below the last's; exploding ones as growth;
- weight_norm   ‖Wᵢ‖ after the step;
- update_ratio  ‖ΔWᵢ‖ / ‖Wᵢ‖ of the step: about 1e-3 is the usual healthy size; far below, the
                learning rate barely moves the weights; far above, it tears them around;
- grad_norm_total  ‖∂L/∂θ‖ over every parameter (the global norm that gradient clipping caps),
                before clipping; the same on each layer's row of an epoch;
- dead_fraction for ReLU-family layers, the share of units whose pre-activation was ≤ 0 for every
                row of the batch (they pass no gradient back: "dead ReLUs").
"""
from __future__ import annotations

import math

import numpy as np

RELU_FAMILY = ("relu", "leaky_relu")  # activations whose units can die (zero gradient below 0)
SAMPLED_STEPS = 16  # steps measured per logged epoch: enough to average, cheap beside the epoch


def dead_fraction(z: np.ndarray) -> float:
    """z: (rows, units) pre-activations of one batch (or (K, rows, units): the members' units
    together) -> share of units ≤ 0 on every row."""
    # a unit is dead when even its largest pre-activation over the batch is ≤ 0
    highest = z.max(axis=-2)
    return np.count_nonzero(highest <= 0) / highest.size if z.size else 0.0


class Diagnostics:
    """Measures a network's steps per trainable layer, from its flat parameter and gradient
    arrays: each norm is one dot product of a layer's slice with itself. A layer's norms are
    over its decayed arrays (a dense layer's W) when it has any, else over all its arrays.
    `layer` in each row counts trainable layers: 0 is the first layer with arrays; a composite's
    children (a residual block's dense layer) count in its place (`Network.leaves`). `ws`: the
    workspace of the steps measured, where dead_fraction reads the activations' inputs. With
    members, a layer's norms are over every member's arrays together (its column block of the
    member-major (K, P) arrays); with `apart`, each member's are its own, and each row of
    `end_epoch` says whose it is (`member`): K runs trained as one pass, each measured as it
    would be alone."""

    def __init__(self, network, ws=None, apart: bool = False):
        self.network, self.ws = network, ws
        self.members = network.members
        self.apart = bool(apart and self.members)
        self.slices, self.feeds = [], []
        leaves = list(network.leaves())
        offset, layers = 0, [layer for _, layer in leaves]
        for i, layer in enumerate(layers):
            if not layer.params:
                continue
            sizes = {name: value.size // (self.members or 1) for name, value in layer.params.items()}
            decayed = [name for name in sizes if layer.decay.get(name)] or list(sizes)
            # the measured arrays sit together in the flat array (a dense layer's W, then its b)
            first = offset + sum(sizes[n] for n in list(sizes)[:list(sizes).index(decayed[0])])
            self.slices.append(slice(first, first + sum(sizes[n] for n in decayed)))
            offset += sum(sizes.values())
            fed = _activation_fed(layers[i + 1:])
            # by path: the activation's input of a step is in the workspace, not the layer
            self.feeds.append(None if fed is None else next(path for path, other in leaves if other is fed))

    @staticmethod
    def steps_to_measure(batches: int, last_is_short: bool) -> frozenset:
        """Indices of the batches to measure in an epoch of `batches` batches."""
        full = batches - 1 if last_is_short and batches > 1 else batches
        return frozenset(np.linspace(0, full - 1, min(SAMPLED_STEPS, full)).round().astype(int).tolist())

    def begin_epoch(self) -> None:
        # grad, weight, update ratio, dead; per layer (and per member, apart)
        self.sums = np.zeros(((self.members,) if self.apart else ()) + (len(self.slices), 4))
        self.steps, self.total = 0, np.zeros(self.members) if self.apart else 0.0

    def before_step(self) -> np.ndarray:
        """A copy of the parameters, taken just before a step to be measured."""
        return self.network.flat_params.copy()

    def after_step(self, before: np.ndarray, total=None) -> None:
        """Add the step just taken to the epoch's sums; `total`: the global gradient norm before
        clipping, when clipping has already measured it (and scaled the gradient since): with
        members, the members' norms (K,)."""
        if self.apart:
            return self._after_step_apart(before, total)
        if total is not None and np.ndim(total):  # the members' norms: the norm over all of them
            total = float(np.sqrt(np.dot(total, total)))
        params, grads, dot = self.network.flat_params, self.network.flat_grads, np.dot
        self.total += math.sqrt(float(dot(grads, grads))) if total is None else total
        change = params - before
        if self.members:  # each layer a column block of (K, P)
            params, grads, change = (a.reshape(self.members, -1) for a in (params, grads, change))
            dot = np.vdot
        ws = self.ws if self.ws is not None and self.ws.buffers else None
        for i, (s, activation) in enumerate(zip(self.slices, self.feeds)):
            g, w, d = grads[s], params[s], change[s]
            weight = math.sqrt(float(dot(w, w)))
            row = self.sums[i]
            row[0] += math.sqrt(float(dot(g, g)))
            row[1] += weight
            row[2] += math.sqrt(float(dot(d, d))) / weight if weight > 0 else math.nan
            if activation is not None and ws:
                row[3] += dead_fraction(ws.leaf_buffers(activation).x)
        self.steps += 1

    def _after_step_apart(self, before: np.ndarray, total) -> None:
        """after_step with each member measured alone: each layer's norms for all members at
        once, as sums of squares over its column block of (K, P)."""
        K = self.members
        params, grads = self.network.flat_params.reshape(K, -1), self.network.flat_grads.reshape(K, -1)
        change = params - before.reshape(K, -1)
        # block boundaries for reduceat: the even segments are the layers', the odd the gaps between
        bounds = [i for s in self.slices for i in (s.start, s.stop)]
        if bounds[-1] == params.shape[1]:
            bounds.pop()

        def norms(a):
            return np.sqrt(np.add.reduceat(a * a, bounds, axis=1)[:, ::2])  # (K, layers)

        grad, weight, moved = norms(grads), norms(params), norms(change)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(weight > 0, moved / weight, np.nan)
        self.total += np.sqrt(np.einsum("kp,kp->k", grads, grads)) if total is None else total
        self.sums[:, :, 0] += grad
        self.sums[:, :, 1] += weight
        self.sums[:, :, 2] += ratio
        ws = self.ws if self.ws is not None and self.ws.buffers else None
        for i, activation in enumerate(self.feeds):
            if activation is not None and ws:
                z = ws.leaf_buffers(activation).x
                self.sums[:, i, 3] += np.count_nonzero(z.max(axis=-2) <= 0, axis=-1) / max(z.shape[-1], 1)
        self.steps += 1

    def end_epoch(self, epoch: int) -> list[dict]:
        """One row per trainable layer: the means over the epoch's measured steps (apart: one
        per layer and member, with its `member`)."""
        if not self.steps:
            return []
        means, total = self.sums / self.steps, self.total / self.steps
        if self.apart:
            return [{**row, "member": k} for k in range(self.members) for row in self._rows(epoch, means[k], total[k])]
        return self._rows(epoch, means, total)

    def _rows(self, epoch: int, means: np.ndarray, total: float) -> list[dict]:
        return [{"epoch": epoch, "layer": i, "grad_norm": float(m[0]), "weight_norm": float(m[1]),
                 "update_ratio": float(m[2]), "dead_fraction": float(m[3]) if self.feeds[i] is not None else None,
                 "grad_norm_total": float(total)}
                for i, m in enumerate(means)]


def _activation_fed(after: list):
    """The ReLU-family activation layer a trainable layer feeds directly (layers without arrays,
    such as dropout, may sit between; a normalization has arrays, so a dense layer before one
    feeds nothing and the normalization feeds the activation), or None: only those units can
    die."""
    for layer in after:
        if layer.params:
            return None
        if layer.type == "activation":
            return layer if layer.name in RELU_FAMILY else None
    return None
