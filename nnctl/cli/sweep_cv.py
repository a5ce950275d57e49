"""`nnctl sweep` and `nnctl cv`: finding a better config."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from ..jsonfmt import dumps
from . import app, errors_handled, ExitCode, SetOption, TrackOption, tracking_ended


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
    separate: bool = typer.Option(False, "--separate", help="One trial per job, never several as the members of one pass"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the sweep folder's path"),
    json_: bool = typer.Option(False, "--json", help="One JSON object per finished trial on stdout, then a summary"),
    track: Optional[str] = TrackOption,
):
    """Search for a better config with Optuna (grid, random or TPE), trials in parallel on this
    machine or on a Ray cluster; the sweep folder's path is the last line of stdout.

    Example: nnctl sweep configs/iris-sweep.yaml --workers 2
    """
    import json

    from ..errors import NnctlError
    from ..sweep.driver import run_sweep
    from ..tracking.sweeps import sweep_tracker
    from ..training.callbacks import Many
    from ..ui.progress import stderr_is_live
    from ..ui.sweeping import SweepJson, SweepLines, SweepTable

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
    tracker = sweep_tracker(sweep_file, set_ or [], resume, track, runs_dir)
    display = Many(shown, SweepJson(sys.stdout) if json_ else None)

    def sweep_run():
        try:
            return run_sweep(sweep_file, set_ or [], runs_dir, name, workers, ray, resume,
                             callback=Many(display, tracker), separate=separate)
        finally:
            display.close()

    result = tracked(tracker, sweep_run)
    summary = json.loads((result["folder"] / "summary.json").read_text())
    if not quiet:
        if result.get("note"):
            sys.stderr.write(f"note: {result['note']}\n")
        best, counts = summary["best"], summary["counts"]
        shown = "—" if best is None else f"{best['value']:.4g} (trial {best['trial']})"
        used_up = " · every combination of the parameters was tried" if result.get("used_up") else ""
        sys.stderr.write(f"{result['status']} · {counts['complete']} complete, {counts['pruned']} pruned, "
                         f"{counts['failed']} failed · best {summary['metric']} {shown}{used_up}\n")
    if json_:
        typer.echo(dumps({"folder": str(result["folder"]), "status": result["status"], **summary}))
    typer.echo(str(result["folder"]))
    if result["status"] == "interrupted":
        raise typer.Exit(ExitCode.INTERRUPTED)
    if result["status"] == "failed":
        first = next(r["error"] for r in result["rows"] if r.get("error"))
        sys.stderr.write(f"error: every trial failed; the first: {first}\n")
        raise typer.Exit(ExitCode.CHECK_FAILED)


@app.command()
@errors_handled
def cv(
    config: Path = typer.Argument(..., metavar="CONFIG", help="YAML config file"),
    folds: int = typer.Option(..., "--folds", metavar="K", help="How many folds (2 or more)"),
    set_: Optional[List[str]] = SetOption,
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", metavar="DIR", help="Folder for the cv folder"),
    name: Optional[str] = typer.Option(None, "--name", metavar="NAME", help="Name (default: the config file's stem)"),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, metavar="N", help="Folds as N groups of members, one process each (with --separate: N folds at once; default: the number of cores)"),
    ray: Optional[str] = typer.Option(None, "--ray", metavar="ADDRESS", help="Run the folds on a Ray cluster (one task per fold)"),
    separate: bool = typer.Option(False, "--separate", help="One process per fold (--workers at once), not members of one pass"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the folder's path"),
    json_: bool = typer.Option(False, "--json", help="Print the summary as JSON"),
    repeats: int = typer.Option(1, "--repeats", metavar="R", help="Draw the K folds R times, repeat r from seed + r (as scikit-learn's RepeatedStratifiedKFold); the summary is over all R·K folds"),
    track: Optional[str] = TrackOption,
):
    """K-fold cross-validation of one config (stratified for classification, from its seed):
    per-fold and mean ± std metrics; the folder's path is the last line of stdout.

    Example: nnctl cv configs/iris.yaml --folds 5

    Repeated: nnctl cv configs/iris.yaml --folds 5 --repeats 3
    """
    from ..sweep.cv import run_cv
    from ..tracking.sweeps import cv_tracker

    def said(key, result):
        if not quiet:
            where = f"repeat {key[0]} fold {key[1]}" if repeats > 1 else f"fold {key}"
            sys.stderr.write(f"{where}: {result['state']} in {result['seconds']:.1f}s\n")

    tracker = cv_tracker(config, set_ or [], track, also=said, runs_dir=runs_dir)
    result = tracked(tracker, lambda: run_cv(config, folds, set_ or [], runs_dir, name, workers, ray,
                                             callback=tracker or said, repeats=repeats, separate=separate))
    if result.get("note") and not quiet:
        sys.stderr.write(f"note: {result['note']}\n")
    over = f"{folds * repeats} folds ({repeats} repeats of {folds})" if repeats > 1 else f"{folds} folds"
    if not quiet:
        for key, stats in result["summary"].items():
            if isinstance(stats, dict):
                sys.stderr.write(f"{key}: {stats['mean']:.4f} ± {stats['std']:.4f} over {over}\n")
        if "note" in result["summary"]:
            sys.stderr.write(f"note: {result['summary']['note']}\n")
    if json_:
        typer.echo(dumps(result["summary"]))
    typer.echo(str(result["folder"]))


# --- train --seeds -------------------------------------------------------------------------------
def train_with_seeds(config, seeds, workers, resume, sets, runs_dir, name, quiet, json_, report, no_cache, track=None,
                     separate=False):
    """`nnctl train CONFIG --seeds N`: the spread's table on stderr, the folder's path last on
    stdout (after the summary with --json)."""
    from ..errors import NnctlError
    from ..sweep.seeds import train_seeds
    from ..ui.spread import seed_line, spread_table

    if seeds is None:
        flag = "--separate" if separate and workers is None else "--workers"
        raise NnctlError(f"{flag} is for training several seeds", flag,
                         f"add --seeds N, e.g. --seeds 5 {flag}")
    if resume is not None:
        raise NnctlError("--seeds trains a config anew; it cannot continue a run", "--seeds with --resume",
                         "resume the run alone, or train its config.yaml with --seeds")
    if config is None:
        raise NnctlError("--seeds needs a CONFIG to train", "nnctl train", "e.g. nnctl train configs/iris.yaml --seeds 5")

    def said(seed, result):
        if not quiet:
            sys.stderr.write(seed_line(seed, result) + "\n")
            sys.stderr.flush()

    from ..tracking.sweeps import cv_tracker

    tracker = cv_tracker(config, sets, track, also=said, kind="seeds", runs_dir=runs_dir)
    result = tracked(tracker, lambda: train_seeds(config, seeds, sets, runs_dir, name, workers, cache=not no_cache,
                                                  callback=tracker or said, separate=separate))
    if result.get("note") and not quiet:
        sys.stderr.write(f"note: {result['note']}\n")
    if report:
        from ..report.write import report_runs

        report_runs([result["folder"]])
    if not quiet:
        sys.stderr.write(spread_table(result["summary"]) + "\n")
    if json_:
        typer.echo(dumps({"folder": str(result["folder"]), **result["summary"]}))
    typer.echo(str(result["folder"]))


def tracked(tracker, run):
    """`run()`, with `tracker` (None when tracking is off) told how it ended: its result's
    summary logged on the parent run, or the parent closed as interrupted (KILLED) or failed;
    either way one `warning:` line when the server could not take it. An interrupt while the
    tracker logs ends its runs as KILLED and says what to log later."""
    from ..errors import NothingTrained

    try:
        result = run()
    except BaseException as exc:
        if tracker is not None:
            tracking_ended(tracker.finish, None,
                           "interrupted" if isinstance(exc, (KeyboardInterrupt, NothingTrained)) else "failed")
        raise
    if tracker is not None:
        tracking_ended(tracker.finish, result)
    return result
