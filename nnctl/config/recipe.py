"""The tabular recipe: the settings `nnctl init` writes, each with the reason it is there.

The model and training settings are the key table's own defaults (`spec.py`): the best
combination `benchmarks/quality.py` measured (docs/quality.md), so a config with only data.path
and data.target trains it too. `nnctl init` writes them out from that table, with their
reasons, plus a few data settings of its own (`CHOICES`) so that any table trains as it is.

    text = recipe_config("data.csv", "price", task="regression",
                         extra=[(("data", "exclude"), ["id"], "'id' has a different value in every row")])
"""
from __future__ import annotations

from .spec import spec

# (section, key) -> (value, why): init's own choices, apart from the defaults (which fail
# loudly on text columns, missing values and new categories); written first, under data
CHOICES = {
    ("data", "categorical"): ("auto", "every text column is a category (one-hot)"),
    ("data", "missing"): ("mean", "missing numbers get the training mean, categories the most frequent one"),
    ("data", "unknown_category"): ("ignore", "a category never seen in training is all zeros, not an error"),
    ("data", "target_transform"): ("standard", "regression: the network learns the standardized target; predictions come back in its units"),
}

# (section, key) -> why: the defaults init writes out, with their values from the key table
DEFAULTS = {
    ("data", "embedding"): "categoricals of more than 10 categories learn a small table each: measured better than one-hot on every table with one",
    ("data", "scale"): "median and IQR, then a smooth clip to ±3: outliers cannot dominate (measured best with quantile a close second)",
    ("model", "layers"): "three wide layers: measured better than narrow ones on every benchmark table",
    ("model", "activation"): None,
    ("model", "numeric_embedding"): "each number its own learned periodic features (PLR): lower loss on 20 of 24 held-out cells",
    ("model", "dropout"): "early stopping regularizes; dropout 0.1 measured no better",
    ("training", "optimizer"): "Adam with decoupled weight decay",
    ("training", "learning_rate"): "Adam's usual rate",
    ("training", "l2"): "AdamW's weight decay",
    ("training", "batch_size"): "large enough to be fast, small enough to generalize",
    ("training", "iterations"): "the budget: early stopping ends most runs well before it",
    ("training", "warmup"): "a gentle start for Adam's moment estimates",
    ("training", "schedule"): "halve the rate when validation stalls, before early stopping gives up",
    ("training", "early_stopping"): "stop when the validation loss stops improving and keep the best epoch's weights",
    ("training", "label_smoothing"): "classification: 0 keeps log loss honest (smoothing measured worse)",
}


def recipe() -> dict:
    """(section, key) -> (value, why), in the order init writes them: its choices, then the
    defaults it shows (their values read from the key table, the one place they are kept)."""
    table = spec()
    return {**CHOICES, **{(section, key): (table[section][key].default, why) for (section, key), why in DEFAULTS.items()}}


# keys that only mean something for one task, left out of a config written for the other
TASK_ONLY = {("data", "target_transform"): "regression", ("training", "label_smoothing"): "classification"}


def recipe_values(task: str | None = None) -> dict:
    """The recipe as a nested config mapping (without data.path and data.target)."""
    out: dict = {}
    for (section, key), (value, _) in recipe().items():
        if not task or TASK_ONLY.get((section, key), task) == task:
            out.setdefault(section, {})[key] = value
    return out


def recipe_config(data_path: str, target: str, task: str | None = None, validation_path: str | None = None,
                  extra=(), notes=()) -> str:
    """The commented YAML `nnctl init` writes: data.path and data.target, the recipe, and `extra`
    ((section, key), value, why) settings chosen for the table (they replace the recipe's),
    with `notes` (lines) at the top."""
    import yaml

    chosen = {path: (value, why) for path, (value, why) in recipe().items()
              if not task or TASK_ONLY.get(path, task) == task}
    chosen[("data", "path")] = (data_path, None)
    chosen[("data", "target")] = (target, None)
    if validation_path:
        chosen[("data", "validation_path")] = (validation_path, "the validation file early stopping watches")
    if task:
        chosen[("model", "task")] = (task, None)
    for path, value, why in extra:
        chosen[path] = (value, why)
    order = ["data", "model", "training"]
    head = [("data", "path"), ("data", "target")]
    keys = head + [p for p in chosen if p not in head]
    lines = ["# nnctl config written by `nnctl init`: train it with `nnctl train THIS_FILE`.",
             "# The tabular recipe measured by benchmarks/quality.py (docs/quality.md); every key not",
             "# written here has its default (docs/config.md, `nnctl schema`)."]
    lines += [f"# {note}" for note in notes]
    for section in order:
        lines.append(f"{section}:")
        for path in keys:
            if path[0] != section:
                continue
            value, why = chosen[path]
            text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False).strip()
            text = text[:-4].strip() if text.endswith("\n...") or text.endswith(" ...") else text
            line = f"  {path[1]}: {text}"
            lines.append(line.ljust(34) + f"  # {why}" if why else line)
    return "\n".join(lines) + "\n"
