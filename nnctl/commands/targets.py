"""predict and evaluate for a model of several targets: one column per target (`price`,
`condition`), `--proba` adds `p_<target>_<class>`; evaluate scores each target as a model of
that target alone would be scored, its metrics named `<target>.<metric>`."""
from __future__ import annotations

import numpy as np

from ..data.targets import MULTI, not_yet
from ..errors import NnctlError


def check_multi_options(model, options) -> int:
    """Refuse what several targets do not support yet, and output columns that --keep would
    give twice; returns predict's `chosen` index (unused with several targets)."""
    for flag, given in (("--threshold", options.threshold is not None), ("--positive", options.positive is not None),
                        ("--interval", options.interval is not None), ("--sets", options.sets is not None),
                        ("--spread", options.spread)):
        if given:
            raise not_yet(flag, str(model.path), f"leave out {flag}, or train one target per model for it")
    taken = set(options.kept())
    for name in output_names(model, options.proba):
        if name in taken:
            raise NnctlError(f"--keep {name} would give the output two '{name}' columns", "--keep",
                             "rename that column in the input")
    return 1


def output_names(model, proba: bool) -> list[str]:
    """The prediction columns in order: each target, then with `proba` its p_<target>_<class>."""
    names = []
    for view in model.targets:
        names.append(view.name)
        if proba and view.task == "classification":
            names += [f"p_{view.name}_{c}" for c in view.classes]
    return names


def multi_prediction_columns(model, X: np.ndarray, proba: bool) -> dict:
    """{column: array} of encoded inputs X: each target's prediction (its label, or its value
    in its units) and with `proba` its class probabilities; one forward pass for all."""
    outputs = model.network_outputs(X)
    columns = {}
    for view in model.targets:
        if view.task == "regression":
            columns[view.name] = view.values(outputs)
            continue
        p = view.proba(outputs)
        columns[view.name] = view.labels(p)
        if proba:
            for i, c in enumerate(view.classes):
                columns[f"p_{view.name}_{c}"] = p[:, i]
    return columns


def multi_evaluate(model, data_path, chunk_rows=None, given_as="the DATA argument", ranges=None) -> dict:
    """evaluate's report of each target on a labelled table: `<target>.<metric>` for each of
    its metrics (as `score_outputs` gives them for one target), in the targets' order."""
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
    for view, kept in zip(views, truths):
        y = np.concatenate(kept)
        own = view.values(out) if view.task == "regression" else view.proba(out)
        for key, value in score_outputs(view, y, own).items():
            if key not in ("rows", "task"):
                report[f"{view.name}.{key}"] = value
    return report


def threshold_names(report: dict) -> list[str]:
    """The metrics --fail-under and --fail-over take on a multi-target report: each target's
    numbers, `<target>.<metric>`."""
    return [k for k, v in report.items() if "." in k and isinstance(v, (int, float)) and not isinstance(v, bool)]
