"""`nnctl cv`: K-fold cross-validation of one config, its folds run as jobs on the same
runners as a sweep's trials."""
from __future__ import annotations

import csv
import os
import shutil
import statistics
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..config import load_config
from ..config.typed import Config
from ..errors import NnctlError, NothingTrained
from ..jsonfmt import dumps
from ..runs.folder import RunFolder, check_name, folder_lock
from ..training.signals import signals_held
from .driver import make_folder, make_runner, write_files
from .members import members_or_why, train_jobs_as_members


def check_folds(cfg: Config, folds: int, flag: str = "--folds") -> None:
    """K folds need K rows, and K rows of each class for stratified folds: refused before any
    training (a fold without validation rows would fail only once its turn came)."""
    from ..data import load_dataset

    if folds < 2:
        raise NnctlError(f"{flag} must be 2 or more, got {folds}", flag)
    data = load_dataset(cfg, fold=(0, folds))  # the cache keeps it for fold 0's job
    if data.task == "classification":
        label, smallest = min(data.class_counts.items(), key=lambda item: item[1])
        if folds > smallest:
            raise NnctlError(f"{flag} {folds} is more than the rows of the smallest class ('{label}': {smallest}); "
                             "stratified folds need each class in every fold", flag,
                             f"use {flag} {smallest} or fewer")
    else:
        rows = len(data.parts["train"]) + len(data.parts["validation"])
        if folds > rows:
            raise NnctlError(f"{flag} {folds} is more than the data's {rows} rows", flag, f"use {flag} {rows} or fewer")


MAX_RUNS = 1000  # the most runs one cv (folds × repeats) or seeds folder holds


class Stopped(NothingTrained):
    """A cv or a seeds run was interrupted: its folder is removed (its runs only count together),
    unless every run had finished (see kept_when_whole)."""


CvStopped = Stopped  # the name it had before `train --seeds` shared it


def run_cv(config, folds: int, overrides=(), runs_dir="runs", name: str | None = None, workers: int | None = None,
           ray_address: str | None = None, callback=None, repeats: int = 1, separate: bool = False) -> dict:
    """K-fold cross-validation of one config (stratified for classification, from its seed):
    each fold a run folder `fold_<i>`, `folds.csv` and `summary.json` beside them. With
    `repeats` R > 1 the K folds are drawn R times, repeat r from seed + r (so its folds, initial
    weights and shuffle all differ), as scikit-learn's RepeatedStratifiedKFold: `repeat_<r>/fold_<i>`,
    and the summary is over all R·K folds. A cv that fails or is interrupted leaves no folder:
    it has no --resume, and a part of its folds is no estimate (Stopped on an interrupt,
    NnctlError naming the failed fold); once every fold has finished, it is kept whole (an
    interrupt then waits for summary.json). `callback(key, result)` as each fold finishes: key is
    the fold's index, or (repeat, fold) with repeats. The folds train as the members of one
    pass in this process when they can (`sweep.members`), else, or with `separate`, as one job
    per fold in parallel; the result's `note` says why they could not (None when they did, or
    `separate` asked)."""
    cfg = load_config(config, list(overrides))
    check_name(Path(config).stem if name is None else name, "cv")
    if repeats < 1:
        raise NnctlError(f"--repeats must be 1 or more, got {repeats}", "--repeats")
    if repeats > 1 and folds * repeats > MAX_RUNS:  # before the data is read or a job built: a typo is not a week of training
        raise NnctlError(f"--folds {folds} --repeats {repeats} make {folds * repeats} runs, more than {MAX_RUNS} in "
                         "one folder", "--repeats", f"use --repeats {max(1, MAX_RUNS // max(folds, 1))} or fewer")
    check_folds(cfg, folds)
    from ..data import load_dataset

    jobs = _fold_jobs(cfg, folds, repeats, Path(runs_dir))  # where each goes is set once the folder is made
    cfgs = [job["cfg"] for job in jobs]
    datasets, note = (None, None) if separate else members_or_why(
        cfgs, lambda: [load_dataset(job["cfg"], fold=job["fold"]) for job in jobs], ray_address, "folds")
    # "-cv<K>" in its name: a cv folder is never taken for a run at a glance
    times = f"x{repeats}" if repeats > 1 else ""
    folder = make_folder(runs_dir, f"{Path(config).stem if name is None else name}-cv{folds}{times}", "cv")
    with kept_when_whole(folder, "cv"), folder_lock(folder, "this cv is running", "wait for it to end"):
        jobs = _fold_jobs(cfg, folds, repeats, folder)
        if datasets is not None and (workers or 1) > 1:  # groups of members, one process each
            results = run_all(jobs, folder, workers, None, callback, "cv", groups=min(workers, len(jobs)))
        elif datasets is not None:
            for job in jobs:
                Path(job["runs_dir"]).mkdir(parents=True, exist_ok=True)
            results = train_jobs_as_members(cfgs, datasets, jobs, callback, "folds", "cv")
        else:
            results = run_all(jobs, folder, workers, ray_address, callback, "cv")
        with signals_held():
            summary = _cv_summary(folder, folds, repeats, jobs, results, cfg.training.early_stopping is not None)
            return {**summary, "note": note}


