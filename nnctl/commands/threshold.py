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
    if model.targets is not None:
        return _choose_target_thresholds(model, data_path, rule_text, positive, chunk_rows, ranges)
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


def target_rules(model, rule_text: str) -> dict:
    """Several targets: {target: (rule, level)} of `<target>=<rule>[,...]` (`sold=f1`,
    `sold=precision=0.9,churn=youden`), each target a two-class one; a bare rule is ambiguous."""
    views = {v.name: v for v in model.targets}
    two = [v.name for v in model.targets if v.task == "classification" and len(v.classes) == 2]
    rules = {}
    for part in str(rule_text).split(","):
        name, eq, rule = part.partition("=")
        name = name.strip()
        if not eq or name not in views:
            if eq and name not in ("precision", "recall"):
                raise NnctlError(f"{FLAG} names '{name}', which is not a target of this model", FLAG,
                                 f"its targets: {', '.join(views)}")
            example = f"e.g. {FLAG} {two[0] if two else '<target>'}=f1"
            raise NnctlError(f"{FLAG} {rule_text}: with several targets, name the target it is for", FLAG,
                             example + (f" (two-class targets: {', '.join(two)})" if two else
                                        "; this model has no two-class target"))
        if name not in two:
            view = views[name]
            kind = "a regression" if view.task == "regression" else f"{len(view.classes)} classes"
            raise NnctlError(f"target '{name}': {FLAG} applies to two-class targets; this one has {kind}", FLAG,
                             f"two-class targets: {', '.join(two)}" if two else "this model has no two-class target")
        rules[name] = parse_rule(rule)
    return rules


def _choose_target_thresholds(model, data_path, rule_text: str, positive=None, chunk_rows=None, ranges=None) -> dict:
    """Several targets: `choose_threshold` of each target `<target>=<rule>` names, from one
    pass over the table; evaluate's report of every target at those thresholds, with
    `<target>.threshold` and `<target>.rule`."""
    from .predict import score_outputs
    from .targets import multi_labelled, target_thresholds

    rules = target_rules(model, rule_text)
    positives = target_thresholds(model, None, positive)  # --positive sold=no, checked before the file is read
    truths, out = multi_labelled(model, data_path, chunk_rows, ranges=ranges)
    report = {"task": model.task, "rows": int(len(out)), "targets": [v.name for v in model.targets]}
    for view, y in zip(model.targets, truths):
        threshold = None
        index = positives.get(view.name, (None, 1))[1]
        own = view.values(out) if view.task == "regression" else view.proba(out)
        if view.name in rules:
            rule, level = rules[view.name]
            try:
                threshold = pick_threshold(y == index, own[:, index], rule, level)
            except NnctlError as exc:
                raise NnctlError(f"target '{view.name}': {exc.message}", exc.where, exc.hint)
            report[f"{view.name}.rule"] = rule if level is None else f"{rule}={level:g}"
        scored = score_outputs(view, y, own, threshold, None if index == 1 else view.classes[index])
        report.update((f"{view.name}.{k}", v) for k, v in scored.items() if k not in ("rows", "task"))
    return report


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

    if model.targets is not None:
        return _save_target_thresholds(model, data_path, rule_text, positive, ranges)
    if positive is not None and model.task == "classification" and len(model.classes) == 2 \
            and positive_index(model, positive) != 1:
        raise NnctlError(f"a saved threshold refers to the model's positive class ({model.classes[1]}), not "
                         f"'{positive}'", "--save", "leave --positive out to save one, or leave --save out")
    report = choose_threshold(model, data_path, rule_text, positive, ranges=ranges)
    save_threshold(model, report["threshold"])
    return {**report, "saved": str(model.path)}


def _save_target_thresholds(model, data_path, rule_text: str, positive=None, ranges=None) -> dict:
    """Several targets: `save_chosen` of each target `<target>=<rule>` names, each threshold in
    its `meta.targets` entry; the report gains `saved`."""
    from ..runs.model import save_target_thresholds
    from .targets import target_thresholds

    rules = target_rules(model, rule_text)
    for name, (_, index) in target_thresholds(model, None, positive).items():
        view = next(v for v in model.targets if v.name == name)
        if name in rules and index != 1:
            raise NnctlError(f"a saved threshold refers to target '{name}''s positive class ({view.classes[1]}), "
                             "not the one --positive names", "--save", "leave --positive out to save one, "
                             "or leave --save out")
    report = choose_threshold(model, data_path, rule_text, positive, ranges=ranges)
    save_target_thresholds(model, {name: report[f"{name}.threshold"] for name in rules})
    return {**report, "saved": str(model.path)}
