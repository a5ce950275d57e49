"""The network a config asks for, on a given dataset: its sizes, loss, initial weights (from the
seed, or `model.init_from`), and a check that it fits in memory. `train`, `validate`,
`gradcheck` and `trace` all build their network here."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import hidden_activations, load_config
from ..config.typed import Config
from ..data import Dataset, load_dataset
from ..errors import NnctlError
from ..nn.composite import Residual
from ..nn.embedding import Embedding
from ..nn.layers import Activation, Dense, Dropout
from ..nn.heads import MultiLoss
from ..nn.losses import LOSSES, loss_for
from ..nn.network import Network, initial_weights
from ..nn.normalization import NORMALIZATIONS
from ..nn.numeric import Periodic, PiecewiseLinear, quantile_edges
from .scoring import dataset_heads, row_weights, targets_for


def architecture(sizes) -> str:
    """'4 → 16 → 3'"""
    return " → ".join(str(s) for s in sizes)


def choose_loss(cfg: Config, dataset: Dataset) -> str:
    n_classes = len(dataset.classes) if dataset.classes else None
    loss = loss_for(dataset.task, n_classes, cfg.training.loss)
    if LOSSES[loss].task != dataset.task:
        raise NnctlError(f"training.loss {loss} is for {LOSSES[loss].task}, but this is a {dataset.task} task",
                         "training.loss", "use loss: auto, or set model.task")
    if loss == "binary_cross_entropy" and n_classes != 2:
        raise NnctlError(f"training.loss binary_cross_entropy needs two classes, the target has {n_classes}",
                         "training.loss", "use cross_entropy (or auto)")
    return loss


def multi_loss(cfg: Config, dataset: Dataset) -> MultiLoss:
    """The heads of several targets, each with its task's loss (loss: auto), side by side in
    the output columns, and each target's weight (training.target_weights, else 1); the scale
    of each loss is set by `scale_heads` once the network exists."""
    weights = [cfg.training.target_weights.get(t.name, 1.0) for t in dataset.targets]
    return MultiLoss(dataset_heads(dataset), weights)


SCALE_ROWS = 4096  # training rows the initial losses are measured on


def scale_heads(network: Network, dataset: Dataset, cfg: Config) -> None:
    """Divide each target's weight by its loss at initialization, measured on the first
    SCALE_ROWS training rows: a cross-entropy of log(classes) and a standardized target's MSE of
    about 1 then each start near their weight (docs/targets.md)."""
    loss = network.loss
    X, y = dataset.parts["train"].head(SCALE_ROWS)
    user = np.array([cfg.training.target_weights.get(h.name, 1.0) for h in loss.heads])
    if not len(X):
        return
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        a = network.predict_output(X)
        parts = loss.parts(network.output_logits(a), a, targets_for(network, y))
    scales = np.array([p if np.isfinite(p) and p > 1e-12 else 1.0 for p in parts])
    loss.scales = scales
    loss.weights = user / scales


def build_network(cfg: Config, dataset: Dataset, fresh: bool = False) -> Network:
    """The config's network for this dataset: from the seed, or from `model.init_from` unless
    `fresh` (a resumed run, whose weights come from its checkpoint)."""
    members = cfg.model.ensemble
    embedded = embedding_sizes(dataset)
    numeric = numeric_embedding(cfg, dataset)
    first = dataset.n_inputs - len(embedded) + sum(width for _, _, width in embedded)
    if numeric is not None:
        first += numeric.features * (numeric.width - 1)
    sizes = [first] + list(cfg.model.layers) + [dataset.n_outputs]
    _check_model_fits(sizes, cfg, dataset, sum((n + 1) * width for _, n, width in embedded) +
                      (numeric.n_params if numeric is not None else 0), numeric.per_row if numeric is not None else 0)
    dtype = np.dtype(cfg.training.dtype)
    loss = choose_loss(cfg, dataset) if dataset.targets is None else multi_loss(cfg, dataset)
    # member i is the network `seed + i` would build alone: member 0 is the single network
    networks = [Network(network_layers(cfg, sizes, embedded, dataset.n_inputs, dtype, cfg.seed + i, numeric), loss,
                        dataset.n_inputs) for i in range(members)]
    if dataset.targets is not None:
        scale_heads(networks[0], dataset, cfg)
    network = networks[0] if members == 1 else Network.stack(networks)
    if cfg.model.init_from and not fresh:
        _warm_start(cfg.model.init_from, network, dataset)
    return network


def network_layers(cfg: Config, sizes: list[int], embedded, n_inputs: int, dtype, seed: int,
                   numeric: "NumericPlan | None" = None) -> list:
    """The layer list, emitted once: [embedding], [numeric embedding], then per hidden block
    dense → [norm] → activation → [dropout], then the output's dense layer. With `model.residual`,
    a hidden block whose input width (the previous block's units, or the first block's inputs)
    equals its units is one residual layer holding those layers, x + f(x); the weights are the
    same either way.

    Each source of randomness has its own stream of `seed` (the config's, or a member's): the dense weights `default_rng(seed)`
    (layer by layer, as `initial_weights` draws them), the dropout masks (one generator the
    dropout layers share), the embedding tables and a periodic embedding's arrays each a child of
    `SeedSequence(seed)`, apart from the shuffle's. A dropout rate of 0 adds no layer: the
    network is exactly the one without dropout."""
    activations = hidden_activations(cfg)
    streams = np.random.SeedSequence(seed).spawn(5)  # [1]: the shuffle's (training.loop)
    layers = []
    if embedded:
        layers.append(Embedding.fresh(n_inputs, [j for j, _, _ in embedded], [(n, w) for _, n, w in embedded],
                                      np.random.default_rng(streams[3]), dtype, decay=cfg.training.l2_embeddings))
    if numeric is not None:
        layers.append(numeric.layer(layers[-1].units(n_inputs) if layers else n_inputs,
                                    np.random.default_rng(streams[4]), dtype))
    rates = dropout_rates(cfg)
    dropout_rng = np.random.default_rng(streams[2]) if any(rates) else None
    norm = NORMALIZATIONS.get(cfg.model.normalization)
    for i, (W, b) in enumerate(initial_weights(sizes, activations, cfg.model.init, seed, dtype)):
        block = [Dense(W, b)]
        if i < len(activations):
            if norm is not None:
                block.append(norm.fresh(W.shape[1], dtype))
            block.append(Activation(activations[i]))
            if rates[i]:
                block.append(Dropout(rates[i], dropout_rng))
            if cfg.model.residual and W.shape[0] == W.shape[1]:
                block = [Residual(block)]
        layers.extend(block)
    return layers


@dataclass
class NumericPlan:
    """model.numeric_embedding for one dataset: its settings, the numeric inputs' indices in the
    layer's input (after an `Embedding`, which puts its code columns last), and PLE's bin edges
    (F, bins + 1) from the training part, the same for every member."""

    setting: dict
    columns: list
    edges: np.ndarray | None

    @property
    def features(self) -> int:
        return len(self.columns)

    @property
    def width(self) -> int:
        return self.setting["width"] if self.setting["kind"] == "periodic" else self.setting["bins"]

    @property
    def n_params(self) -> int:
        if self.setting["kind"] != "periodic":
            return 0
        k, width = self.setting["frequencies"], self.setting["width"]
        return self.features * (k + 2 * k * width + width)

    @property
    def per_row(self) -> int:
        """Numbers per batch row that the layer's passes write: its output and, for periodic,
        the sines and cosines, the linear layers' outputs and their deltas."""
        out = self.features * self.width
        if self.setting["kind"] != "periodic":
            return 3 * out  # the output, the unclipped values, backward's mask
        return 3 * out + 2 * self.features * 2 * self.setting["frequencies"]

    def layer(self, fan_in: int, rng, dtype):
        if self.setting["kind"] == "periodic":
            return Periodic.fresh(fan_in, self.columns, self.setting["frequencies"], self.setting["width"],
                                  self.setting["sigma"], rng, dtype)
        return PiecewiseLinear(fan_in, self.columns, self.edges.astype(dtype))


