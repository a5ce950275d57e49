"""predict and evaluate for a model of several targets: one column per target (`price`,
`condition`), `--proba` adds `p_<target>_<class>`; evaluate scores each target as a model of
that target alone would be scored, its metrics named `<target>.<metric>`."""
from __future__ import annotations

import numpy as np

from ..data.targets import MULTI, not_yet
from ..errors import NnctlError


def check_multi_options(model, options, conformal: bool = True) -> int:
    """Refuse what several targets do not support yet, and output columns that --keep would
    give twice; returns predict's `chosen` index (unused with several targets). `conformal`:
    --interval and --sets are taken (predict, serve), each checked against its targets."""
    for flag, given in (("--threshold", options.threshold is not None), ("--positive", options.positive is not None),
                        ("--interval", options.interval is not None and not conformal),
                        ("--sets", options.sets is not None and not conformal), ("--spread", options.spread)):
        if given:
            raise not_yet(flag, str(model.path), f"leave out {flag}, or train one target per model for it")
    conformal_of(model, options)
    taken = set(options.kept())
    for name in output_names(model, options.proba, options):
        if name in taken:
            raise NnctlError(f"--keep {name} would give the output two '{name}' columns", "--keep",
                             "rename that column in the input")
    return 1


def output_names(model, proba: bool, options=None) -> list[str]:
    """The prediction columns in order: each target, then with `proba` its p_<target>_<class>,
    then its conformal columns (`<target>_lower`, `<target>_upper` or `<target>_set`)."""
    names, conformal = [], conformal_of(model, options) if options is not None else {}
    for view in model.targets:
        names.append(view.name)
        if proba and view.task == "classification":
            names += [f"p_{view.name}_{c}" for c in view.classes]
        if view.name in conformal:
            names += [f"{view.name}_{n.replace('prediction_', '')}" for n in conformal[view.name].names]
    return names


def conformal_of(model, options) -> dict:
    """{target: its ConformalColumns}: --interval for each regression target, --sets for each
    classification target; an option that no target's task takes is an NnctlError."""
    from .conformal import conformal_columns

    found = {}
    for option, level, task in (("--interval", options.interval, "regression"),
                                ("--sets", options.sets, "classification")):
        if level is None:
            continue
        views = [v for v in model.targets if v.task == task]
        if not views:
            other = "--sets" if option == "--interval" else "--interval"
            raise NnctlError(f"{option} is for {task} targets, and this model has none", option,
                             f"use {other} {level:g} instead")
        for view in views:
            found[view.name] = conformal_columns(view, level if task == "regression" else None,
                                                 level if task == "classification" else None)
    return found


def multi_prediction_columns(model, X: np.ndarray, proba: bool, options=None) -> dict:
    """{column: array} of encoded inputs X: each target's prediction (its label, or its value
    in its units), with `proba` its class probabilities, and the conformal columns `options`
    ask for (`<target>_lower`/`_upper`, `<target>_set`); one forward pass for all."""
    outputs = model.network_outputs(X)
    columns, conformal = {}, conformal_of(model, options) if options is not None else {}
    for view in model.targets:
        own = conformal.get(view.name)
        if view.task == "regression":
            columns[view.name] = view.values(outputs)
        else:
            p = view.proba(outputs)
            columns[view.name] = view.labels(p)
            if proba:
                for i, c in enumerate(view.classes):
                    columns[f"p_{view.name}_{c}"] = p[:, i]
        if own is not None:
            added = {}
            own.add(added, columns[view.name] if view.task == "regression" else p)
            for name, values in added.items():
                columns[f"{view.name}_{name.replace('prediction_', '')}"] = values
    return columns


def multi_evaluate(model, data_path, chunk_rows=None, given_as="the DATA argument", ranges=None, options=None) -> dict:
    """evaluate's report of each target on a labelled table: `<target>.<metric>` for each of
    its metrics (as `score_outputs` gives them for one target), in the targets' order; with
    --interval / --sets (`options`), each target's `<target>.level`, `.coverage` and
    `.mean_width` or `.mean_set_size`."""
    from .predict import _chunks, _where, score_outputs, truth_of

    views = model.targets
    names = [v.name for v in views]
    where = _where(data_path)
    truths, outputs = [[] for _ in views], []
    columns = list(dict.fromkeys(model.encoder.features + names))
    for chunk in _chunks(model, data_path, columns, chunk_rows, given_as=given_as):
        X = model.inputs(chunk, where)
        if ranges is not None:
            ranges.add(X, chunk.index)
        for view, kept in zip(views, truths):
            kept.append(truth_of(view, chunk, where))
        outputs.append(model.network_outputs(X))
    rows = sum(len(t) for t in truths[0])
    if not rows:
        raise NnctlError("data file has no rows to evaluate", where)
    out = np.concatenate(outputs)
    report = {"task": MULTI, "rows": int(rows), "targets": names}
    conformal = conformal_of(model, options) if options is not None else {}
    for view, kept in zip(views, truths):
        y = np.concatenate(kept)
        own = view.values(out) if view.task == "regression" else view.proba(out)
        covered = conformal[view.name].coverage(y, own) if view.name in conformal else {}
        for key, value in {**score_outputs(view, y, own), **covered}.items():
            if key not in ("rows", "task"):
                report[f"{view.name}.{key}"] = value
    return report


def threshold_names(report: dict) -> list[str]:
    """The metrics --fail-under and --fail-over take on a multi-target report: each target's
    numbers, `<target>.<metric>`."""
    return [k for k, v in report.items() if "." in k and isinstance(v, (int, float)) and not isinstance(v, bool)]
