"""The config's keys: one table (`spec()`) of every key with its default, type, range and help.

The validator (`validate.py`), the JSON Schema and the starter config (`schema.py`) all walk this
table, sub-keys included (`Key.sub`); allowed names (activations, losses, optimizers, schedules)
come from the tables the math uses.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

REQUIRED = object()
SCIENTIFIC = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


@dataclass
class Key:
    default: Any
    kind: str  # a name in kinds.KINDS: int | float | bool | choice | path | schedule | ...
    help: str
    choices: tuple = ()
    low: float | None = None  # inclusive unless low_open
    high: float | None = None  # exclusive unless high_closed
    low_open: bool = False
    high_closed: bool = False
    nullable: bool = False
    # a mapping's own keys: {name: Key}; for `schedule`, {schedule name: {name: Key}}
    sub: dict = field(default_factory=dict)


def _schedule_keys() -> dict:
    """Each schedule's own keys, with the defaults the schedule table gives them."""
    from ..nn.schedules import SCHEDULES

    ranges = {
        "step_size": Key(None, "int", "epochs between decays", low=1),
        "gamma": Key(None, "float", "factor applied at each decay", low=0.0, low_open=True, high=1.0, high_closed=True),
        "min_learning_rate": Key(None, "float", "the learning rate at the last epoch", low=0.0),
        "decay_epochs": Key(None, "int", "the epochs the cosine decays over (then it stays at min_learning_rate); null = training.iterations less the warm-up",
                            low=1, nullable=True),
        "factor": Key(None, "float", "plateau: the learning rate is multiplied by this at each reduction", low=0.0, low_open=True, high=1.0),
        "patience": Key(None, "int", "plateau: logged values without improvement before a reduction (below early stopping's patience)", low=1),
        "min_lr": Key(None, "float", "plateau: the learning rate is never reduced below this", low=0.0),
    }
    return {name: {k: replace(ranges[k], default=default) for k, default in own.items()}
            for name, (_, own) in SCHEDULES.items()}


# training.scoring.EXTRA_METRICS are the last four; the two-class and per-task rules are checked
# once the data is read (training.scoring.check_metric)
EARLY_STOPPING_METRICS = ("val_loss", "train_loss", "val_accuracy", "val_r2", "val_roc_auc", "val_average_precision",
                          "val_f1", "val_balanced_accuracy")

# several targets: each target's own history columns, val_<target>_<one of these>
TARGET_METRICS = ("loss", "accuracy", "r2", "roc_auc", "average_precision", "f1", "balanced_accuracy")

# model.numeric_embedding's kinds and each kind's own keys; `none` has none
NUMERIC_EMBEDDINGS = {
    "none": {},
    "periodic": {
        "frequencies": Key(16, "int", "learned frequencies per numeric input (k: sin and cos of each, 2k values)", low=1),
        "width": Key(16, "int", "the size of each numeric input's vector (the linear layer after sin/cos)", low=1),
        "sigma": Key(0.1, "float", "the frequencies' initial spread: N(0, sigma^2), truncated at 3 sigma", low=0.0, low_open=True),
    },
    "piecewise_linear": {
        "bins": Key(16, "int", "bins per numeric input, at the training part's quantiles (fewer where values repeat)", low=1),
    },
}

EARLY_STOPPING = {
    "patience": Key(16, "int", "logged epochs without improvement before stopping", low=1),
    "min_delta": Key(0.0, "float", "the smallest change that counts as an improvement", low=0.0),
    "metric": Key("val_loss", "metric", "the value watched; several targets: also val_<target>_<metric> (val_price_r2)",
                  EARLY_STOPPING_METRICS),
    "restore_best": Key(True, "bool", "end with the best epoch's weights"),
}