def numeric_embedding(cfg: Config, dataset) -> NumericPlan | None:
    """The plan of model.numeric_embedding for this dataset, or None (`none`, or no numeric
    input). PLE's edges are the training part's quantiles of the scaled inputs (the layer sees
    them scaled), fit one column at a time, of a seeded sample of the training part's rows:
    `scanstats.sample_rows` of them (at most SAMPLE_ROWS, fewer where a share of the memory budget
    cannot hold that many for every numeric input; all of a smaller part)."""
    setting = cfg.model.numeric_embedding
    numeric = dataset.encoder.numeric_inputs()
    if setting == "none" or not numeric:
        return None
    codes = {j for j, _ in dataset.encoder.code_columns()}
    # after an embedding layer the inputs less the code columns come first, in order
    place = {j: i for i, j in enumerate(j for j in range(dataset.n_inputs) if j not in codes)}
    edges = None
    if setting["kind"] == "piecewise_linear":
        from ..data.scanstats import sample_rows

        train = dataset.parts["train"]
        X, _ = train.sample(min(sample_rows(len(numeric)), len(train)), cfg.seed)
        # column by column: the inputs side by side in float64, and np.quantile's copy of them,
        # would be four times the sample's memory at once
        edges = np.concatenate([quantile_edges(X[:, [j]], setting["bins"]) for j in numeric])
    return NumericPlan(dict(setting), [place[j] for j in numeric], edges)


def embedding_sizes(dataset: Dataset) -> list[tuple[int, int, int]]:
    """(input index, categories, width) of each embedded column's code input."""
    encoder = dataset.encoder
    return [(j, len(encoder.categories[col]), encoder.embedding[col]) for j, col in encoder.code_columns()]


def dropout_rates(cfg) -> list[float]:
    """model.dropout as one rate per hidden layer."""
    rate = cfg.model.dropout
    return [float(r) for r in rate] if isinstance(rate, (list, tuple)) else [float(rate)] * len(cfg.model.layers)


