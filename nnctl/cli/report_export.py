"""`nnctl report` and `nnctl export`: looking at a run, and shipping its model."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from . import app, errors_handled, UnknownCategory
from .predict_evaluate import threshold_value


# --- report ----------------------------------------------------------------------------------
@app.command()
@errors_handled
def report(
    runs: List[Path] = typer.Argument(..., metavar="RUN...", help="One run folder, or several to compare"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", metavar="FILE", help="The HTML file (default for one run: <run>/report.html; required for several)"),
):
    """Write one self-contained HTML report: curves, metrics, confusion matrix or residuals, and
    backprop's health layer by layer; prints its path.

    Example: nnctl report runs/iris-20250101-120000 && xdg-open runs/iris-20250101-120000/report.html
    """
    from ..report.write import report_runs

    typer.echo(str(report_runs(runs, output)))


# --- export ----------------------------------------------------------------------------------
@app.command()
@errors_handled
def export(
    model: Path = typer.Argument(..., metavar="MODEL", help="Run folder or its model.npz"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", metavar="FILE", help="Where to write the ONNX file (default: <run>/model.onnx)"),
    opset: int = typer.Option(21, "--opset", metavar="N", help="ONNX opset (13 and above)"),
    interval: Optional[float] = typer.Option(None, "--interval", metavar="L", help="Regression: add outputs lower and upper, the split-conformal interval at level L (as predict --interval)"),
    sets: Optional[float] = typer.Option(None, "--sets", metavar="L", help="Classification: add output prediction_set, [N, classes] booleans, the split-conformal set at level L (as predict --sets)"),
    threshold: Optional[float] = typer.Option(None, "--threshold", metavar="T", parser=threshold_value, help="Two classes: 'label' is the positive class where its probability is at least T (default: the model's saved threshold, else the most probable class); several targets: TARGET=T"),
    unknown_category: Optional[UnknownCategory] = typer.Option(None, "--unknown-category", help="A category training never saw: error (onnxruntime fails the whole run) or ignore (it adds nothing, as predict --unknown-category ignore). Default: the model's data.unknown_category"),
):
    """Export a model to ONNX with its whole pipeline inside (fill, one-hot, scaling, layers,
    labels); prints the file's path. Needs the onnx extra.

    Example: nnctl export runs/iris-20250101-120000 --output iris.onnx
    """
    from ..commands.export import export_model

    typer.echo(str(export_model(model, output, opset, interval, sets, threshold,
                                unknown_category and unknown_category.value)))
