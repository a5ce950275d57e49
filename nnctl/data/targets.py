"""Several targets in one table (`data.target: [price, condition]`): each target's task, labels
or scaling, and the rows they share.

A multi-target `Dataset` keeps `task = "multitarget"`, `target` the list of names, and
`targets`: one `Target` per column, in order. Its `y_train`/`y_val` are (rows, targets) floats:
column j is target j's class index (a classification) or its value on the scale training sees
(a regression, after its own target transform). The rows are split at random (not stratified:
there are several labels to stratify by).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import NnctlError
from .columns import auto_task, classes_note, missing_error, task_note
from .scaling import check_log1p, fit_target, target_setting, to_training
from .splits import kfold_split, random_split

MULTI = "multitarget"  # a multi-target Dataset's and model's `task`


@dataclass
class Target:
    """One target of several: its column, task, labels (sorted, the positive class last) or
    target scaler, and its class weight setting (training.class_weight's forms)."""
    name: str
    task: str
    classes: list | None = None
    target_scaler: dict | None = None
    class_weight: object = None
    class_counts: dict = field(default_factory=dict)

    @property
    def n_outputs(self) -> int:
        if self.task == "regression":
            return 1
        return 1 if len(self.classes) == 2 else len(self.classes)


def target_names(target) -> list[str]:
    """data.target as a list: one column, or the several targets in order."""
    return list(target) if isinstance(target, (list, tuple)) else [target]


def is_multi(target) -> bool:
    return isinstance(target, (list, tuple))


def not_yet(what: str, where: str, hint: str = "train one target per model for this") -> NnctlError:
    """The one error of a feature that several targets do not reach yet."""
    return NnctlError(f"{what} does not support several targets yet", where, hint)


def settings(cfg, name: str) -> dict:
    return dict((cfg.data.targets or {}).get(name) or {})


def missing_policy(cfg, name: str) -> str:
    """error | drop: a target's rows without a value (data.targets.<t>.missing, else data.missing's)."""
    return settings(cfg, name).get("missing") or ("error" if cfg.data.missing == "error" else "drop")


def drop_hint(name: str) -> str:
    """The fix for a missing value of one of several targets."""
    return f"fill them in, or set data.targets: {{{name}: {{missing: drop}}}}"


def drop_missing_targets(df, cfg, names: list[str], where: str):
    """Rows missing a target whose policy is drop are left out; one missing a target whose
    policy is error is an NnctlError naming the column."""
    for name in names:
        missing = df[name].isna()
        if not missing.any():
            continue
        if missing_policy(cfg, name) == "error":
            row = int(df.index[int(np.flatnonzero(missing.to_numpy())[0])])
            raise missing_error(name, row, where, int(missing.sum()), target=True, hint=drop_hint(name))
        df = df[~missing]
    if len(df) == 0:
        raise NnctlError("no rows left after dropping rows with missing targets", where)
    return df


def target_tasks(cfg, df, names: list[str], notes: list) -> list[str]:
    from .dataset import target_kind

    tasks = []
    for name in names:
        task = settings(cfg, name).get("task") or cfg.model.task
        if task == "auto":
            kind, distinct = target_kind(df[name])
            task = auto_task(kind, distinct)
            notes += task_note(kind, distinct, name)
        tasks.append(task)
    return tasks


def split_targets(cfg, rows, fold):
    """(y (rows, targets) float64, [Target], train_idx, val_idx) of the read rows: labels
    encoded and positive classes put last per target, and the rows split at random."""
    from .dataset import _only_known_classes, _positive_last, _regression_target, encode_labels

    names = target_names(cfg.data.target)
    rng = np.random.default_rng(np.random.SeedSequence(cfg.seed).spawn(1)[0])
    columns, targets = [], []
    for name, task in zip(names, rows.tasks):
        own = settings(cfg, name)
        if task == "classification":
            classes, y = encode_labels(rows.df[name], name, rows.where)
            rows.notes.extend(classes_note(classes, len(y), name))
            if own.get("positive_class") is not None:
                classes, y = _positive_last(classes, y, own["positive_class"], name, rows.where,
                                            f"data.targets.{name}.positive_class")
        else:
            if own.get("positive_class") is not None:
                raise NnctlError(f"data.targets.{name}.positive_class is set, but '{name}' is a regression",
                                 rows.where, f"leave it out, or set data.targets.{name}.task: classification")
            if own.get("class_weight") is not None:
                raise NnctlError(f"data.targets.{name}.class_weight is set, but '{name}' is a regression",
                                 rows.where, f"leave it out, or set data.targets.{name}.task: classification")
            classes, y = None, _regression_target(rows.df[name], name, rows.where)[:, 0]
        columns.append(y.astype(np.float64))
        targets.append(Target(name, task, classes, class_weight=own.get("class_weight")))
    y = np.stack(columns, axis=1)
    if rows.val_where is not None:
        train_idx, val_idx = np.arange(rows.train_rows), np.arange(rows.train_rows, len(rows.df))
        for j, t in enumerate(targets):
            if t.task == "classification":
                _only_known_classes(t.classes, y[:, j].astype(np.int64), train_idx, val_idx, t.name, rows.val_where)
    elif fold:
        train_idx, val_idx = kfold_split(y[:, 0], fold, rng, stratified=False)
    else:
        train_idx, val_idx = random_split(len(y), cfg.data.validation_split, rng)
    return y, targets, train_idx, val_idx


def encode_targets(cfg, targets: list, y_train: np.ndarray, y_val: np.ndarray, counted: np.ndarray, where: str,
                   dtype) -> tuple[np.ndarray, np.ndarray]:
    """Fit each regression target's transform on its training rows and count each class;
    returns (y_train, y_val) in `dtype`, regression columns on the scale training sees."""
    kind = target_setting(cfg.data)
    y_train, y_val = y_train.copy(), y_val.copy()
    for j, t in enumerate(targets):
        if t.task == "classification":
            counts = np.bincount(counted[:, j].astype(np.int64), minlength=len(t.classes))
            t.class_counts = {str(c): int(n) for c, n in zip(t.classes, counts)}
            continue
        if kind == "log1p":
            check_log1p(np.concatenate([y_train[:, j], y_val[:, j]]), t.name, where)
        t.target_scaler = fit_target(y_train[:, j:j + 1], kind)
        if t.target_scaler:
            y_train[:, j] = to_training(y_train[:, j:j + 1], t.target_scaler)[:, 0]
            y_val[:, j] = to_training(y_val[:, j:j + 1], t.target_scaler)[:, 0]
    return y_train.astype(dtype), y_val.astype(dtype)


def target_meta(target: Target) -> dict:
    """What model.npz keeps of a target (meta.targets[i], with the head's output and loss)."""
    meta = {"name": target.name, "task": target.task}
    if target.task == "classification":
        meta["classes"] = target.classes
        if len(target.classes) == 2:
            meta["positive_class"] = target.classes[1]
    else:
        meta["target_scaler"] = target.target_scaler
    return meta