def check_batches(cfg, network: Network, dataset: Dataset) -> None:
    """Batch norm cannot normalize a batch of one row (PyTorch: "Expected more than 1 value per
    channel when training"): refuse training whose batches include one, before it starts."""
    if network.min_rows < 2:
        return
    rows = len(dataset.parts["train"])
    batch = min(cfg.training.batch_size or rows, rows)
    # every epoch is cut at data.source.batch_bounds, which never leaves a last batch of one row
    if batch >= 2:
        return
    if rows < 2:
        raise NnctlError(f"batch normalization cannot normalize a batch of one row: the training part has {rows} row",
                         "training.batch_size", "use more training rows, or model.normalization: layer")
    raise NnctlError(f"batch normalization cannot normalize a batch of one row: batch_size {batch}",
                     "training.batch_size", "use another batch_size (e.g. 2), or model.normalization: layer")


def _check_model_fits(sizes, cfg: Config, dataset: Dataset, tables: int = 0, per_row: int = 0) -> None:
    """Weights, gradients, two optimizer states, scratch and the float64 draw: about six
    copies of the parameters (`tables`: the embedding tables' entries); plus pre-activations,
    activations, what activations save for backward, and deltas per batch row (`per_row`: what
    a numeric embedding writes per row)."""
    from ..resources import require_memory

    itemsize = np.dtype(cfg.training.dtype).itemsize
    members = cfg.model.ensemble
    params = (sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:])) + tables) * members
    n = len(dataset.parts["train"])
    rows = max(min(cfg.training.batch_size or n, n), min(n, 65536))  # a batch, or a scoring chunk
    # members gather their own batches from the window a batch at a time: no copies of the rows
    needed = params * itemsize * 6 + (4 * sum(sizes[1:]) + per_row) * rows * itemsize * members
    require_memory(needed, f"the network {architecture(sizes)} ({params:,} parameters)", "model.layers",
                   "use smaller layers (model.layers) or a smaller batch_size")


def describe(network: Network) -> str:
    """'4 → 16 → 3 (dense 16, relu, dense 3)'"""
    return f"{architecture(network.sizes)} ({', '.join(layer.describe() for layer in network.layers)})"


def _warm_start(path, network: Network, dataset: Dataset) -> None:
    """Load a saved model's arrays into `network`, matched by layer and array name, and to
    this dataset by name: the first layer's rows follow the dataset's inputs and the last
    trainable layer's units its classes, whatever order either comes in. Different inputs,
    classes, task or layers are an error naming what differs."""
    from ..runs.model import load_model

    source = load_model(path)
    if source.task != dataset.task:
        raise NnctlError(f"model.init_from is a {source.task} model, this data is a {dataset.task} task",
                         "model.init_from", "set model.task to match, or train from scratch")
    rows = _order("inputs", source.encoder.inputs, dataset.encoder.inputs)
    units = None
    if dataset.task == "classification":
        from ..data.encoding import category_label

        units = _order("classes", [category_label(c) for c in source.classes],
                       [category_label(c) for c in dataset.classes])
    theirs, ours = source.network, network
    mine = ours.arrays()
    saved = theirs.arrays()
    if set(saved) != set(mine) or any(saved[name].shape != a.shape for name, a in mine.items()):
        # arrays match by layer and name (`layers.0.W`); activations have none, so they may differ
        raise NnctlError(f"model.init_from is {describe(theirs)}, the config builds {describe(ours)}",
                         "model.init_from", "use the same model.layers as that model, or train from scratch")
    arrays = {name: a.astype(network.dtype) for name, a in saved.items()}
    embedded = not isinstance(ours.layers[0], (Dense, Residual))  # an embedding of categories or of numbers
    if embedded and rows != list(range(len(rows))):
        # the first dense layer's rows follow the embedding's output, not the inputs: same order only
        raise NnctlError("model.init_from has embedded columns and takes its inputs in another order than this data",
                         "model.init_from", "list data.features in that model's order, or train from scratch")
    if embedded:
        rows = slice(None)
    elif rows != list(range(len(rows))) and any(path for path, _ in ours.layers[0].leaves()):
        # a residual first block adds its input to its output: its columns are the inputs' order
        raise NnctlError("model.init_from starts with a residual block and takes its inputs in another order than "
                         "this data", "model.init_from", "list data.features in that model's order, or train from scratch")
    first, last = f"layers.{ours.trainable[0][0]}.", f"layers.{ours.trainable[-1][0]}."
    for name, a in arrays.items():
        if name.startswith(first) and a.ndim == 2:  # (inputs, units): rows follow the inputs
            arrays[name] = a = a[rows]
        if units is not None and name.startswith(last):
            if len(units) == 2 and a.shape[-1] == 1:
                if units[0] == 1:  # one sigmoid unit: swapping the two classes negates its logit
                    arrays[name] = -a
            else:
                arrays[name] = a[..., units]
    network.load_arrays(arrays)


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
    X, y = dataset.parts["train"].head(rows)
    if len(X) < network.min_rows:
        raise NnctlError("batch normalization cannot normalize a batch of one row", "--rows", "use --rows 2 or more")
    weights = row_weights(cfg.training.class_weight, dataset, y, np.float64, network)
    return network, X, targets_for(network, y), cfg, weights