@contextmanager
def kept_when_whole(folder: Path, what: str):
    """A cv or seeds folder whose block fails or is interrupted is removed (a part of its runs is
    no estimate), unless its summary.json, written last, is there: then every run had finished and
    the whole is kept, and an interrupt says so (Stopped)."""
    try:
        yield
    except BaseException as exc:
        if not (folder / "summary.json").exists():
            shutil.rmtree(folder, ignore_errors=True)
            raise
        if isinstance(exc, KeyboardInterrupt):
            raise Stopped(f"interrupted once every run of the {what} had finished; the {what} folder is complete and "
                          f"kept: {folder}") from None
        raise


def _fold_jobs(cfg, folds: int, repeats: int, folder: Path) -> list[dict]:
    metric = {"name": "val_loss", "goal": "minimize"}
    jobs = []
    for r in range(repeats):
        where = folder if repeats == 1 else folder / f"repeat_{r}"
        repeat_cfg = cfg if r == 0 else replace(cfg, seed=cfg.seed + r)
        for i in range(folds):
            jobs.append({"cfg": repeat_cfg, "runs_dir": str(where), "folder": f"fold_{i}", "metric": metric,
                         "fold": (i, folds), "key": i if repeats == 1 else (r, i),
                         "label": f"fold {i}" if repeats == 1 else f"repeat {r} fold {i}"})
    return jobs