# data.targets: one target's own settings (what it leaves out follows the single-target keys)
TARGET_KEYS = {
    "task": Key("auto", "choice", "auto | classification | regression (auto: model.task)", ("auto", "classification", "regression")),
    "positive_class": Key(None, "label", "two classes: the label the sigmoid refers to", nullable=True),
    "class_weight": Key(None, "class_weight", "null | balanced | {label: weight}", nullable=True),
    "missing": Key("error", "choice", "rows missing this target: error | drop (left out: error under data.missing: error, else drop)", ("error", "drop")),
}


def _spec() -> dict:
    from ..nn.activations import ACTIVATIONS
    from ..nn.initializers import INITIALIZERS
    from ..nn.losses import LOSSES
    from ..nn.optimizers import OPTIMIZERS
    from ..nn.schedules import SCHEDULES

    return {
        "seed": Key(42, "int", "init seed; the same seed gives bit-identical weights", low=0),
        "data": {
            "path": Key(REQUIRED, "path", "CSV (or .parquet) file with a header row, or a folder or glob of such files read as one table (relative to this file)"),
            "validation_path": Key(None, "path", "a separate validation file (validation_split is then not used)", nullable=True),
            "test_path": Key(None, "path", "a test file, scored once with the final model -> metrics.json \"test\"", nullable=True),
            "target": Key(REQUIRED, "target", "the column to predict, or a list of distinct columns: one model with a head per target (docs/targets.md)"),
            "targets": Key({}, "targets", "several targets: per-target settings {column: {task, positive_class, class_weight, missing}}; what a target leaves out follows model.task, data.positive_class, training.class_weight, data.missing"),
            "features": Key(None, "names", "columns to use as inputs; null = every column but the target", nullable=True),
            "exclude": Key([], "columns", "columns to leave out (IDs, leaks); with features: null, every other column is used"),
            "positive_class": Key(None, "label", "two classes: the label the sigmoid, thresholds, ROC and PR refer to; null = the second label, sorted",
                                  nullable=True),
            "validation_split": Key(0.2, "float", "fraction held out for validation (stratified for classification)", low=0.0, high=1.0),
            "scale": Key("robust", "choice", "feature scaling, fit on the training part only: standard | minmax | robust (median and IQR, then the smooth clip u / sqrt(1 + (u/3)^2)) | quantile (each column through its training quantiles to a standard normal) | none",
                         ("standard", "minmax", "robust", "quantile", "none")),
            "scale_target": Key(True, "bool", "regression: standardize the target for training; predictions come back in its units (data.target_transform: standard)"),
            "target_transform": Key(None, "choice", "regression: none | standard | log1p (standardized log(1 + y), for y > -1) | quantile (the target's training quantiles to a normal); predictions, intervals, metrics and exports stay in the target's units; null = standard under data.scale_target, else none",
                                    ("none", "standard", "log1p", "quantile"), nullable=True),
            "missing": Key("error", "choice", "rows with missing values: error | drop | mean (fill with the training mean)", ("error", "drop", "mean")),
            "categorical": Key([], "categorical", "string columns to one-hot encode, or auto (every non-numeric feature)"),
            "embedding": Key("auto", "embedding", "learned embeddings instead of one-hot: {column: width}, or auto (every categorical column of more than 10 categories, width min(600, round(1.6 * n ** 0.56))); {} = one-hot for every categorical"),
            "unknown_category": Key("error", "choice", "a category at predict time that training never saw: error | ignore (all-zero one-hot, the embedding's unseen-category row)", ("error", "ignore")),
            "delimiter": Key(None, "delimiter", "field separator; null = sniffed (comma, semicolon, tab)", nullable=True),
            "decimal": Key(".", "choice", "decimal mark of numbers in the file: '.' or ',' (as in 25,24)", (".", ",")),
            "streaming": Key("auto", "auto_bool", "train from encoded shards on disk instead of loading the table: auto (when the encoded training data would exceed the memory budget, NNCTL_MEMORY_LIMIT) | true | false"),
            "shuffle_window": Key("auto", "auto_int", "streaming: rows shuffled together (several shards read into one buffer); auto: 8 shards, at most a quarter of the memory budget", low=1),
        },
        "model": {
            "task": Key("auto", "choice", "auto | classification | regression", ("auto", "classification", "regression")),
            "layers": Key([256, 256, 256], "layers", "hidden layer sizes; input and output sizes come from the data"),
            "activation": Key("relu", "activation", "one name, or a list with one per hidden layer", tuple(ACTIVATIONS)),
            "normalization": Key("none", "choice", "in each hidden block, before the activation: none | batch (as torch BatchNorm1d) | layer (as torch LayerNorm)",
                                 ("none", "batch", "layer")),
            "init": Key("auto", "choice", "weight initializer (auto: he for the relu family, xavier otherwise)", ("auto",) + tuple(INITIALIZERS)),
            "init_from": Key(None, "path", "a model.npz (or run folder) to start from: warm start / fine-tuning", nullable=True),
            "dropout": Key(0.0, "dropout", "dropout rate after each hidden block (inverted, as torch.nn.Dropout): one rate, or a list with one per hidden layer; 0 = none",
                           low=0.0, high=1.0),
            "residual": Key(False, "bool", "each hidden block whose input and output widths match computes x + f(x) (f: dense → [norm] → activation → [dropout]); the output layer never"),
            "numeric_embedding": Key({"kind": "periodic", "frequencies": 16, "width": 16, "sigma": 0.1}, "numeric_embedding", "each numeric input as its own small vector, the vectors then side by side (categoricals keep one-hot or data.embedding): none | {kind: periodic, frequencies: 16, width: 16, sigma: 0.1} (PLR: learned frequencies, sin/cos, a linear layer per input, ReLU) | {kind: piecewise_linear, bins: 16} (PLE: the encoding over the training part's quantile bins)",
                                     sub=NUMERIC_EMBEDDINGS),
            "ensemble": Key(1, "int", "members trained at once in one network, each from its own seed (seed + i), dropout masks and batch order; the model predicts their mean (probability or output)", low=1),
        },
        "training": {
            "learning_rate": Key(0.001, "float", "step size of every update", low=0.0, low_open=True),
            "iterations": Key(200, "int", "epochs: passes over the training data", low=1),
            "batch_size": Key(256, "int", "rows per update; null or 0 = full batch", low=0, nullable=True),
            "optimizer": Key("adamw", "choice", "update rule (PyTorch's equations)", tuple(OPTIMIZERS)),
            "momentum": Key(0.9, "float", "for momentum / nesterov", low=0.0, high=1.0),
            "beta1": Key(0.9, "float", "adam / adamw: decay of the first moment", low=0.0, high=1.0),
            "beta2": Key(0.999, "float", "adam / adamw: decay of the second moment", low=0.0, high=1.0),
            "eps": Key(1e-8, "float", "adam / adamw / rmsprop: added to the denominator", low=0.0, low_open=True),
            "alpha": Key(0.99, "float", "rmsprop: decay of the squared-gradient average", low=0.0, high=1.0),
            "schedule": Key({"name": "plateau", "factor": 0.5, "patience": 6, "min_lr": 1e-5}, "schedule", "learning-rate schedule: a name, or {name: step, step_size: 50, gamma: 0.1}; when not written and early stopping's patience is 6 or less, the plateau's patience is half of it (constant below 2)",
                            tuple(SCHEDULES), sub=_schedule_keys()),
            "warmup": Key(5, "int", "epochs of linear warm-up before the schedule: the rate climbs from lr/(w+1) to lr, then the schedule runs over the epochs left", low=0),
            "label_smoothing": Key(0.0, "float", "classification: train on targets y(1 - e) + e/classes (PyTorch's label_smoothing); validation losses use the true labels", low=0.0, high=1.0),
            "loss": Key("auto", "choice", "auto picks cross_entropy / binary_cross_entropy / mse from the task", ("auto",) + tuple(LOSSES)),
            "l2": Key(0.0001, "float", "weight decay: adds l2 * W to each weight gradient (biases are not decayed)", low=0.0),
            "l2_embeddings": Key(True, "bool", "whether l2 also decays the embedding tables (data.embedding)"),
            "grad_clip": Key(None, "float", "null, or the largest global gradient norm: larger gradients are scaled down to it (torch.nn.utils.clip_grad_norm_)",
                             low=0.0, low_open=True, nullable=True),
            "shuffle": Key(True, "bool", "reshuffle the training rows every epoch"),
            "early_stopping": Key({name: key.default for name, key in EARLY_STOPPING.items()}, "early_stopping",
                                  "null (train every epoch), or {patience: 16, min_delta: 0.0, metric: val_loss, restore_best: true}; when not written and there is no validation part, null",
                                  nullable=True, sub=EARLY_STOPPING),
            "class_weight": Key(None, "class_weight", "null | balanced | {label: weight}: each row's loss times its class's weight", nullable=True),
            "target_weights": Key({}, "target_weights", "several targets: {column: weight} in the summed loss; each target's loss is first divided by its value at initialization, so equal weights (the default, 1) make the targets count alike"),
            "calibration": Key("none", "choice", "classification: none | temperature (after training, fit one temperature T on the validation part: probabilities become softmax(z / T) or sigmoid(z / T); labels do not change)",
                               ("none", "temperature")),
            "conformal": Key("absolute", "choice", "regression: absolute | normalized (the validation part's residuals kept for predict --interval: as they are, an interval of one width for every row; or divided by the ensemble members' spread plus a floor, so intervals widen where members disagree: needs model.ensemble >= 2)",
                             ("absolute", "normalized")),
            "dtype": Key("float32", "choice", "float32 | float64, used throughout", ("float32", "float64")),
            "log_every": Key("auto", "auto_int", "measure and log every Nth epoch (and the first and last); auto keeps about 200 rows", low=1),
            "display_rows": Key(30, "int", "about how many epochs the loss table shows (plus the last)", low=1),
            "checkpoint_every": Key("auto", "auto_int", "epochs between checkpoints (checkpoint.npz, for --resume); auto: about every 30 s of training; null: none",
                                    low=1, nullable=True),
        },
        "report": {
            "importance": Key(False, "bool", "after training, permutation importance on the test part (or else the validation part) -> importance.csv, shown by nnctl report; costs repeats x columns extra passes over that part"),
        },
        "tracking": {
            "uri": Key(None, "str", "an MLflow tracking URI (http://..., file:..., sqlite:...), or env for $MLFLOW_TRACKING_URI; null = off",
                       nullable=True),
            "experiment": Key(None, "str", "the MLflow experiment; null = the config file's stem", nullable=True),
            "run_name": Key(None, "str", "the MLflow run's name; null = the run folder's name", nullable=True),
            "tags": Key({}, "tags", "more MLflow tags: {name: value}"),
        },
    }


# what other libraries call a key (PyTorch, Keras, scikit-learn), for the "did you mean" of an unknown one
OTHER_NAMES = {"lr": "learning_rate", "epochs": "iterations", "n_epochs": "iterations", "max_iter": "iterations",
               "weight_decay": "l2", "hidden_layer_sizes": "layers", "hidden_layers": "layers", "optim": "optimizer"}


def suggest(name, known) -> str:
    """' (did you mean 'x'?)' for an unknown key: its nnctl name when another library's name was
    used (`training.lr` -> `training.learning_rate`), else a near miss among `known`."""
    from ..errors import did_you_mean

    head, _, last = str(name).rpartition(".")
    other = OTHER_NAMES.get(last.strip().lower())
    if other is not None:
        candidate = f"{head}.{other}" if head else other
        if candidate in known:
            return f" (did you mean '{candidate}'?)"
    return did_you_mean(name, known)


_SPEC: dict | None = None


def spec() -> dict:
    global _SPEC
    if _SPEC is None:
        _SPEC = _spec()
    return _SPEC
