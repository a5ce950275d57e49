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
from .scoring import row_weights, targets_for


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


def build_network(cfg: dict, dataset: Dataset, fresh: bool = False) -> MLP:
    """The config's network for this dataset: from the seed, or from `model.init_from` unless
    `fresh` (a resumed run, whose weights come from its checkpoint)."""
    sizes = [dataset.n_inputs] + list(cfg["model"]["layers"]) + [dataset.n_outputs]
    _check_model_fits(sizes, cfg, dataset)
    activations = hidden_activations(cfg)
    loss = choose_loss(cfg, dataset)
    dtype = np.dtype(cfg["training"]["dtype"])
    if cfg["model"]["init_from"] and not fresh:
        return _warm_start(cfg["model"]["init_from"], sizes, activations, loss, dtype, dataset)
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


def _warm_start(path, sizes, activations, loss, dtype, dataset: Dataset) -> MLP:
    """The saved model's weights, matched to this dataset by name: the first layer's rows follow
    the dataset's inputs and the output layer's units its classes, whatever order either comes
    in. Different inputs, classes or task are an error naming what differs."""
    from ..runs.model import load_model

    source = load_model(path)
    weights = [W.astype(dtype) for W in source.network.weights]
    biases = [b.astype(dtype) for b in source.network.biases]
    if source.task != dataset.task:
        raise NnctlError(f"model.init_from is a {source.task} model, this data is a {dataset.task} task",
                         "model.init_from", "set model.task to match, or train from scratch")
    weights[0] = weights[0][_order("inputs", source.encoder.inputs, dataset.encoder.inputs)]
    if dataset.task == "classification":
        from ..data.encoding import category_label

        order = _order("classes", [category_label(c) for c in source.classes],
                       [category_label(c) for c in dataset.classes])
        if len(order) == 2 and weights[-1].shape[1] == 1:
            if order[0] == 1:  # one sigmoid unit: swapping the two classes negates its logit
                weights[-1], biases[-1] = -weights[-1], -biases[-1]
        else:
            weights[-1], biases[-1] = weights[-1][:, order], biases[-1][order]
    if len(weights) != len(sizes) - 1:
        raise NnctlError(f"model.init_from has {len(weights)} layers, the config builds {len(sizes) - 1}",
                         "model.init_from", f"the config's architecture is {architecture(sizes)}")
    for i, W in enumerate(weights):
        if W.shape != (sizes[i], sizes[i + 1]):
            raise NnctlError(f"model.init_from layer {i} has weights {W.shape[0]}×{W.shape[1]}, "
                             f"the config needs {sizes[i]}×{sizes[i + 1]}", "model.init_from",
                             f"the config's architecture is {architecture(sizes)}")
    return MLP(weights, biases, activations, loss)


def _order(what: str, saved: list, wanted: list) -> list[int]:
    """Indices into `saved` that give `wanted`'s order; an NnctlError when they are not the
    same names."""
    if sorted(saved) != sorted(wanted):
        only_model = [n for n in saved if n not in set(wanted)]
        only_data = [n for n in wanted if n not in set(saved)]
        parts = [f"only in the model: {', '.join(map(str, only_model[:10]))}" if only_model else "",
                 f"only in this data: {', '.join(map(str, only_data[:10]))}" if only_data else ""]
        raise NnctlError(f"model.init_from was trained on other {what} ({'; '.join(p for p in parts if p)})",
                         "model.init_from",
                         "use the same data.features, categories and target as that model, or train from scratch")
    position = {name: i for i, name in enumerate(saved)}
    return [position[name] for name in wanted]


def prepare_float64(config, overrides, rows: int):
    """(network, X, targets, cfg, weights) for a config file in float64: the network it would
    train (its seed, or `init_from`), the first `rows` rows of its training part with targets in
    the form the network's loss takes, and their class weights (or None). What `gradcheck` and
    `trace` work on."""
    cfg = load_config(config, list(overrides) + ["training.dtype=float64"])
    dataset = load_dataset(cfg)
    network = build_network(cfg, dataset)
    X, y = dataset.X_train[:rows], dataset.y_train[:rows]
    weights = row_weights(cfg["training"]["class_weight"], dataset, y, np.float64)
    return network, X, targets_for(network, y), cfg, weights
