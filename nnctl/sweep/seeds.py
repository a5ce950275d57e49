"""`nnctl train CONFIG --seeds N`: how much of a score is luck. The config is trained N times,
seed i of them with `seed` + i (the config's one seed draws the initial weights, the shuffle
and the validation split, so all three change), as jobs on the same runners as cv's folds.

    result = train_seeds("configs/iris.yaml", 5, runs_dir="runs", workers=2)
    result["summary"]["val_accuracy"]["std"], result["summary"]["representative"]["run"]

The folder `<name>-seeds<N>-<stamp>/` holds each run as `seed_<seed>/`, `seeds.csv` (one row per
seed: `seed`, every final metric, `run`) and `summary.json` ({metric: {mean, std, min, max}},
`representative`). Like a cv it is all or nothing: a failed seed or an interrupt removes it."""
from __future__ import annotations

import csv
import math
import statistics
from dataclasses import replace
from pathlib import Path

from ..config import load_config
from ..config.typed import Config
from ..errors import NnctlError
from ..jsonfmt import dumps
from ..runs.folder import RunFolder, check_name, folder_lock
from ..training.signals import signals_held
from .cv import MAX_RUNS, kept_when_whole, run_all, score_column
from .driver import make_folder
from .members import members_or_why, train_jobs_as_members

PARTS = (("train", "train"), ("validation", "val"), ("test", "test"))  # metrics.json part -> column prefix
NOT_SCORES = {"rows", "support"}  # numbers in a part that count rows, not how good the model is
EARLY_STOPPING_NOTE = ("early stopping chose each seed's epoch on its validation part, so the validation scores "
                       "are optimistic; a held-out data.test_path gives unbiased ones")


def seeds_of(cfg: Config, n: int) -> list[int]:
    """The seeds of an N-seed run: the config's own, then the next N - 1."""
    return [cfg.seed + i for i in range(n)]


def check_seeds(n: int, flag: str = "--seeds") -> None:
    """A spread needs two runs at least: one seed is a plain `nnctl train`; and no more than
    MAX_RUNS, which is all a spread needs (a typo of N would otherwise build a job per seed
    before the first one trains)."""
    if n < 2:
        raise NnctlError(f"{flag} must be 2 or more, got {n}: a spread needs at least two runs", flag,
                         "drop --seeds to train one run, or use --seeds 5")
    if n > MAX_RUNS:
        raise NnctlError(f"{flag} {n} is more than {MAX_RUNS} runs in one folder", flag,
                         f"use {flag} {MAX_RUNS} or fewer: the std's own error falls as 1/√(2N), about 7% at N = 100")


def train_seeds(config, seeds: int, overrides=(), runs_dir="runs", name: str | None = None,
                workers: int | None = None, ray_address: str | None = None, cache: bool = True,
                callback=None, separate: bool = False) -> dict:
    """Train `config` (a YAML path, or a resolved Config) with `seeds` seeds (see the module
    docstring); returns {"folder", "rows", "summary", "note"}. The seeds train as the members
    of one pass in this process when they can (`commands.population`), else, or with
    `separate`, as one job per seed in parallel; `note` says why they could not (None when
    they did, or `separate` asked). `callback(seed, result)` is called as each seed's run is
    finished and in the folder. Bad input is an NnctlError before anything is written; a
    failed seed an NnctlError naming it, an interrupt `Stopped`, and either leaves no folder."""
    if isinstance(config, Config):
        cfg, stem = config, "run"
    else:
        cfg, stem = load_config(config, list(overrides)), Path(config).stem
    name = check_name(stem if name is None else name, "seeds")
    check_seeds(seeds)
    from ..data import load_dataset, load_seeds

    load_dataset(cfg, cache=cache)  # a config that cannot load fails here, not once per seed
    cfgs = [replace(cfg, seed=seed) for seed in seeds_of(cfg, seeds)]
    datasets, note = (None, None) if separate else \
        members_or_why(cfgs, lambda: load_seeds(cfgs, cache=cache), ray_address, "seeds", cache)
    # "-seeds<N>" in its name: a seeds folder is never taken for a run at a glance
    folder = make_folder(runs_dir, f"{name}-seeds{seeds}", "seeds")
    with kept_when_whole(folder, "seeds"), folder_lock(folder, "these seeds are training", "wait for them to end"):
        jobs = seed_jobs(cfg, seeds, folder, cache)
        if datasets is not None:
            results = train_jobs_as_members(cfgs, datasets, jobs, callback, "seeds", "seeds")
        else:
            results = run_all(jobs, folder, workers, ray_address, callback, "seeds")
        with signals_held():
            return {**write_summary(folder, jobs, results, cfg.training.early_stopping is not None), "note": note}


