"""The network a config asks for, on a given dataset: its sizes, loss, initial weights (from the
seed, or `model.init_from`), and a check that it fits in memory. `train`, `validate`,
`gradcheck` and `trace` all build their network here."""
from __future__ import annotations

import numpy as np

from ..config import hidden_activations, load_config
from ..data import Dataset, load_dataset
from ..errors import NnctlError
from ..nn.losses import LOSSES, loss_for
from ..nn.network import MLP
from .scoring import targets_for


def architecture(sizes) -> str:
    """'4 → 16 → 3'"""
    return " → ".join(str(s) for s in sizes)


def choose_loss(cfg: dict, dataset: Dataset) -> str:
    n_classes = len(dataset.classes) if dataset.classes else None
    loss = loss_for(dataset.task, n_classes, cfg["training"]["loss"])
    if LOSSES[loss].task != dataset.task:
        raise NnctlError(f"training.loss {loss} is for {LOSSES[loss].task}, but this is a {dataset.task} task",
                         "training.loss", "use loss: auto, or set model.task")
    if loss == "binary_cross_entropy" and n_classes != 2:
        raise NnctlError(f"training.loss binary_cross_entropy needs two classes, the target has {n_classes}",
                         "training.loss", "use cross_entropy (or auto)")
    return loss


def build_network(cfg: dict, dataset: Dataset) -> MLP:
    """The config's network for this dataset: fresh from the seed, or from `model.init_from`."""
    sizes = [dataset.n_inputs] + list(cfg["model"]["layers"]) + [dataset.n_outputs]
    _check_model_fits(sizes, cfg, dataset)
    activations = hidden_activations(cfg)
    loss = choose_loss(cfg, dataset)
    dtype = np.dtype(cfg["training"]["dtype"])
    if cfg["model"]["init_from"]:
        return _warm_start(cfg["model"]["init_from"], sizes, activations, loss, dtype)
    return MLP.initialize(sizes, activations, loss, cfg["model"]["init"], cfg["seed"], dtype)


def _check_model_fits(sizes, cfg: dict, dataset: Dataset) -> None:
    """Weights, gradients, two optimizer states, scratch and the float64 draw: about six
    copies of the parameters; plus pre-activations, activations, what activations save for
    backward, and deltas per batch row."""
    from ..resources import require_memory

    itemsize = np.dtype(cfg["training"]["dtype"]).itemsize
    params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    n = len(dataset.X_train)
    rows = max(min(cfg["training"]["batch_size"] or n, n), min(n, 65536))  # a batch, or a scoring chunk
    needed = params * itemsize * 6 + 4 * rows * sum(sizes[1:]) * itemsize
    require_memory(needed, f"the network {architecture(sizes)} ({params:,} parameters)", "model.layers",
                   "use smaller layers (model.layers) or a smaller batch_size")


def _warm_start(path, sizes, activations, loss, dtype) -> MLP:
    from ..runs.model import load_model

    source = load_model(path).network
    if len(source.weights) != len(sizes) - 1:
        raise NnctlError(f"model.init_from has {len(source.weights)} layers, the config builds {len(sizes) - 1}",
                         "model.init_from", f"the config's architecture is {architecture(sizes)}")
    for i, W in enumerate(source.weights):
        if W.shape != (sizes[i], sizes[i + 1]):
            raise NnctlError(f"model.init_from layer {i} has weights {W.shape[0]}×{W.shape[1]}, "
                             f"the config needs {sizes[i]}×{sizes[i + 1]}", "model.init_from",
                             f"the config's architecture is {architecture(sizes)}")
    return MLP([W.astype(dtype) for W in source.weights], [b.astype(dtype) for b in source.biases],
               activations, loss)


def prepare_float64(config, overrides, rows: int):
    """(network, X, targets, cfg) for a config file in float64: the network it would train
    (its seed, or `init_from`) and the first `rows` rows of its training part, with targets in
    the form the network's loss takes. What `gradcheck` and `trace` work on."""
    cfg = load_config(config, list(overrides) + ["training.dtype=float64"])
    dataset = load_dataset(cfg)
    network = build_network(cfg, dataset)
    X = dataset.X_train[:rows]
    return network, X, targets_for(network, dataset.y_train[:rows]), cfg
