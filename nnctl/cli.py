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


def guarded(debug: bool, action):
    """Run `action()`, turning user errors into one `error:` line and exit 2."""
    from .errors import NnctlError

    try:
        return action()
    except NnctlError as exc:
        if debug:
            raise
        fail(str(exc))
    except MemoryError:
        if debug:
            raise
        fail("not enough memory for this data or model\nuse fewer rows, a smaller model, or float32 (training.dtype)")
    except KeyboardInterrupt:
        sys.stderr.write("aborted\n")
        raise typer.Exit(EXIT_INTERRUPTED)
    except BrokenPipeError:  # `nnctl predict ... | head`: the reader has all it wanted
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(0)
    except (typer.Exit, typer.Abort, SystemExit):
        raise
    except OSError as exc:  # the machine said no: permissions, a full disk, a vanished file
        if debug:
            raise
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        fail(f"{exc.strerror or exc}{where}\ncheck the path, its permissions and the free disk space")
    except Exception as exc:  # an nnctl bug: say so plainly; --debug shows where
        if debug:
            raise
        fail(f"unexpected {type(exc).__name__}: {exc}\nthis is a bug in nnctl; rerun with --debug and report the traceback")


# --- train -----------------------------------------------------------------------------------
@app.command()
def train(
    config: Path = typer.Argument(..., metavar="CONFIG", help="YAML config file"),
    set_: Optional[List[str]] = SetOption,
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Folder for run folders"),
    name: Optional[str] = typer.Option(None, "--name", help="Run name (default: the config file's stem)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the run folder's path"),
    json_: bool = typer.Option(False, "--json", help="One JSON object per logged epoch on stdout, then a summary"),
    no_cache: bool = NoCacheOption,
    debug: bool = DebugOption,
):
    """Train a network and save a run folder; its path is the last line of stdout.

    Example: RUN=$(nnctl train configs/iris.yaml --set training.learning_rate=0.05 --quiet)
    """
    from .signals import Interrupts

    def action():
        import json

        from .api import train_config
        from .config import load_config
        from .report import JsonLines, LiveTable, Many, PlainLines, stderr_is_live, summary_line

        cfg = load_config(config, set_ or [])
        rows = cfg["training"]["display_rows"]
        shown = None
        if not quiet:
            if stderr_is_live():
                from rich.console import Console

                shown = LiveTable(Console(stderr=True), rows, title=f"training {config.name}")
            else:
                shown = PlainLines(sys.stderr, rows)
        reporter = Many(shown, JsonLines(sys.stdout) if json_ else None)
        with Interrupts() as interrupts:
            try:
                result = train_config(cfg, runs_dir, name or config.stem, callback=reporter, should_stop=interrupts,
                                      cache=not no_cache)
            finally:
                reporter.close()
        run = result.run
        if not quiet:
            sys.stderr.write(summary_line(result, run) + "\n")
        if json_:
            typer.echo(json.dumps({"run": str(run), **result.metrics}))
        else:
            typer.echo(str(run))
        if result.status == "interrupted":
            raise typer.Exit(EXIT_INTERRUPTED)

    guarded(debug, action)


# --- validate --------------------------------------------------------------------------------
@app.command()
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

    def action():
        from .api import architecture, build_network
        from .config import dump_config, load_config
        from .data import load_dataset

        cfg = load_config(config, set_ or [])
        dataset = load_dataset(cfg, cache=not no_cache)
        net = build_network(cfg, dataset)
        typer.echo(dump_config(cfg), nl=False)
        lines = [f"architecture  {architecture(net.sizes)}  ({net.n_params():,} parameters; "
                 f"{' → '.join(net.output_activations)})",
                 f"task          {dataset.task} (loss {net.loss_name})",
                 f"rows          {dataset.rows_read} read"
                 + (f", {dataset.rows_dropped} dropped for missing values" if dataset.rows_dropped else ""),
                 f"features      {len(dataset.encoder.features)} columns → {dataset.n_inputs} inputs",
                 f"split         {len(dataset.X_train)} train, {len(dataset.X_val)} validation"]
        if dataset.classes:
            lines.insert(3, "classes       " + ", ".join(f"{c} ({n})" for c, n in dataset.class_counts.items()))
        sys.stderr.write("\n".join(lines) + "\nconfig is valid\n")

    guarded(debug, action)


