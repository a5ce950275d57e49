"""`nnctl explain`: which columns a saved model relies on."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from ..jsonfmt import dumps
from . import app, errors_handled


@app.command()
@errors_handled
def explain(
    model: Path = typer.Argument(..., metavar="MODEL", help="Run folder or its model.npz"),
    data: Path = typer.Argument(..., metavar="DATA.csv", help="CSV with the model's feature columns, and the target column for permutation; - reads stdin"),
    method: str = typer.Option("permutation", "--method", metavar="METHOD", help="permutation (the drop in a metric when a column is shuffled) or gradient (mean |∂output/∂input × input|)"),
    repeats: Optional[int] = typer.Option(None, "--repeats", metavar="R", help="Permutation: shuffles per column (default 5); std is their spread"),
    metric: Optional[str] = typer.Option(None, "--metric", metavar="M", help="Permutation: the metric whose drop is measured (default: accuracy for classification, r2 for regression); several targets: TARGET.METRIC ranks that target alone"),
    seed: Optional[int] = typer.Option(None, "--seed", metavar="N", help="Permutation: seed of the shuffles (default 0)"),
    json_: bool = typer.Option(False, "--json", help="Print one JSON object: method, metric, columns [{column, importance, std}]"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", metavar="FILE", help="Also write column, importance, std as CSV here"),
):
    """Rank the columns a model relies on, most important first.

    Example: nnctl explain "$RUN" datasets/iris.csv --repeats 10
    """
    from ..atomic import refuse_same_file
    from ..commands.explain import explain_file, importance_frame
    from ..runs.model import model_path
    from ..ui.importance import print_importance
    from ..ui.printing import check_output, write_csv_frames

    # a run folder is read through its model.npz: --output RUN/model.npz would destroy the model
    refuse_same_file(output, [data, model_path(model)])
    if output is not None:
        check_output(output, "importance.csv")
    result = explain_file(model, data, method, metric, repeats, seed)
    if output is not None:
        write_csv_frames([importance_frame(result)], output)
    if json_:
        typer.echo(dumps(result))
    else:
        print_importance(result)
    if output is not None:
        sys.stderr.write(f"importance written to {output}\n")
