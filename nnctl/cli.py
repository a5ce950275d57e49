"""The command line: parse arguments, call the Python API, print. Nothing else lives here.

Data and the run path go to stdout; progress, tables and messages to stderr. A user mistake is
one `error:` line (and a hint line) with exit 2; `--debug` shows the traceback instead.
Heavy modules are imported inside the commands, so `nnctl --help` starts fast.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from .jsonfmt import dumps

def _arguments_as_written() -> None:
    """Usage lines read like the README's table (`nnctl train CONFIG`, `nnctl init [PATH]`,
    `nnctl plot RUN...`): typer would wrap each metavar again in {} or [] and add its type."""
    from typer.core import TyperArgument

    TyperArgument._usage_display_name = lambda self: self.metavar or self.name.upper()
    TyperArgument.display_type_rich = lambda self, ctx: None


_arguments_as_written()

app = typer.Typer(
    name="nnctl",
    help="Train multilayer perceptrons on CSV files from a YAML config, with NumPy backpropagation.\n\n"
    "Example: nnctl train configs/iris.yaml",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

EXIT_BAD_INPUT = 2
EXIT_CHECK_FAILED = 1
EXIT_INTERRUPTED = 130

SetOption = typer.Option(None, "--set", "-s", metavar="KEY=VALUE", help="Override a config key (repeatable), e.g. training.learning_rate=0.1")
DebugOption = typer.Option(False, "--debug", help="Show the traceback of an error.")
NoCacheOption = typer.Option(False, "--no-cache", help="Parse the CSV again instead of using the dataset cache (~/.cache/nnctl, or $NNCTL_CACHE_DIR; at most $NNCTL_CACHE_LIMIT, default 2GB)")


def _version(value: bool):
    if value:
        from . import __version__

        typer.echo(f"nnctl {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version.")):
    pass


def fail(message: str, code: int = EXIT_BAD_INPUT):
    sys.stderr.write(f"error: {message}\n")
    raise typer.Exit(code)


def errors_handled(command):
    """nnctl's one error policy, for every command: a user mistake (NnctlError), a machine
    that says no (memory, permissions, a full disk) or a bug each become one `error:` line and
    exit 2; Ctrl-C exits 130; a closed pipe ends quietly. With `--debug` the traceback shows."""
    import functools

    @functools.wraps(command)
    def run(*args, **kwargs):
        from .errors import NnctlError, NothingTrained

        debug = kwargs.get("debug", False)
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except NothingTrained as exc:
            sys.stderr.write(f"{exc}\n")
            raise typer.Exit(EXIT_INTERRUPTED)
        except KeyboardInterrupt:
            sys.stderr.write("aborted\n")
            raise typer.Exit(EXIT_INTERRUPTED)
        except BrokenPipeError:  # `nnctl predict ... | head`: the reader has all it wanted
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(0)
        except Exception as exc:
            if debug:
                raise
            fail(_message(exc, NnctlError))

    return run


def _message(exc: Exception, user_error) -> str:
    if isinstance(exc, user_error):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "not enough memory for this data or model\nuse fewer rows, a smaller model, or float32 (training.dtype)"
    if isinstance(exc, OSError):  # the machine said no: permissions, a full disk, a vanished file
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        return f"{exc.strerror or exc}{where}\ncheck the path, its permissions and the free disk space"
    return (f"unexpected {type(exc).__name__}: {exc}\n"
            "this is a bug in nnctl; rerun with --debug and report the traceback")


def parse_limits(flag: str, specs: list[str]) -> dict:
    """['accuracy=0.9'] -> {'accuracy': 0.9}; a malformed one is an NnctlError naming the flag."""
    from .errors import NnctlError

    limits = {}
    for spec in specs:
        name, _, raw = spec.partition("=")
        try:
            limits[name.strip()] = float(raw)
        except ValueError:
            raise NnctlError(f"{flag} expects METRIC=NUMBER, got '{spec}'", flag, f"e.g. {flag} accuracy=0.9")
    return limits


# --- train -----------------------------------------------------------------------------------
@app.command()
@errors_handled
def train(
    config: Optional[Path] = typer.Argument(None, metavar="CONFIG", help="YAML config file"),
    set_: Optional[List[str]] = SetOption,
    resume: Optional[Path] = typer.Option(None, "--resume", metavar="RUN", help="Continue RUN (a run folder, or an incomplete one `nnctl runs` lists) from its checkpoint, in a new run folder; --set may change only training.iterations, log_every, display_rows and early_stopping.patience"),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", metavar="DIR", help="Folder for run folders"),
    name: Optional[str] = typer.Option(None, "--name", metavar="NAME", help="Run name, one folder name (default: the config file's stem)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the run folder's path"),
    json_: bool = typer.Option(False, "--json", help="One JSON object per logged epoch on stdout, then a summary"),
    report: bool = typer.Option(False, "--report", help="Also write report.html into the run folder (as `nnctl report RUN`)"),
    no_cache: bool = NoCacheOption,
    debug: bool = DebugOption,
):
    """Train a network and save a run folder; its path is the last line of stdout.

    Example: RUN=$(nnctl train configs/iris.yaml --set training.learning_rate=0.05 --quiet)

    Continue a run: nnctl train --resume "$RUN" --set training.iterations=400
    """
    from .commands.train import resume_config, train_config
    from .config import load_config
    from .errors import NnctlError
    from .training.callbacks import Many
    from .training.checkpoint import load_checkpoint
    from .training.signals import Interrupts
    from .ui.progress import JsonLines, LiveTable, PlainLines, stderr_is_live, summary_line

    if (config is None) == (resume is None):
        raise NnctlError("give a CONFIG to train, or --resume RUN to continue a run (not both)", "nnctl train",
                         "e.g. nnctl train configs/iris.yaml, or nnctl train --resume runs/iris-20260101-120000")
    checkpoint = None
    if resume is not None:
        arrays, meta = load_checkpoint(resume)
        cfg = resume_config(meta, set_ or [], str(resume))
        checkpoint, default_name, title = (arrays, meta, resume), meta["name"], f"resuming {resume.name}"
    else:
        cfg = load_config(config, set_ or [])
        default_name, title = config.stem, f"training {config.name}"
    rows = cfg["training"]["display_rows"]
    shown = None
    if not quiet:
        if stderr_is_live():
            from rich.console import Console

            shown = LiveTable(Console(stderr=True), rows, title=title)
        else:
            shown = PlainLines(sys.stderr, rows)
    reporter = Many(shown, JsonLines(sys.stdout) if json_ else None)
    with Interrupts() as interrupts:
        try:
            result = train_config(cfg, runs_dir, default_name if name is None else name, callback=reporter,
                                  should_stop=interrupts, cache=not no_cache, resume=checkpoint)
        finally:
            reporter.close()
    run = result.run
    if report:
        from .report.write import report_runs

        report_runs([run])
    if not quiet:
        sys.stderr.write(summary_line(result, run) + "\n")
    if json_:
        typer.echo(dumps({"run": str(run), **result.metrics}))
    else:
        typer.echo(str(run))
    if result.status == "interrupted":
        raise typer.Exit(EXIT_INTERRUPTED)


# --- validate --------------------------------------------------------------------------------
@app.command()
@errors_handled
def validate(
    config: Path = typer.Argument(..., metavar="CONFIG", help="YAML config file"),
    set_: Optional[List[str]] = SetOption,
    no_cache: bool = NoCacheOption,
    debug: bool = DebugOption,
):
    """Check a config and its dataset without training; print the resolved config (stdout) and
    the architecture, rows, classes and split (stderr).

    Example: nnctl validate configs/iris.yaml --set model.layers=[32,16]
    """
    from .config import dump_config, load_config
    from .data import load_dataset
    from .training.build import build_network
    from .training.scoring import class_weights
    from .ui.printing import validation_summary

    cfg = load_config(config, set_ or [])
    dataset = load_dataset(cfg, cache=not no_cache)
    network = build_network(cfg, dataset)
    class_weights(cfg["training"]["class_weight"], dataset)
    typer.echo(dump_config(cfg), nl=False)
    sys.stderr.write(validation_summary(network, dataset) + "\nconfig is valid\n")


# --- predict ---------------------------------------------------------------------------------
@app.command()
@errors_handled
def predict(
    model: Path = typer.Argument(..., metavar="MODEL", help="Run folder or its model.npz"),
    data: Path = typer.Argument(..., metavar="DATA.csv", help="CSV with the model's feature columns (any order; extra columns ignored); - reads stdin; .gz .bz2 .xz .zip are read as they are"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", metavar="FILE", help="Write the CSV here instead of stdout"),
    proba: bool = typer.Option(False, "--proba", help="Add one p_<class> probability column per class"),
    threshold: Optional[float] = typer.Option(None, "--threshold", metavar="T", help="Two classes: predict the second class when its probability is at least T (default: the most probable class, i.e. 0.5)"),
    keep: Optional[List[str]] = typer.Option(None, "--keep", metavar="COL", help="Copy this input column (an ID, say) into the output, first, unchanged (repeatable)"),
    debug: bool = DebugOption,
):
    """Predict every row of a CSV; writes a CSV with a `prediction` column.

    Example: nnctl predict runs/iris-20250101-120000 new.csv --proba > predictions.csv
    """
    from .commands.predict import predict_frames
    from .runs.model import load_model
    from .ui.printing import write_csv_frames

    loaded = load_model(model)
    write_csv_frames(predict_frames(loaded, data, proba, threshold=threshold, keep=keep or ()), output)
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
    threshold: Optional[float] = typer.Option(None, "--threshold", metavar="T", help="Two classes: count a row as the second class when its probability is at least T"),
    debug: bool = DebugOption,
):
    """Score a model on a labelled CSV; exit 1 when a --fail-under/--fail-over threshold is missed.

    Example: nnctl evaluate "$RUN" datasets/iris.csv --fail-under accuracy=0.9
    """
    from .commands.predict import check_thresholds, evaluate_csv
    from .ui.printing import print_evaluation

    under, over = parse_limits("--fail-under", fail_under or []), parse_limits("--fail-over", fail_over or [])
    report = evaluate_csv(model, data, threshold=threshold)
    missed = check_thresholds(report, under, over)
    if json_:
        typer.echo(dumps(report))
    else:
        print_evaluation(report)
    for line in missed:
        sys.stderr.write(f"failed: {line}\n")
    if missed:
        raise typer.Exit(EXIT_CHECK_FAILED)


# --- gradcheck -------------------------------------------------------------------------------
@app.command()
@errors_handled
def gradcheck(
    config: Path = typer.Argument(..., metavar="CONFIG", help="YAML config file"),
    set_: Optional[List[str]] = SetOption,
    rows: int = typer.Option(16, "--rows", min=1, metavar="N", help="Rows of the config's training data to use"),
    tol: float = typer.Option(1e-6, "--tol", metavar="TOL", help="Largest relative error that passes"),
    max_entries: int = typer.Option(200, "--max-entries", min=1, metavar="N", help="Entries probed per parameter array"),
    json_: bool = typer.Option(False, "--json", help="Print the results as JSON"),
    debug: bool = DebugOption,
):
    """Compare backprop gradients with central finite differences (float64); exit 1 on a failure.

    Example: nnctl gradcheck configs/iris.yaml --set model.activation=gelu
    """
    from .commands.gradcheck import run_gradcheck
    from .ui.printing import print_gradcheck

    results = run_gradcheck(config, set_ or [], rows, max_entries)
    print_gradcheck(results, tol, json_)
    if not all(r.passed(tol) for r in results):
        raise typer.Exit(EXIT_CHECK_FAILED)


# --- trace -----------------------------------------------------------------------------------
@app.command()
@errors_handled
def trace(
    config: Path = typer.Argument(..., metavar="CONFIG", help="YAML config file"),
    set_: Optional[List[str]] = SetOption,
    rows: int = typer.Option(4, "--rows", min=1, metavar="N", help="Rows of training data in the batch"),
    steps: int = typer.Option(1, "--steps", min=1, metavar="K", help="Training steps to show"),
    json_: bool = typer.Option(False, "--json", help="Every number as JSON"),
    debug: bool = DebugOption,
):
    """Show training steps layer by layer: forward values, loss, deltas, gradients, updates.

    Example: nnctl trace configs/xor.yaml --rows 4 --steps 1
    """
    from .commands.trace import run_trace
    from .ui.printing import print_trace

    record = run_trace(config, set_ or [], rows, steps)
    if json_:
        typer.echo(dumps(record))
    else:
        print_trace(record)


# --- plot ------------------------------------------------------------------------------------
@app.command()
@errors_handled
def plot(
    runs: List[Path] = typer.Argument(..., metavar="RUN...", help="One or more run folders"),
    output: Path = typer.Option(Path("loss-curves.png"), "--output", "-o", metavar="FILE", help="PNG file to write"),
    debug: bool = DebugOption,
):
    """Draw the loss curves of one or more runs into a PNG, or a sweep folder's optimization
    history and each parameter against the metric (needs the plot extra).

    Example: nnctl plot runs/iris-* --output compare.png
    """
    from .commands.plot import is_sweep, plot_histories, plot_sweep
    from .runs.folder import read_history

    if len(runs) == 1 and is_sweep(runs[0]):
        typer.echo(str(plot_sweep(runs[0], output)))
        return
    curves = [(Path(r).name, read_history(r)) for r in runs]
    typer.echo(str(plot_histories(curves, output)))


# --- sweep, cv ---------------------------------------------------------------------------------
@app.command()
@errors_handled
def sweep(
    sweep_file: Optional[Path] = typer.Argument(None, metavar="SWEEP.yaml", help="The sweep file (not with --resume)"),
    set_: Optional[List[str]] = SetOption,
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", metavar="DIR", help="Folder for the sweep folder"),
    name: Optional[str] = typer.Option(None, "--name", metavar="NAME", help="Sweep name (default: the sweep file's stem)"),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, metavar="N", help="Trials at once on this machine (default: the number of cores), each with one BLAS thread"),
    ray: Optional[str] = typer.Option(None, "--ray", metavar="ADDRESS", help="Run the trials as tasks on a Ray cluster (auto: RAY_ADDRESS or the running cluster)"),
    resume: Optional[Path] = typer.Option(None, "--resume", metavar="SWEEP_DIR", help="Continue a sweep folder to its `trials`"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the sweep folder's path"),
    json_: bool = typer.Option(False, "--json", help="One JSON object per finished trial on stdout, then a summary"),
    debug: bool = DebugOption,
):
    """Search for a better config with Optuna (grid, random or TPE), trials in parallel on this
    machine or on a Ray cluster; the sweep folder's path is the last line of stdout.

    Example: nnctl sweep configs/iris-sweep.yaml --workers 2
    """
    import json

    from .errors import NnctlError
    from .sweep.driver import run_sweep
    from .ui.progress import stderr_is_live
    from .ui.sweeping import Both, SweepJson, SweepLines, SweepTable

    if (sweep_file is None) == (resume is None):
        raise NnctlError("give a SWEEP.yaml, or --resume SWEEP_DIR (not both)", "nnctl sweep",
                         "e.g. nnctl sweep configs/iris-sweep.yaml")
    shown = None
    if not quiet:
        if stderr_is_live():
            from rich.console import Console

            shown = SweepTable(Console(stderr=True))
        else:
            shown = SweepLines(sys.stderr)
    display = Both(shown, SweepJson(sys.stdout) if json_ else None)
    try:
        result = run_sweep(sweep_file, set_ or [], runs_dir, name, workers, ray, resume, callback=display)
    finally:
        display.close()
    summary = json.loads((result["folder"] / "summary.json").read_text())
    if not quiet:
        best, counts = summary["best"], summary["counts"]
        shown = "—" if best is None else f"{best['value']:.4g} (trial {best['trial']})"
        sys.stderr.write(f"{result['status']} · {counts['complete']} complete, {counts['pruned']} pruned, "
                         f"{counts['failed']} failed · best {summary['metric']} {shown}\n")
    if json_:
        typer.echo(dumps({"folder": str(result["folder"]), "status": result["status"], **summary}))
    typer.echo(str(result["folder"]))
    if result["status"] == "interrupted":
        raise typer.Exit(EXIT_INTERRUPTED)
    if result["status"] == "failed":
        first = next(r["error"] for r in result["rows"] if r.get("error"))
        sys.stderr.write(f"error: every trial failed; the first: {first}\n")
        raise typer.Exit(EXIT_CHECK_FAILED)


@app.command()
@errors_handled
def cv(
    config: Path = typer.Argument(..., metavar="CONFIG", help="YAML config file"),
    folds: int = typer.Option(..., "--folds", metavar="K", help="How many folds (2 or more)"),
    set_: Optional[List[str]] = SetOption,
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", metavar="DIR", help="Folder for the cv folder"),
    name: Optional[str] = typer.Option(None, "--name", metavar="NAME", help="Name (default: the config file's stem)"),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, metavar="N", help="Folds at once (default: the number of cores)"),
    ray: Optional[str] = typer.Option(None, "--ray", metavar="ADDRESS", help="Run the folds on a Ray cluster"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the folder's path"),
    json_: bool = typer.Option(False, "--json", help="Print the summary as JSON"),
    debug: bool = DebugOption,
):
    """K-fold cross-validation of one config (stratified for classification, from its seed):
    per-fold and mean ± std metrics; the folder's path is the last line of stdout.

    Example: nnctl cv configs/iris.yaml --folds 5
    """
    from .sweep.driver import run_cv

    def said(i, result):
        if not quiet:
            sys.stderr.write(f"fold {i}: {result['state']} in {result['seconds']:.1f}s\n")

    result = run_cv(config, folds, set_ or [], runs_dir, name, workers, ray, callback=said)
    if not quiet:
        for key, stats in result["summary"].items():
            if key != "folds":
                sys.stderr.write(f"{key}: {stats['mean']:.4f} ± {stats['std']:.4f} over {folds} folds\n")
    if json_:
        typer.echo(dumps(result["summary"]))
    typer.echo(str(result["folder"]))


# --- report ----------------------------------------------------------------------------------
@app.command()
@errors_handled
def report(
    runs: List[Path] = typer.Argument(..., metavar="RUN...", help="One run folder, or several to compare"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", metavar="FILE", help="The HTML file (default for one run: <run>/report.html; required for several)"),
    debug: bool = DebugOption,
):
    """Write one self-contained HTML report: curves, metrics, confusion matrix or residuals, and
    backprop's health layer by layer; prints its path.

    Example: nnctl report runs/iris-20250101-120000 && xdg-open runs/iris-20250101-120000/report.html
    """
    from .report.write import report_runs

    typer.echo(str(report_runs(runs, output)))


# --- export ----------------------------------------------------------------------------------
@app.command()
@errors_handled
def export(
    model: Path = typer.Argument(..., metavar="MODEL", help="Run folder or its model.npz"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", metavar="FILE", help="Where to write the ONNX file (default: <run>/model.onnx)"),
    opset: int = typer.Option(21, "--opset", metavar="N", help="ONNX opset (13 and above)"),
    debug: bool = DebugOption,
):
    """Export a model to ONNX with its whole pipeline inside (fill, one-hot, scaling, layers,
    labels); prints the file's path. Needs the onnx extra.

    Example: nnctl export runs/iris-20250101-120000 --output iris.onnx
    """
    from .commands.export import export_model

    typer.echo(str(export_model(model, output, opset)))


# --- schema, init, runs ----------------------------------------------------------------------
@app.command()
@errors_handled
def schema(
    sweep_file: bool = typer.Option(False, "--sweep", help="The sweep file's schema instead of the config's"),
    debug: bool = DebugOption,
):
    """Print the config's (or with --sweep, the sweep file's) JSON Schema, for editor completion
    and checks.

    Example: nnctl schema > nnctl.schema.json
    """
    if sweep_file:
        from .sweep.spec import sweep_schema

        typer.echo(dumps(sweep_schema(), indent=2))
        return
    from .config.schema import json_schema

    typer.echo(dumps(json_schema(), indent=2))


@app.command()
@errors_handled
def init(
    path: Path = typer.Argument(Path("nnctl.yaml"), metavar="[PATH]", help="Where to write the config"),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file"),
    debug: bool = DebugOption,
):
    """Write a commented starter config, and a copy of the Iris data beside it (iris.csv) that
    it trains on as-is.

    Example: nnctl init my.yaml && nnctl train my.yaml
    """
    import shutil

    from .atomic import write_text_atomic
    from .config.schema import starter_config
    from .errors import NnctlError

    if path.exists() and not force:
        raise NnctlError("file exists", str(path), "pass --force to overwrite it")
    iris = Path(__file__).resolve().parent / "examples" / "iris.csv"
    data = path.parent / iris.name
    if data.exists() and data.read_bytes() != iris.read_bytes() and not force:
        raise NnctlError("another iris.csv is already there", str(data),
                         "pass --force to overwrite it, or write the config into another folder")
    if not data.exists() or force:
        shutil.copyfile(iris, data)
    write_text_atomic(path, starter_config(data.name, "species"))
    sys.stderr.write(f"wrote {path} and the data it trains on, {data}; train it with: nnctl train {path}\n")


@app.command(name="runs")
@errors_handled
def runs_(
    folder: Path = typer.Argument(Path("runs"), metavar="[DIR]", help="Folder holding run folders"),
    json_: bool = typer.Option(False, "--json", help="Print a JSON list"),
    incomplete: bool = typer.Option(False, "--incomplete", help="Only runs whose training was killed (resume them with train --resume PATH, or delete them)"),
    debug: bool = DebugOption,
):
    """List runs, newest first, with their final metrics.

    Example: nnctl runs runs/ --json
    """
    from .errors import NnctlError
    from .runs.folder import list_runs
    from .ui.printing import print_runs

    if not folder.is_dir():
        raise NnctlError("no such folder" if not folder.exists() else "not a folder", str(folder),
                         "give the folder that holds your run folders (train's --runs-dir; default: runs)")
    found = list_runs(folder, incomplete_only=incomplete)
    if json_:
        typer.echo(dumps(found))
    elif not found:
        sys.stderr.write(f"no runs in {folder}\n")
    else:
        print_runs(found)


def main():
    app(prog_name="nnctl")
