"""`nnctl schema`, `nnctl init` and `nnctl runs`."""
from __future__ import annotations

import sys
from pathlib import Path

import typer

from ..jsonfmt import dumps
from . import app, errors_handled


# --- schema, init, runs ----------------------------------------------------------------------
@app.command()
@errors_handled
def schema(
    sweep_file: bool = typer.Option(False, "--sweep", help="The sweep file's schema instead of the config's"),
):
    """Print the config's (or with --sweep, the sweep file's) JSON Schema, for editor completion
    and checks.

    Example: nnctl schema > nnctl.schema.json
    """
    if sweep_file:
        from ..sweep.spec import sweep_schema

        typer.echo(dumps(sweep_schema(), indent=2))
        return
    from ..config.schema import json_schema

    typer.echo(dumps(json_schema(), indent=2))


@app.command()
@errors_handled
def init(
    path: Path = typer.Argument(Path("nnctl.yaml"), metavar="[PATH]", help="Where to write the config"),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file"),
    data: Path = typer.Option(None, "--data", metavar="FILE", help="A table (CSV, Parquet, folder) to write the config for"),
    target: str = typer.Option(None, "--target", metavar="COL", help="With --data: the column to predict"),
):
    """Write a commented config with the tabular recipe (docs/quality.md). With --data and
    --target, for that table: its task, categoricals, ID-like columns left out, scaling and the
    target's transform, each with the reason; without, for a copy of the Iris data written
    beside it (iris.csv).

    Example: nnctl init my.yaml --data sales.csv --target revenue && nnctl train my.yaml
    """
    import shutil

    from ..atomic import write_text_atomic
    from ..config.recipe import recipe_config
    from ..errors import NnctlError

    if path.exists() and not force:
        raise NnctlError("file exists", str(path), "pass --force to overwrite it")
    if (data is None) != (target is None):
        given, missing = ("--data", "--target") if target is None else ("--target", "--data")
        raise NnctlError(f"{given} needs {missing} too", missing,
                         "e.g. nnctl init my.yaml --data table.csv --target price")
    if data is not None:
        from ..commands.initconfig import config_for_table

        text = config_for_table(path, data, target)
        _make_folder(path)
        write_text_atomic(path, text)
        sys.stderr.write(f"wrote {path} for {data}; train it with: nnctl train {path}\n")
        return
    iris = Path(__file__).resolve().parent.parent / "examples" / "iris.csv"
    data = path.parent / iris.name
    if data.exists() and data.read_bytes() != iris.read_bytes() and not force:
        raise NnctlError("another iris.csv is already there", str(data),
                         "pass --force to overwrite it, or write the config into another folder")
    _make_folder(path)
    if not data.exists() or force:
        shutil.copyfile(iris, data)
    write_text_atomic(path, recipe_config(data.name, "species"))
    sys.stderr.write(f"wrote {path} and the data it trains on, {data}; train it with: nnctl train {path}\n")


def _make_folder(path: Path) -> None:
    """`init experiments/a/cfg.yaml` makes its folders, as `mkdir -p` would."""
    from ..errors import NnctlError

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise NnctlError("cannot make the config's folder: a file has that name", str(path.parent),
                         "choose another path")


@app.command(name="runs")
@errors_handled
def runs_(
    folder: Path = typer.Argument(Path("runs"), metavar="[DIR]", help="Folder holding run folders"),
    json_: bool = typer.Option(False, "--json", help="Print a JSON list"),
    incomplete: bool = typer.Option(False, "--incomplete", help="Only runs whose training was killed (resume them with train --resume PATH, or delete them)"),
):
    """List runs, sweeps, cv and seeds folders, newest first, with their final metrics (kind: run,
    sweep, cv or seeds; a killed run that was resumed points to the run that continued it).

    Example: nnctl runs runs/ --json
    """
    from ..errors import NnctlError
    from ..runs.folder import list_runs
    from ..ui.printing import print_runs

    if not folder.is_dir():
        raise NnctlError("no such folder" if not folder.exists() else "not a folder", str(folder),
                         "give the folder that holds your run folders (train's --runs-dir; default: runs)")
    found = list_runs(folder, incomplete_only=incomplete)
    if not incomplete:  # sweeps and cv folders continue with their own --resume, not train's
        from ..sweep.listing import list_searches

        found = sorted(found + list_searches(folder), key=lambda r: (str(r.get("created") or ""), r["modified"]),
                       reverse=True)
    if json_:
        typer.echo(dumps(found))
    elif not found:
        sys.stderr.write(f"no runs in {folder}\n")
    else:
        print_runs(found)
    for run in found:  # the table marks them `damaged`; this says what is wrong with each
        if run.get("damaged"):
            sys.stderr.write(f"damaged: {run['path']}: {run['damaged']}\n")
