"""`nnctl track`: finished runs, sweeps and cv folders copied into MLflow after the fact."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from ..jsonfmt import dumps
from . import app, errors_handled, ExitCode, said_credentials, warn


@app.command()
@errors_handled
def track(
    runs: List[Path] = typer.Argument(..., metavar="RUN...", help="Run, sweep or cv folders"),
    uri: str = typer.Option("env", "--uri", metavar="URI", callback=said_credentials, help="The MLflow tracking URI (http://..., file:..., sqlite:...); default env: $MLFLOW_TRACKING_URI; credentials in MLFLOW_TRACKING_USERNAME/PASSWORD or MLFLOW_TRACKING_TOKEN"),
    experiment: Optional[str] = typer.Option(None, "--experiment", metavar="NAME", help="The MLflow experiment (default: the config's tracking.experiment, else the folder's name without its time stamp)"),
    json_: bool = typer.Option(False, "--json", help="One JSON object per folder on stdout"),
):
    """Upload finished runs to MLflow (a sweep or cv folder as a parent run with its trials or
    folds nested): runs trained without tracking, old runs, or runs the server missed. A run
    already logged in full is left as it is; stdout has one MLflow run id per folder.

    Example: nnctl track runs/iris-20260101-120000 --uri http://127.0.0.1:5000
    """
    from ..tracking.track import track_folders

    done = track_folders(runs, uri, experiment)
    for item in done:
        if json_:
            typer.echo(dumps({k: str(v) if isinstance(v, Path) else v for k, v in item.items()}))
        elif item["run_id"] and item["state"] != "failed":
            typer.echo(item["run_id"])
        said = {"logged": "logged", "already": "already logged, left as it is", "failed": "not logged"}[item["state"]]
        sys.stderr.write(f"{item['folder']}: {said}" + (f" (MLflow run {item['run_id']})" if item["run_id"] else "")
                         + "\n")
        warn(item.get("note"))
    failed = [item for item in done if item["state"] == "failed"]
    if failed:
        sys.stderr.write(f"error: {failed[0]['warning']}\n")
        raise typer.Exit(ExitCode.CHECK_FAILED)
