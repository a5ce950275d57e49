"""`nnctl train` (and --resume) and `nnctl validate`."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from ..jsonfmt import dumps
from . import app, errors_handled, ExitCode, NoCacheOption, SetOption, TrackOption, tracking_ended


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
    seeds: Optional[int] = typer.Option(None, "--seeds", metavar="N", help="Train N times, with seeds seed, seed+1, ... (weights, shuffle and split), as the members of one pass: a folder with seeds.csv, summary.json (mean, std, min, max) and each run"),
    separate: bool = typer.Option(False, "--separate", help="With --seeds: one process per seed (--workers at once), not members of one pass"),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, metavar="W", help="With --seeds --separate: runs at once on this machine (default: the number of cores)"),
    track: Optional[str] = TrackOption,
):
    """Train a network and save a run folder; its path is the last line of stdout.

    Example: RUN=$(nnctl train configs/iris.yaml --set training.learning_rate=0.05 --quiet)

    Continue a run: nnctl train --resume "$RUN" --set training.iterations=400

    How much is luck: nnctl train configs/iris.yaml --seeds 5 --workers 2
    """
    if seeds is not None or workers is not None or separate:
        from .sweep_cv import train_with_seeds

        return train_with_seeds(config, seeds, workers, resume, set_ or [], runs_dir, name, quiet, json_, report,
                                no_cache, track, separate)
    from ..commands.train import plan_training, run_plan, RunOptions
    from ..errors import NnctlError
    from ..tracking.live import live_run
    from ..training.callbacks import Many
    from ..training.signals import Interrupts
    from ..ui.progress import JsonLines, LiveTable, PlainLines, TaskNote, stderr_is_live, summary_line

    if (config is None) == (resume is None):
        raise NnctlError("give a CONFIG to train, or --resume RUN to continue a run (not both)", "nnctl train",
                         "e.g. nnctl train configs/iris.yaml, or nnctl train --resume runs/iris-20260101-120000")
    plan, live = live_run(plan_training(config, resume, set_ or []), track, runs_dir)
    shown = TaskNote(sys.stderr)
    if not quiet:
        rows = plan.cfg.training.display_rows
        title = f"resuming {resume.name}" if resume is not None else f"training {config.name}"
        if stderr_is_live():
            from rich.console import Console

            shown = LiveTable(Console(stderr=True), rows, title=title)
        else:
            shown = PlainLines(sys.stderr, rows)
    reporter = Many(shown, JsonLines(sys.stdout) if json_ else None)
    with Interrupts() as interrupts:
        try:
            result = run_plan(plan, RunOptions(runs_dir, name, callback=Many(reporter, live), should_stop=interrupts,
                                               cache=not no_cache))
        except BaseException:
            if live is not None:
                live.abandon()
            raise
        finally:
            reporter.close()
    run = result.run
    if report:
        from ..report.write import report_runs

        report_runs([run])
    if not quiet:
        sys.stderr.write(summary_line(result, run) + "\n")
    if result.status != "interrupted":
        _calibration_warning(run)
    if live is not None:  # after the report: report.html goes along
        tracking_ended(live.finish, run, result.status)
    if json_:
        typer.echo(dumps({"run": str(run), **result.metrics}))
    else:
        typer.echo(str(run))
    if result.status == "interrupted":
        raise typer.Exit(ExitCode.INTERRUPTED)


# --- validate --------------------------------------------------------------------------------
@app.command()
@errors_handled
def validate(
    config: Path = typer.Argument(..., metavar="CONFIG", help="YAML config file"),
    set_: Optional[List[str]] = SetOption,
    no_cache: bool = NoCacheOption,
):
    """Check a config and its dataset without training; print the resolved config (stdout) and
    the architecture, rows, classes and split (stderr).

    Example: nnctl validate configs/iris.yaml --set model.layers=[32,16]
    """
    from ..config import dump_config, load_config
    from ..data import load_dataset
    from ..training.build import build_network, check_batches
    from ..training.scoring import class_weights, metrics_in_use, watched_metrics
    from ..ui.printing import validation_summary

    cfg = load_config(config, set_ or [])
    dataset = load_dataset(cfg, cache=not no_cache)
    network = build_network(cfg, dataset)
    check_batches(cfg, network, dataset)
    class_weights(cfg.training.class_weight, dataset)
    metrics_in_use(watched_metrics(cfg.training), dataset)
    typer.echo(dump_config(cfg), nl=False)
    sys.stderr.write(validation_summary(network, dataset) + "\nconfig is valid\n")


def _calibration_warning(run) -> None:
    """training.calibration's note (it kept T = 1) as a warning: shown even with --quiet."""
    from ..runs.folder import RunFolder
    from ..ui.progress import note_lines

    calibration = RunFolder(run).read_metrics().get("calibration")
    if isinstance(calibration, dict) and isinstance(calibration.get("note"), str):
        sys.stderr.write("\n".join(note_lines([("warning", f"training.calibration: {calibration['note']}")])) + "\n")
