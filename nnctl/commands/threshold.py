"""`nnctl evaluate --choose-threshold`: the decision threshold of a two-class model that meets a
rule on a labelled table, and every metric at it.

    report = choose_threshold_csv(run, "holdout.csv", "precision=0.9")
    report["threshold"]   # pass it to `nnctl predict --threshold`
    save_chosen(load_model(run), "holdout.csv", "f1")  # or store it in model.npz (meta.threshold)

The candidates are the distinct predicted probabilities of the positive class; a row is
predicted positive when its probability is at least the threshold, as `predict --threshold`.

- f1: the threshold with the highest F1;
- youden: the highest TPR − FPR (Youden's J);
- precision=P: the lowest threshold whose precision is at least P (the most recall it allows);
- recall=R: the highest threshold whose recall is at least R (the most precision it allows).

Ties (f1, youden) go to the highest threshold: the fewest rows called positive.
"""
from __future__ import annotations

import numpy as np

from ..errors import NnctlError

FLAG = "--choose-threshold"
RULES = ("f1", "youden", "precision=P", "recall=R")


def parse_rule(text: str) -> tuple[str, float | None]:
    """'f1' -> ('f1', None); 'precision=0.9' -> ('precision', 0.9)."""
    name, eq, value = str(text).strip().partition("=")
    name = name.strip().lower()
    if name in ("f1", "youden") and not eq:
        return name, None
    if name in ("precision", "recall") and eq:
        try:
            level = float(value)
        except ValueError:
            level = float("nan")
        if 0.0 < level <= 1.0:
            return name, level
        raise NnctlError(f"{name}={value.strip()} needs a level above 0 and at most 1", FLAG, f"e.g. {name}=0.9")
    raise NnctlError(f"unknown rule '{text}'", FLAG, f"one of {', '.join(RULES)}, e.g. {FLAG} precision=0.9")


def pick_threshold(positive, score, rule: str, level: float | None = None) -> float:
    """The threshold among the distinct scores that meets `rule` (see the module docstring).
    `positive`: (rows,) bool, `score`: (rows,) the positive class's probability. A constraint
    no threshold meets is an NnctlError saying the best reachable value."""
    from ..nn.metrics import threshold_counts

    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        raise NnctlError(f"choosing a threshold needs rows of both classes; this data has only "
                         f"{'negative' if n_pos == 0 else 'positive'} ones", FLAG, "evaluate on a table with both")
    thresholds, tp, fp = threshold_counts(positive, score)
    recall = tp / n_pos
    precision = tp / (tp + fp)
    if rule == "f1":
        return float(thresholds[np.argmax(2 * tp / (tp + fp + n_pos))])
    if rule == "youden":
        return float(thresholds[np.argmax(recall - fp / n_neg)])
    values = precision if rule == "precision" else recall
    meets = np.flatnonzero(values >= level)
    if not len(meets):
        raise NnctlError(f"{rule}={level:g} cannot be met on this data: the highest {rule} any threshold reaches is "
                         f"{values.max():.4f}", FLAG, f"ask for {rule}={np.floor(values.max() * 1e4) / 1e4:g} or less, "
                         "or use f1")
    # thresholds fall along the array: precision= takes the last that meets it, recall= the first
    return float(thresholds[meets[-1] if rule == "precision" else meets[0]])


def choose_threshold(model, data_path, rule_text: str, positive=None, chunk_rows: int | None = None,
                     ranges=None) -> dict:
    """`evaluate`'s report at the threshold that meets `rule_text` ('f1', 'youden',
    'precision=P', 'recall=R'), with `threshold` and `rule`: for two-class models only."""
    model.require_one_target("--choose-threshold")
    from .predict import labelled_outputs, positive_index, score_outputs

    rule, level = parse_rule(rule_text)
    if model.task == "regression" or len(model.classes) != 2:
        kind = "a regression" if model.task == "regression" else f"{len(model.classes)} classes"
        raise NnctlError(f"{FLAG} applies to two-class models; this one has {kind}", FLAG,
                         "leave it out: the predicted class is the most probable one")
    index = positive_index(model, positive)
    y, out = labelled_outputs(model, data_path, chunk_rows, ranges=ranges)
    # the probability as the model computes it: the same number predict compares with
    threshold = pick_threshold(y == index, out[:, index], rule, level)
    report = score_outputs(model, y, out, threshold, positive)
    return {"threshold": threshold, "rule": rule if level is None else f"{rule}={level:g}", **report}


def choose_threshold_csv(model_path, data_path, rule_text: str, positive=None) -> dict:
    """`choose_threshold` of the model saved at `model_path` (a run folder or its model.npz)."""
    from ..runs.model import load_model

    return choose_threshold(load_model(model_path), data_path, rule_text, positive)


def save_chosen(model, data_path, rule_text: str, positive=None, ranges=None) -> dict:
    """`choose_threshold`, then the threshold stored in the model's file (`meta.threshold`,
    written atomically), which predict, serve and export use unless given --threshold. The
    report gains `saved`: the model file's path. A stored threshold refers to the model's own
    positive class, so --positive naming the other class is refused. `model`: a loaded Model."""
    from ..runs.model import save_threshold
    from .predict import positive_index

    if positive is not None and model.task == "classification" and len(model.classes) == 2 \
            and positive_index(model, positive) != 1:
        raise NnctlError(f"a saved threshold refers to the model's positive class ({model.classes[1]}), not "
                         f"'{positive}'", "--save", "leave --positive out to save one, or leave --save out")
    report = choose_threshold(model, data_path, rule_text, positive, ranges=ranges)
    save_threshold(model, report["threshold"])
    return {**report, "saved": str(model.path)}