# --- predict ---------------------------------------------------------------------------------
@app.command()
def predict(
    model: Path = typer.Argument(..., metavar="MODEL", help="Run folder or its model.npz"),
    data: Path = typer.Argument(..., metavar="DATA.csv", help="CSV with the model's feature columns (any order; extra columns ignored)"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the CSV here instead of stdout"),
    proba: bool = typer.Option(False, "--proba", help="Add one p_<class> probability column per class"),
    debug: bool = DebugOption,
):
    """Predict every row of a CSV; writes a CSV with a `prediction` column.

    Example: nnctl predict runs/iris-20250101-120000 new.csv --proba > predictions.csv
    """

    def action():
        from .api import predict_frames
        from .model import load_model
        from .outputs import write_csv_frames

        loaded = load_model(model)
        write_csv_frames(predict_frames(loaded, data, proba), output)
        if output is not None:
            sys.stderr.write(f"predictions written to {output}\n")

    guarded(debug, action)


# --- evaluate --------------------------------------------------------------------------------
@app.command()
def evaluate(
    model: Path = typer.Argument(..., metavar="MODEL", help="Run folder or its model.npz"),
    data: Path = typer.Argument(..., metavar="DATA.csv", help="CSV with the feature columns and the target column"),
    json_: bool = typer.Option(False, "--json", help="Print one JSON object with every metric"),
    fail_under: Optional[List[str]] = typer.Option(None, "--fail-under", metavar="METRIC=VALUE", help="Exit 1 if METRIC < VALUE (repeatable)"),
    fail_over: Optional[List[str]] = typer.Option(None, "--fail-over", metavar="METRIC=VALUE", help="Exit 1 if METRIC > VALUE, for losses (repeatable)"),
    debug: bool = DebugOption,
):
    """Score a model on a labelled CSV; exit 1 when a --fail-under/--fail-over threshold is missed.

    Example: nnctl evaluate "$RUN" datasets/iris.csv --fail-under accuracy=0.9
    """

    def action():
        import json

        from .api import check_thresholds, evaluate_csv
        from .outputs import print_evaluation

        report = evaluate_csv(model, data)
        missed = check_thresholds(report, fail_under or [], fail_over or [])
        if json_:
            typer.echo(json.dumps(report))
        else:
            print_evaluation(report)
        for line in missed:
            sys.stderr.write(f"failed: {line}\n")
        if missed:
            raise typer.Exit(EXIT_CHECK_FAILED)

    guarded(debug, action)


# --- gradcheck -------------------------------------------------------------------------------
@app.command()
def gradcheck(
    config: Path = typer.Argument(..., metavar="CONFIG", help="YAML config file"),
    set_: Optional[List[str]] = SetOption,
    rows: int = typer.Option(16, "--rows", min=1, help="Rows of the config's training data to use"),
    tol: float = typer.Option(1e-6, "--tol", help="Largest relative error that passes"),
    max_entries: int = typer.Option(200, "--max-entries", min=1, help="Entries probed per parameter array"),
    json_: bool = typer.Option(False, "--json", help="Print the results as JSON"),
    debug: bool = DebugOption,
):
    """Compare backprop gradients with central finite differences (float64); exit 1 on a failure.

    Example: nnctl gradcheck configs/iris.yaml --set model.activation=gelu
    """

    def action():
        from .gradcheck import run_gradcheck
        from .outputs import print_gradcheck

        results = run_gradcheck(config, set_ or [], rows, max_entries)
        passed = all(r.passed(tol) for r in results)
        print_gradcheck(results, tol, json_)
        if not passed:
            raise typer.Exit(EXIT_CHECK_FAILED)

    guarded(debug, action)


# --- trace -----------------------------------------------------------------------------------
@app.command()
def trace(
    config: Path = typer.Argument(..., metavar="CONFIG", help="YAML config file"),
    set_: Optional[List[str]] = SetOption,
    rows: int = typer.Option(4, "--rows", min=1, help="Rows of training data in the batch"),
    steps: int = typer.Option(1, "--steps", min=1, help="Training steps to show"),
    json_: bool = typer.Option(False, "--json", help="Every number as JSON"),
    debug: bool = DebugOption,
):
    """Show training steps layer by layer: forward values, loss, deltas, gradients, updates.

    Example: nnctl trace configs/xor.yaml --rows 4 --steps 1
    """

    def action():
        import json

        from .tracing import run_trace
        from .outputs import print_trace

        record = run_trace(config, set_ or [], rows, steps)
        if json_:
            typer.echo(json.dumps(record))
        else:
            print_trace(record)

    guarded(debug, action)


# --- plot ------------------------------------------------------------------------------------
@app.command()
def plot(
    runs: List[Path] = typer.Argument(..., metavar="RUN...", help="One or more run folders"),
    output: Path = typer.Option(Path("loss-curves.png"), "--output", "-o", help="PNG file to write"),
    debug: bool = DebugOption,
):
    """Draw the loss curves of one or more runs into a PNG (needs the plot extra).

    Example: nnctl plot runs/iris-* --output compare.png
    """

    def action():
        from .plot import plot_histories
        from .runs import read_history

        curves = [(Path(r).name, read_history(r)) for r in runs]
        typer.echo(str(plot_histories(curves, output)))

    guarded(debug, action)


# --- schema, init, runs ----------------------------------------------------------------------
@app.command()
def schema():
    """Print the config's JSON Schema (for editor completion and checks).

    Example: nnctl schema > nnctl.schema.json
    """
    import json

    from .schema import json_schema

    typer.echo(json.dumps(json_schema(), indent=2))


@app.command()
def init(
    path: Path = typer.Argument(Path("nnctl.yaml"), metavar="[PATH]", help="Where to write the config"),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file"),
    debug: bool = DebugOption,
):
    """Write a commented starter config that trains as-is on the bundled Iris data.

    Example: nnctl init my.yaml && nnctl train my.yaml
    """

    def action():
        from .errors import NnctlError
        from .outputs import write_text_atomic
        from .schema import starter_config

        if path.exists() and not force:
            raise NnctlError("file exists", str(path), "pass --force to overwrite it")
        iris = Path(__file__).resolve().parent / "examples" / "iris.csv"
        write_text_atomic(path, starter_config(str(iris), "species"))
        sys.stderr.write(f"wrote {path}; train it with: nnctl train {path}\n")

    guarded(debug, action)


@app.command(name="runs")
def runs_(
    folder: Path = typer.Argument(Path("runs"), metavar="[DIR]", help="Folder holding run folders"),
    json_: bool = typer.Option(False, "--json", help="Print a JSON list"),
):
    """List runs, newest first, with their final metrics.

    Example: nnctl runs runs/ --json
    """
    import json

    from .outputs import print_runs
    from .runs import list_runs

    found = list_runs(folder)
    if json_:
        typer.echo(json.dumps(found))
    elif not found:
        sys.stderr.write(f"no runs in {folder}\n")
    else:
        print_runs(found)


def main():
    app(prog_name="nnctl")
