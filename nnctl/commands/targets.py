"""predict and evaluate for a model of several targets: one column per target (`price`,
`condition`), `--proba` adds `p_<target>_<class>`; evaluate scores each target as a model of
that target alone would be scored, its metrics named `<target>.<metric>`."""
from __future__ import annotations

import numpy as np

from ..data.targets import MULTI
from ..errors import NnctlError
from .predict import decide, effective_threshold


def check_multi_options(model, options) -> int:
    """Refuse options no target can honour, and output columns that --keep would give twice;
    returns predict's `chosen` index (unused with several targets). --threshold, --positive,
    --interval and --sets are each checked against the targets they name or apply to."""
    target_thresholds(model, options.threshold, options.positive)
    if options.spread:
        from .predict import require_members

        require_members(model)
    conformal_of(model, options)
    taken = set(options.kept())
    for name in output_names(model, options.proba, options):
        if name in taken:
            raise NnctlError(f"--keep {name} would give the output two '{name}' columns", "--keep",
                             "rename that column in the input")
    return 1


def target_thresholds(model, threshold=None, positive=None) -> dict:
    """{target: (threshold or None, index of the class it refers to)} of the two-class targets
    --threshold and --positive name, each given as `<target>=<value>` (several joined by commas:
    `--threshold sold=0.3,churn=0.7`); a target --positive alone names keeps the most probable
    class. Each value is checked as for a model of that target alone."""
    from .predict import check_threshold, positive_index

    views = {v.name: v for v in model.targets}
    two = [v.name for v in model.targets if v.task == "classification" and len(v.classes) == 2]
    thresholds, positives = (_named(model, flag, given, two) for flag, given in
                             (("--threshold", threshold), ("--positive", positive)))
    chosen = {}
    for name in dict.fromkeys([*thresholds, *positives]):
        if name not in views:
            flag = "--threshold" if name in thresholds else "--positive"
            raise NnctlError(f"{flag} names '{name}', which is not a target of this model", flag,
                             f"its targets: {', '.join(views)}")
        t = thresholds.get(name)
        if t is not None:
            try:
                t = float(t)
            except ValueError:
                raise NnctlError(f"--threshold {name}={t}: the threshold must be a probability between 0 and 1",
                                 "--threshold", f"e.g. --threshold {name}=0.3")
        try:
            check_threshold(views[name], t)
            chosen[name] = (t, positive_index(views[name], positives.get(name)))
        except NnctlError as exc:
            raise NnctlError(f"target '{name}': {exc.message}", exc.where, exc.hint)
    return chosen


def _named(model, flag: str, given, two: list) -> dict:
    """{target: value} of `<target>=<value>[,...]` (or a dict, from serve); a bare value is
    ambiguous with several targets."""
    if given is None:
        return {}
    if isinstance(given, dict):
        return {str(k): v for k, v in given.items()}
    parts = [p.partition("=") for p in str(given).split(",")] if "=" in str(given) else []
    if not parts or any(not sep or not name.strip() for name, sep, _ in parts):
        example = f"{two[0] if two else '<target>'}={'0.3' if flag == '--threshold' else '<label>'}"
        raise NnctlError(f"{flag} {given}: with several targets, name the target it is for", flag,
                         f"e.g. {flag} {example}" + (f" (two-class targets: {', '.join(two)})" if two else
                                                     "; this model has no two-class target"))
    return {name.strip(): value.strip() for name, _, value in parts}


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
        if options is not None and options.spread:
            names += spread_names(view)
    return names


def spread_names(view) -> list[str]:
    """--spread's columns of one target, named as its other columns are: `<target>_spread` (as
    `<target>_lower`) for a regression target, `spread_<target>_<class>` (as `p_<target>_<class>`)
    for each class of a classification target."""
    if view.task == "regression":
        return [f"{view.name}_spread"]
    return [f"spread_{view.name}_{c}" for c in view.classes]