def seed_jobs(cfg: Config, n: int, folder: Path, cache: bool = True) -> list[dict]:
    # scored by train_loss, which every run has: a config without a validation part is still a
    # spread (of its training and test scores)
    metric = {"name": "train_loss", "goal": "minimize"}
    return [{"cfg": replace(cfg, seed=seed), "runs_dir": str(folder), "folder": f"seed_{seed}", "metric": metric,
             "cache": cache, "key": seed, "label": f"seed {seed}"} for seed in seeds_of(cfg, n)]


def final_scores(metrics: dict) -> dict:
    """A run's final metrics as flat columns: `train_loss`, `val_accuracy`, `test_f1`, ...;
    with several targets, metrics.json's `price.r2` is `val_price_r2`, as in history.csv."""
    scores = {}
    for part, prefix in PARTS:
        for key, value in (metrics.get(part) or {}).items():
            if key not in NOT_SCORES and isinstance(value, (int, float)) and not isinstance(value, bool):
                scores[score_column(prefix, key)] = float(value)
    return scores



def main_metric(columns, metric: str) -> str:
    """The column that picks the representative: the task's metric (accuracy, r2) on the
    validation part, else on the test part, else on the training part."""
    for prefix in ("val", "test", "train"):
        if score_column(prefix, metric) in columns:
            return score_column(prefix, metric)
    return next(iter(columns))


def representative(rows: list[dict], column: str) -> dict:
    """The run kept: the one whose `column` is the median, the lower one of the two middle
    values for an even N (statistics.median_low); of several runs with that value, the smallest
    seed."""
    finite = [r for r in rows if math.isfinite(r[column])] or rows
    middle = statistics.median_low([r[column] for r in finite])
    return min((r for r in finite if r[column] == middle), key=lambda r: r["seed"])


def spread(values: list[float]) -> dict:
    """mean, std (population, ddof=0, as numpy.std and cv's summary), min and max."""
    return {"mean": statistics.fmean(values), "std": statistics.pstdev(values), "min": min(values),
            "max": max(values)}


def write_summary(folder: Path, jobs: list[dict], results: list[dict], early_stopping: bool = False) -> dict:
    """seeds.csv and summary.json from the finished runs' metrics.json."""
    rows, metric = [], "accuracy"
    for job in jobs:
        run = Path(job["runs_dir"]) / job["folder"]
        metrics = RunFolder(run).read_metrics()
        metric = metrics.get("metric", metric)
        rows.append({"seed": job["key"], **final_scores(metrics), "run": str(run)})
    columns = [c for c in rows[0] if c not in ("seed", "run") and all(c in r for r in rows)]
    with open(folder / "seeds.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["seed", *columns, "run"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    main = main_metric(columns, metric)
    kept = representative(rows, main)
    summary = {"seeds": [r["seed"] for r in rows], "metric": main}
    if early_stopping:
        summary["note"] = EARLY_STOPPING_NOTE
    summary.update({c: spread([r[c] for r in rows]) for c in columns})
    summary["representative"] = {"seed": kept["seed"], "run": kept["run"], main: kept[main],
                                 "rule": "median of " + main + " (the lower middle one for an even number of "
                                         "seeds; the smallest seed among ties)"}
    (folder / "summary.json").write_text(dumps(summary, indent=2) + "\n")
    return {"folder": folder, "rows": rows, "summary": summary}
