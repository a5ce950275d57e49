"""`nnctl gradcheck`, `nnctl trace` and `nnctl plot`: backpropagation made visible."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..jsonfmt import dumps
from . import app, errors_handled, ExitCode, SetOption


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
):
    """Compare backprop gradients with central finite differences (float64); exit 1 on a failure.

    Example: nnctl gradcheck configs/iris.yaml --set model.activation=gelu
    """
    from ..commands.gradcheck import run_gradcheck
    from ..errors import NnctlError
    from ..ui.printing import print_gradcheck

    if not tol > 0 or tol == float("inf"):  # nan and negative tolerances pass or fail everything
        raise NnctlError(f"--tol must be a positive number, got {tol}", "--tol", "e.g. --tol 1e-6")
    results = run_gradcheck(config, set_ or [], rows, max_entries)
    print_gradcheck(results, tol, json_)
    if not all(r.passed(tol) for r in results):
        raise typer.Exit(ExitCode.CHECK_FAILED)


# --- trace -----------------------------------------------------------------------------------
@app.command()
@errors_handled
def trace(
    config: Path = typer.Argument(..., metavar="CONFIG", help="YAML config file"),
    set_: Optional[List[str]] = SetOption,
    rows: int = typer.Option(4, "--rows", min=1, metavar="N", help="Rows of training data in the batch"),
    steps: int = typer.Option(1, "--steps", min=1, metavar="K", help="Training steps to show"),
    json_: bool = typer.Option(False, "--json", help="Every number as JSON"),
):
    """Show training steps layer by layer: forward values, loss, deltas, gradients, updates.

    Example: nnctl trace configs/xor.yaml --rows 4 --steps 1
    """
    from ..commands.trace import run_trace
    from ..ui.printing import print_trace

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
):
    """Draw the loss curves of one or more runs into a PNG, or a sweep folder's optimization
    history and each parameter against the metric (needs the plot extra).

    Example: nnctl plot runs/iris-* --output compare.png
    """
    from ..commands.plot import is_sweep, plot_histories, plot_sweep
    from ..runs.folder import RunFolder

    if len(runs) == 1 and is_sweep(runs[0]):
        typer.echo(str(plot_sweep(runs[0], output)))
        return
    curves = [(Path(r).name, RunFolder(r).read_history()) for r in runs]
    typer.echo(str(plot_histories(curves, output)))