def run_all(jobs: list[dict], folder: Path, workers, ray_address, callback, what: str,
            groups: int | None = None) -> list[dict]:
    """Run every job (see jobs.run_job; each also has a `key` for the callback and a `label`
    for messages) on local workers or Ray, all or nothing: the results in the jobs' order, or
    NnctlError naming the first job that failed, or Stopped on an interrupt (Ctrl-C, SIGTERM).
    With `groups` G, the jobs are split into G groups, each trained as the members of one pass
    by one worker (jobs.run_members)."""
    for job in jobs:
        Path(job["runs_dir"]).mkdir(parents=True, exist_ok=True)
    units = [[i] for i in range(len(jobs))] if not groups else \
        [list(part) for part in np.array_split(np.arange(len(jobs)), groups) if len(part)]
    runner, capacity = make_runner(min(workers or os.cpu_count() or 1, len(units)), ray_address, folder)
    results: dict = {}
    noun = "folds" if what == "cv" else "seeds"
    try:
        if ray_address:
            from ..data import load_dataset

            for i, job in enumerate(jobs):
                job["dataset_ref"] = runner.put(i, load_dataset(job["cfg"], fold=job.get("fold")))
        submitted = [{k: v for k, v in job.items() if k not in ("key", "label")} for job in jobs]
        pending = {runner.submit(submitted[unit[0]] if len(unit) == 1 else
                                 {"members": [submitted[i] for i in unit]}): unit for unit in units}
        while pending:
            for handle, result in runner.wait(pending):
                unit = pending.pop(handle)
                for i, one in zip(unit, result.get("members") or [result]):  # all in, before any callback
                    write_files(Path(jobs[i]["runs_dir"]), one.pop("files", {}))  # paths start with its folder
                    results[i] = one
                for i in unit:
                    one = results[i]
                    if callback:
                        callback(jobs[i]["key"], one)
                    if one["state"] != "complete":  # the others cannot make a whole without it
                        raise NnctlError(f"{jobs[i]['label']} failed: {one['error']}; the {what} folder was removed",
                                         str(folder))
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (see cli.errors_handled)
        if len(results) == len(jobs) and all(r["state"] == "complete" for r in results.values()):
            runner.close()  # it came after the last one had finished (in a callback): nothing was left to stop
            return [results[i] for i in range(len(jobs))]
        runner.close(cancel=True)
        raise Stopped(f"interrupted after {len(results)} of {len(jobs)} {noun}; the {what} folder was removed "
                      f"(its {noun} only count together)")
    except BaseException:
        runner.close(cancel=True)
        raise
    runner.close()
    return [results[i] for i in range(len(jobs))]


# with early stopping a fold's validation part also chose its epoch, so its score is an
# optimistic estimate: said wherever the numbers appear (summary.json, the closing lines)
EARLY_STOPPING_NOTE = ("early stopping chose each fold's epoch on that fold's validation part, so these scores "
                       "are optimistic; score a held-out data.test_path for an unbiased estimate")


def score_column(prefix: str, key: str) -> str:
    """`val` and metrics.json's `accuracy` -> `val_accuracy`; a target's `price.r2` ->
    `val_price_r2` (history's and CONTRACT's `val_<target>_<metric>`: split at the last dot, as
    a metric's name has none and a target's may)."""
    target, dot, metric = key.rpartition(".")
    return f"{prefix}_{target}_{metric}" if dot else f"{prefix}_{key}"


def _cv_summary(folder: Path, folds: int, repeats: int, jobs: list[dict], results: list[dict],
                early_stopping: bool = False) -> dict:
    rows = []
    for job, result in zip(jobs, results):
        run = Path(job["runs_dir"]) / job["folder"]
        metrics = RunFolder(run).read_metrics()
        # several targets: each target's own metric (`price.r2`), else the one metric
        names = [f"{t}.{m}" for t in metrics["targets"] for m in ("r2", "accuracy")
                 if f"{t}.{m}" in metrics["validation"]] if metrics.get("targets") else [metrics["metric"]]
        row = {"repeat": job["key"][0]} if repeats > 1 else {}
        row.update({"fold": job["fold"][0], "rows": metrics["validation"]["rows"],
                    "val_loss": metrics["validation"]["loss"],
                    **{score_column("val", name): metrics["validation"][name] for name in names},
                    "epochs": metrics["epochs"], "seconds": result["seconds"], "run": str(run)})
        rows.append(row)
    scored = [k for k in rows[0] if k.startswith("val_") and k != "val_loss"]
    with open(folder / "folds.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    summary = {"folds": folds}
    if repeats > 1:
        summary["repeats"] = repeats
    if early_stopping:
        summary["note"] = EARLY_STOPPING_NOTE
    for key in ("val_loss", *scored):
        values = [r[key] for r in rows]
        summary[key] = {"mean": statistics.fmean(values), "std": statistics.pstdev(values)}
    (folder / "summary.json").write_text(dumps(summary, indent=2) + "\n")
    return {"folder": folder, "rows": rows, "summary": summary}