def member_spreads(model, X: np.ndarray, probability_dtype=np.float32) -> dict:
    """{column: the members' standard deviation (population, ddof 0)} of each target's value in
    its units or of each of its class probabilities, as one target's `spread_from_inputs`
    (uncalibrated: a temperature belongs to the ensemble's mean, not to one member). A class's
    spread is given in `probability_dtype`, its probabilities' precision."""
    members = model.network_member_outputs(X)
    spreads = {}
    for view in model.targets:
        if view.task == "regression":
            spread = view.values(members).std(axis=0)
        else:
            spread = view.proba(members).std(axis=0).astype(probability_dtype)
        spreads.update(zip(spread_names(view), np.atleast_2d(spread.T)))
    return spreads


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
    spreads = member_spreads(model, X, outputs.dtype) if options is not None and options.spread else None
    decided = target_thresholds(model, options.threshold, options.positive) if options is not None else {}
    for view in model.targets:
        own = conformal.get(view.name)
        if view.task == "regression":
            columns[view.name] = view.values(outputs)
        else:
            p = view.proba(outputs)
            # --threshold <target>=T, else the threshold saved for this target (--choose-threshold --save)
            threshold, index = effective_threshold(view, *decided.get(view.name, (None, 1)))
            if threshold is None:
                columns[view.name] = view.labels(p)
            else:
                columns[view.name] = np.asarray(view.classes, dtype=object)[decide(view, p, threshold, index)]
            if proba:
                for i, c in enumerate(view.classes):
                    columns[f"p_{view.name}_{c}"] = p[:, i]
        if own is not None:
            added = {}
            # normalized intervals: each row's width follows this target's members' spread
            spread = view.spread_from_inputs(X)[:, 0] if own.needs_spread else None
            own.add(added, columns[view.name] if view.task == "regression" else p, spread)
            for name, values in added.items():
                columns[f"{view.name}_{name.replace('prediction_', '')}"] = values
        if spreads is not None:
            columns.update((name, spreads[name]) for name in spread_names(view))
    return columns


def multi_evaluate(model, data_path, chunk_rows=None, given_as="the DATA argument", ranges=None, options=None) -> dict:
    """evaluate's report of each target on a labelled table: `<target>.<metric>` for each of
    its metrics (as `score_outputs` gives them for one target), in the targets' order; with
    --interval / --sets (`options`), each target's `<target>.level`, `.coverage` and
    `.mean_width` or `.mean_set_size`."""
    from .predict import score_outputs

    views = model.targets
    conformal = conformal_of(model, options) if options is not None else {}
    # normalized intervals: each row's width follows its target's members' spread, in the same pass
    spreads = {v.name: [] for v in views if v.name in conformal and conformal[v.name].needs_spread}
    truths, out = multi_labelled(model, data_path, chunk_rows, given_as, ranges, spreads)
    report = {"task": MULTI, "rows": int(len(out)), "targets": [v.name for v in views]}
    decided = target_thresholds(model, options.threshold, options.positive) if options is not None else {}
    for view, y in zip(views, truths):
        own = view.values(out) if view.task == "regression" else view.proba(out)
        spread = np.concatenate(spreads[view.name]) if view.name in spreads else None
        covered = conformal[view.name].coverage(y, own, spread) if view.name in conformal else {}
        threshold, index = decided.get(view.name, (None, None))
        scored = score_outputs(view, y, own, threshold, None if index is None else view.classes[index])
        for key, value in {**scored, **covered}.items():
            if key not in ("rows", "task"):
                report[f"{view.name}.{key}"] = value
    return report


def multi_labelled(model, data_path, chunk_rows=None, given_as="the DATA argument", ranges=None,
                   spreads: dict | None = None) -> tuple[list, np.ndarray]:
    """([each target's truth (rows,)], the model's outputs (rows, Σ outputs)) on a labelled
    table, read in chunks; `spreads` {target: []} gets each chunk's members' spread of those
    regression targets, in the same pass."""
    from .predict import _chunks, _where, truth_of

    views, where, spreads = model.targets, _where(data_path), spreads or {}
    truths, outputs = [[] for _ in views], []
    columns = list(dict.fromkeys(model.encoder.features + [v.name for v in views]))
    for chunk in _chunks(model, data_path, columns, chunk_rows, given_as=given_as):
        X = model.inputs(chunk, where)
        if ranges is not None:
            ranges.add(X, chunk.index)
        for view, kept in zip(views, truths):
            kept.append(truth_of(view, chunk, where))
            if view.name in spreads:
                spreads[view.name].append(view.spread_from_inputs(X)[:, 0])
        outputs.append(model.network_outputs(X))
    if not sum(len(t) for t in truths[0]):
        raise NnctlError("data file has no rows to evaluate", where)
    return [np.concatenate(kept) for kept in truths], np.concatenate(outputs)


def threshold_names(report: dict) -> list[str]:
    """The metrics --fail-under and --fail-over take on a multi-target report: each target's
    numbers, `<target>.<metric>`."""
    return [k for k, v in report.items() if "." in k and isinstance(v, (int, float)) and not isinstance(v, bool)]
