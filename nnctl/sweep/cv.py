"""`nnctl cv`: K-fold cross-validation of one config, its folds run as jobs on the same
runners as a sweep's trials."""
from __future__ import annotations

import csv
import os
import statistics
from pathlib import Path

from ..config import load_config
from ..errors import NnctlError
from ..jsonfmt import dumps
from ..runs.folder import RunFolder
from .driver import make_folder, make_runner, write_files


def run_cv(config, folds: int, overrides=(), runs_dir="runs", name: str | None = None, workers: int | None = None,
           ray_address: str | None = None, callback=None) -> dict:
    """K-fold cross-validation of one config (stratified for classification, from its seed):
    each fold a run folder `fold_<i>`, `folds.csv` and `summary.json` beside them."""
    if folds < 2:
        raise NnctlError(f"--folds must be 2 or more, got {folds}", "--folds")
    cfg = load_config(config, list(overrides))
    # "-cv<K>" in its name: a cv folder is never taken for a run at a glance
    folder = make_folder(runs_dir, f"{name or Path(config).stem}-cv{folds}")
    metric = {"name": "val_loss", "goal": "minimize"}
    jobs = [{"cfg": cfg, "runs_dir": str(folder), "folder": f"fold_{i}", "metric": metric, "fold": (i, folds)}
            for i in range(folds)]
    runner, capacity = make_runner(min(workers or os.cpu_count() or 1, folds), ray_address, folder)
    if ray_address:
        from ..data import load_dataset

        for i, job in enumerate(jobs):
            job["dataset_ref"] = runner.put(i, load_dataset(cfg, fold=(i, folds)))
    results = {}
    try:
        pending = {runner.submit(job): i for i, job in enumerate(jobs)}
        while pending:
            for handle, result in runner.wait(pending):
                i = pending.pop(handle)
                write_files(folder, result.pop("files", {}))  # paths start with fold_<i>
                results[i] = result
                if callback:
                    callback(i, result)
    except KeyboardInterrupt:
        runner.close(cancel=True)
        raise
    runner.close()
    return _cv_summary(folder, folds, results)


def _cv_summary(folder: Path, folds: int, results: dict) -> dict:
    failed = [r for r in results.values() if r["state"] != "complete"]
    if failed:
        raise NnctlError(f"a fold failed: {failed[0]['error']}", str(folder))
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
    for key in ("val_loss", name):
        values = [r[key] for r in rows]
        summary[key] = {"mean": statistics.fmean(values), "std": statistics.pstdev(values)}
    (folder / "summary.json").write_text(dumps(summary, indent=2) + "\n")
    return {"folder": folder, "rows": rows, "summary": summary}
