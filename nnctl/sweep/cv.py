"""`nnctl cv`: K-fold cross-validation of one config, its folds run as jobs on the same
runners as a sweep's trials."""
from __future__ import annotations

import csv
import os
import shutil
import statistics
from pathlib import Path

from ..config import load_config
from ..config.typed import Config
from ..errors import NnctlError, NothingTrained
from ..jsonfmt import dumps
from ..runs.folder import RunFolder, check_name, folder_lock
from .driver import make_folder, make_runner, write_files


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
        rows = len(data.y_train) + len(data.y_val)
        if folds > rows:
            raise NnctlError(f"{flag} {folds} is more than the data's {rows} rows", flag, f"use {flag} {rows} or fewer")


class CvStopped(NothingTrained):
    """cv was interrupted: its folder is removed (the folds only count together)."""


def run_cv(config, folds: int, overrides=(), runs_dir="runs", name: str | None = None, workers: int | None = None,
           ray_address: str | None = None, callback=None) -> dict:
    """K-fold cross-validation of one config (stratified for classification, from its seed):
    each fold a run folder `fold_<i>`, `folds.csv` and `summary.json` beside them. A cv that
    fails or is interrupted leaves no folder: it has no --resume, and a part of its folds is no
    estimate (CvStopped on an interrupt, NnctlError naming the failed fold)."""
    cfg = load_config(config, list(overrides))
    check_name(Path(config).stem if name is None else name, "cv")
    check_folds(cfg, folds)
    # "-cv<K>" in its name: a cv folder is never taken for a run at a glance
    folder = make_folder(runs_dir, f"{Path(config).stem if name is None else name}-cv{folds}", "cv")
    try:
        with folder_lock(folder, "this cv is running", "wait for it to end"):
            results = _run_folds(cfg, folds, folder, workers, ray_address, callback)
            return _cv_summary(folder, folds, results, cfg.training.early_stopping is not None)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _run_folds(cfg, folds, folder, workers, ray_address, callback) -> dict:
    metric = {"name": "val_loss", "goal": "minimize"}
    jobs = [{"cfg": cfg, "runs_dir": str(folder), "folder": f"fold_{i}", "metric": metric, "fold": (i, folds)}
            for i in range(folds)]
    runner, capacity = make_runner(min(workers or os.cpu_count() or 1, folds), ray_address, folder)
    results = {}
    try:
        if ray_address:
            from ..data import load_dataset

            for i, job in enumerate(jobs):
                job["dataset_ref"] = runner.put(i, load_dataset(cfg, fold=(i, folds)))
        pending = {runner.submit(job): i for i, job in enumerate(jobs)}
        while pending:
            for handle, result in runner.wait(pending):
                i = pending.pop(handle)
                write_files(folder, result.pop("files", {}))  # paths start with fold_<i>
                results[i] = result
                if callback:
                    callback(i, result)
                if result["state"] != "complete":  # the others cannot make a cv without it
                    raise NnctlError(f"fold {i} failed: {result['error']}; the cv folder was removed", str(folder))
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (see cli.errors_handled)
        runner.close(cancel=True)
        raise CvStopped(f"interrupted after {len(results)} of {folds} folds; the cv folder was removed "
                        "(a cv's folds only count together)")
    except BaseException:
        runner.close(cancel=True)
        raise
    runner.close()
    return results


# with early stopping a fold's validation part also chose its epoch, so its score is an
# optimistic estimate: said wherever the numbers appear (summary.json, the closing lines)
EARLY_STOPPING_NOTE = ("early stopping chose each fold's epoch on that fold's validation part, so these scores "
                       "are optimistic; score a held-out data.test_path for an unbiased estimate")


def _cv_summary(folder: Path, folds: int, results: dict, early_stopping: bool = False) -> dict:
    rows = []
    for i in range(folds):
        metrics = RunFolder(folder / f"fold_{i}").read_metrics()
        name = metrics["metric"]
        rows.append({"fold": i, "rows": metrics["validation"]["rows"], "val_loss": metrics["validation"]["loss"],
                     f"val_{name}": metrics["validation"][name], "epochs": metrics["epochs"],
                     "seconds": results[i]["seconds"], "run": str(folder / f"fold_{i}")})
    name = next(k for k in rows[0] if k.startswith("val_") and k != "val_loss")
    with open(folder / "folds.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    summary = {"folds": folds}
    if early_stopping:
        summary["note"] = EARLY_STOPPING_NOTE
    for key in ("val_loss", name):
        values = [r[key] for r in rows]
        summary[key] = {"mean": statistics.fmean(values), "std": statistics.pstdev(values)}
    (folder / "summary.json").write_text(dumps(summary, indent=2) + "\n")
    return {"folder": folder, "rows": rows, "summary": summary}
