"""`nnctl predict` and `nnctl evaluate`: a saved model on a table."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from ..jsonfmt import dumps
from . import app, errors_handled, ExitCode, parse_limits, UnknownCategory


STRICT_RANGE_HELP = ("Refuse (exit 2) a table with a numeric value far outside what training saw (beyond the "
                     "training range by more than half its width), instead of warning")


def threshold_value(value):
    """--threshold: a probability, read and refused as typer reads a float option (the same
    error line), or `TARGET=T[,...]` for a model of several targets."""
    if isinstance(value, str) and "=" in value:
        return value
    from pydantic import TypeAdapter, ValidationError
    from pydantic_core import PydanticKnownError

    try:
        return TypeAdapter(float).validate_python(value)
    except ValidationError as exc:  # re-raised as the error itself, not wrapped as a "Value error"
        raise PydanticKnownError(exc.errors()[0]["type"]) from None


# --- predict ---------------------------------------------------------------------------------
@app.command()
@errors_handled
def predict(
    model: Path = typer.Argument(..., metavar="MODEL", help="Run folder or its model.npz"),
    data: Path = typer.Argument(..., metavar="DATA.csv", help="CSV with the model's feature columns (any order; extra columns ignored); - reads stdin; .gz .bz2 .xz .zip are read as they are"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", metavar="FILE", help="Write the CSV here instead of stdout"),
    proba: bool = typer.Option(False, "--proba", help="Add one p_<class> probability column per class"),
    threshold: Optional[float] = typer.Option(None, "--threshold", metavar="T", parser=threshold_value, help="Two classes: predict the positive class when its probability is at least T (default: the most probable class, i.e. 0.5); several targets: TARGET=T"),
    positive: Optional[str] = typer.Option(None, "--positive", metavar="LABEL", help="Two classes: the class --threshold refers to (default: the model's positive class, data.positive_class); several targets: TARGET=LABEL"),
    keep: Optional[List[str]] = typer.Option(None, "--keep", metavar="COL", help="Copy this input column (an ID, say) into the output, first, unchanged (repeatable)"),
    interval: Optional[float] = typer.Option(None, "--interval", metavar="L", help="Regression: add lower and upper, a split-conformal interval that holds the true value for a share L of rows (e.g. 0.9); needs a validation part at training time"),
    sets: Optional[float] = typer.Option(None, "--sets", metavar="L", help="Classification: add prediction_set, the classes (joined by |) of a split-conformal set that holds the true class for a share L of rows; needs a validation part at training time"),
    strict_range: bool = typer.Option(False, "--strict-range", help=STRICT_RANGE_HELP),
    spread: bool = typer.Option(False, "--spread", help="An ensemble (model.ensemble): add the members' standard deviation per row, spread (regression) or spread_<class> (of each probability); several targets: <target>_spread, spread_<target>_<class>"),
    unknown_category: Optional[UnknownCategory] = typer.Option(None, "--unknown-category", help="A category training never saw: error, or ignore (it adds nothing: an all-zero one-hot, the zero row of an embedding, as under data.unknown_category: ignore). Default: the model's data.unknown_category"),
):
    """Predict every row of a CSV; writes a CSV with a `prediction` column.

    Example: nnctl predict runs/iris-20250101-120000 new.csv --proba > predictions.csv
    """
    from ..atomic import refuse_same_file
    from ..commands.predict import positive_index, predict_frames, range_check
    from ..runs.model import load_model, model_path
    from ..ui.printing import write_csv_frames

    # a run folder is read through its model.npz: --output RUN/model.npz would destroy the model
    refuse_same_file(output, [data, model_path(model)])
    loaded = load_model(model)
    ranges = range_check(loaded, data, strict_range)
    frames = predict_frames(loaded, data, proba, threshold=threshold, keep=keep or (), positive=positive,
                            interval=interval, sets=sets, ranges=ranges, spread=spread,
                            unknown=unknown_category and unknown_category.value)
    write_csv_frames(frames, output)
    _range_warnings(ranges)
    _conformal_note(loaded, interval, sets)
    if threshold is not None and loaded.targets is not None:
        from ..commands.targets import target_thresholds

        for name, (t, index) in target_thresholds(loaded, threshold, positive).items():
            if t is not None:
                label = dict((v.name, v.classes) for v in loaded.targets)[name][index]
                sys.stderr.write(f"{name} is {label} where p_{name}_{label} is at least {t:g}\n")
    elif threshold is not None:
        label = loaded.classes[positive_index(loaded, positive)]
        sys.stderr.write(f"prediction is {label} where its probability (p_{label}) is at least {threshold:g}\n")
    _saved_threshold_note(loaded, threshold)
    if output is not None:
        sys.stderr.write(f"predictions written to {output}\n")


# --- evaluate --------------------------------------------------------------------------------
@app.command()
@errors_handled
def evaluate(
    model: Path = typer.Argument(..., metavar="MODEL", help="Run folder or its model.npz"),
    data: Path = typer.Argument(..., metavar="DATA.csv", help="CSV with the feature columns and the target column; - reads stdin"),
    json_: bool = typer.Option(False, "--json", help="Print one JSON object with every metric"),
    fail_under: Optional[List[str]] = typer.Option(None, "--fail-under", metavar="METRIC=VALUE", help="Exit 1 if METRIC < VALUE (repeatable)"),
    fail_over: Optional[List[str]] = typer.Option(None, "--fail-over", metavar="METRIC=VALUE", help="Exit 1 if METRIC > VALUE, for losses (repeatable)"),
    threshold: Optional[float] = typer.Option(None, "--threshold", metavar="T", parser=threshold_value, help="Two classes: count a row as the positive class when its probability is at least T; several targets: TARGET=T"),
    positive: Optional[str] = typer.Option(None, "--positive", metavar="LABEL", help="Two classes: the class --threshold, roc_auc and average_precision refer to (default: the model's positive class); several targets: TARGET=LABEL"),
    choose_threshold: Optional[str] = typer.Option(None, "--choose-threshold", metavar="RULE", help="Two classes: find the threshold that meets RULE (f1 | youden | precision=P | recall=R) and score at it, for predict --threshold"),
    interval: Optional[float] = typer.Option(None, "--interval", metavar="L", help="Regression: add the coverage and mean_width of the split-conformal intervals at level L"),
    sets: Optional[float] = typer.Option(None, "--sets", metavar="L", help="Classification: add the coverage and mean_set_size of the split-conformal sets at level L"),
    save: bool = typer.Option(False, "--save", help="With --choose-threshold: store the threshold in the model (meta.threshold); predict, serve and export then use it unless given --threshold"),
    strict_range: bool = typer.Option(False, "--strict-range", help=STRICT_RANGE_HELP),
):
    """Score a model on a labelled CSV; exit 1 when a --fail-under/--fail-over threshold is missed.

    Example: nnctl evaluate "$RUN" datasets/iris.csv --fail-under accuracy=0.9
    """
    from ..commands.predict import check_thresholds, evaluate as evaluate_model, range_check
    from ..errors import NnctlError
    from ..runs.model import load_model
    from ..ui.printing import print_evaluation

    under, over = parse_limits("--fail-under", fail_under or []), parse_limits("--fail-over", fail_over or [])
    if save and choose_threshold is None:
        raise NnctlError("--save stores the threshold --choose-threshold finds, and it is not given", "--save",
                         "e.g. nnctl evaluate RUN holdout.csv --choose-threshold f1 --save")
    if choose_threshold is not None:
        from ..commands.threshold import choose_threshold as choose_threshold_model, save_chosen

        if threshold is not None:
            raise NnctlError("--threshold and --choose-threshold both set the threshold", "--threshold",
                             "give one of them")
        if interval is not None or sets is not None:
            raise NnctlError("--choose-threshold scores labels at one threshold; --interval and --sets score "
                             "the conformal part", "--choose-threshold", "run evaluate twice, once with each")
    loaded = load_model(model)
    ranges = range_check(loaded, data, strict_range)
    if choose_threshold is not None:
        chooser = save_chosen if save else choose_threshold_model
        report = chooser(loaded, data, choose_threshold, positive=positive, ranges=ranges)
        # several targets: each chosen one's threshold, <target>=T as --threshold takes it
        chosen = ({"": report["threshold"]} if loaded.targets is None else
                  {f"{k[:-5]}=": report[f"{k[:-5]}.threshold"] for k in report if k.endswith(".rule")})
        given = ",".join(f"{name}{t!r}" for name, t in chosen.items())
        if save:
            sys.stderr.write(f"threshold {given} saved in {report['saved']}: predict, serve and "
                             "export use it unless given --threshold\n")
        elif not json_:
            rules = report["rule"] if loaded.targets is None else \
                ", ".join(f"{k[:-5]} {report[k]}" for k in report if k.endswith(".rule"))
            typer.echo(f"threshold {given} meets {rules}: nnctl predict {model} DATA.csv --threshold {given}")
    else:
        report = evaluate_model(loaded, data, threshold=threshold, positive=positive, interval=interval, sets=sets,
                                ranges=ranges)
        _conformal_note(loaded, interval, sets)
        _saved_threshold_note(loaded, threshold)
    if ranges.summary():  # for scripts too: --json carries them beside the metrics
        report["out_of_range"] = ranges.summary()
    _range_warnings(ranges)
    missed = check_thresholds(report, under, over)
    if json_:
        typer.echo(dumps(report))
    else:
        print_evaluation(report)
    for line in missed:
        sys.stderr.write(f"failed: {line}\n")
    if missed:
        raise typer.Exit(ExitCode.CHECK_FAILED)


def _range_warnings(ranges) -> None:
    """One `warning:` line per column with rows far outside what training saw."""
    for line in ranges.warnings():
        sys.stderr.write(f"warning: {line}: predictions there are extrapolations (--strict-range refuses them)\n")


def _saved_threshold_note(model, threshold) -> None:
    from ..commands.predict import saved_threshold_note

    note = saved_threshold_note(model, threshold)
    if note:
        sys.stderr.write(note + "\n")


def _conformal_note(model, interval, sets) -> None:
    """Say so when the validation part was too small for the level asked for."""
    from ..commands.conformal import too_few_note

    for option, level in (("--interval", interval), ("--sets", sets)):
        if level is None:
            continue
        if model.targets is not None:  # several targets: each one its option applies to, named
            task = "regression" if option == "--interval" else "classification"
            notes = [(v.name, too_few_note(v, level, option)) for v in model.targets
                     if v.task == task and v.conformal_scores is not None]
            for name, note in notes:
                if note:
                    sys.stderr.write(f"{note} (target {name})\n")
            continue
        note = too_few_note(model, level, option)
        if note:
            sys.stderr.write(note + "\n")
