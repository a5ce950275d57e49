"""Sweeps and cv in MLflow: a parent run with one nested run per trial (tags `nnctl.trial`,
`nnctl.state`, pruned and failed trials included) or per fold (`nnctl.fold`); the parent holds
the summary. Live, as watchers the CLI adds to the sweep's display and cv's callback; after the
fact, from the folders (`nnctl track`)."""
from __future__ import annotations

import json
from pathlib import Path

from ..runs.folder import RunFolder
from ..sweep.listing import STAMP  # a folder name's `-YYYYMMDD-HHMMSS[-N]`
from .client import Target
from .groups import ParentRun

SWEEP_FILES = ("sweep.yaml", "trials.csv", "summary.json", "best.yaml")
CV_FILES = ("folds.csv", "summary.json")
SEEDS_FILES = ("seeds.csv", "summary.json")


def _value(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


class SweepTracker:
    """Watches `run_sweep` (its callback's `on_start`, `on_trial`) and logs each finished
    trial from its run folder; `finish(result)` logs the summary and returns the warning, if any."""

    def __init__(self, target: Target):
        self.parent = ParentRun(target, "sweep")
        self.metric = None

    def on_start(self, info: dict) -> None:
        folder = Path(info["folder"])
        self.metric = info["metric"]
        self.parent.open(folder.name, folder, {"sweep.metric": info["metric"]["name"],
                                               "sweep.goal": info["metric"]["goal"]})

    def on_trial(self, row: dict, best) -> None:
        add_trial(self.parent, row["trial"], row["state"], row.get("run") or None, row["params"], row["value"],
                  row.get("error"))

    def finish(self, result: dict | None, status: str | None = None) -> str | None:
        """`result`: run_sweep's; None when the sweep ended with an error (status "failed")."""
        if self.parent.folder is None:
            return None
        folder = self.parent.folder
        return self.parent.close(status or result["status"], sweep_summary(folder),
                                 [folder / name for name in SWEEP_FILES])


def add_trial(parent: ParentRun, number: int, state: str, run, params: dict, value, error=None,
              later: bool = False) -> None:
    """A trial as a nested run (or, for a trial of folds, one per fold and one for the trial);
    `later`: on the parent's background thread."""
    add = parent.add_child_later if later else parent.add_child
    tags = {"nnctl.trial": str(number), "nnctl.state": state}
    if error:
        tags["nnctl.error"] = str(error)[:5000]
    folder = Path(run) if run and Path(run).is_dir() else None
    swept = {str(k): json.dumps(v) if isinstance(v, (list, dict)) else str(v) for k, v in params.items()}
    if folder is not None and not RunFolder(folder).has(RunFolder.METRICS):  # a trial of folds
        for fold in sorted(folder.glob("fold_*")):
            tags_fold = {**tags, "nnctl.fold": fold.name[len("fold_"):]}
            add(f"trial {number:03d} {fold.name}", fold, tags_fold, state=state)
        folder = None
    # a trial with a run folder has its whole config as params; one that failed before training, its swept values
    add(f"trial {number:03d}", folder, tags, None if folder else swept, state, {"value": value})


def sweep_summary(folder: Path) -> dict:
    """summary.json as the parent's metrics: best_<metric>, and the trial counts."""
    try:
        summary = json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError):
        return {}
    out = {f"trials_{state}": n for state, n in (summary.get("counts") or {}).items()}
    if summary.get("best"):
        out[f"best_{summary['metric']}"] = summary["best"]["value"]
        out["best_trial"] = summary["best"]["trial"]
    return out


class CvTracker:
    """cv's (or `train --seeds`') callback (`run_cv(callback=...)`, called with each finished
    fold or seed) logging each as a nested run; `finish(result)` logs the summary (mean and std
    per metric) on the parent, and any fold whose callback an interrupt cut short (the parent
    logs each child once)."""

    def __init__(self, target: Target, also=None, kind: str = "cv"):
        self.parent = ParentRun(target, kind)
        self.also = also  # the display's own callback, called first
        self.kind = kind
        self.files = SEEDS_FILES if kind == "seeds" else CV_FILES

    def __call__(self, key, result: dict) -> None:
        if self.also is not None:
            self.also(key, result)
        run = Path(result["run"])
        repeated = run.parent.name.startswith("repeat_")  # cv --repeats: folder/repeat_<r>/fold_<i>
        folder = run.parent.parent if repeated else run.parent
        if self.parent.folder is None:
            self.parent.open(folder.name, folder)
        name, tags = child_of(folder, run, self.kind)
        self.parent.add_child_later(name, run, {**tags, "nnctl.state": result["state"]}, state=result["state"])

    def finish(self, result: dict | None, status: str = "completed") -> str | None:
        """`result`: run_cv's (train_seeds'); None when it ended with an error or an interrupt
        (`status`), which leaves no folder, unless every run had finished: a whole one is
        logged in full."""
        whole = self.parent.folder is not None and (self.parent.folder / "summary.json").exists()
        if result is None and whole:
            result, status = {"folder": self.parent.folder, "summary": _read_summary(self.parent.folder)}, "completed"
        if result is not None and self.parent.folder is None:  # every callback cut short
            self.parent.open(Path(result["folder"]).name, result["folder"])
        if self.parent.folder is None:
            return None
        if result is not None:
            for run in group_runs(self.parent.folder, self.kind):
                name, tags = child_of(self.parent.folder, run, self.kind)
                self.parent.add_child_later(name, run, tags)
        return self.parent.close(status, cv_summary(result["summary"]) if result else {},
                                 [self.parent.folder / name for name in self.files])


def group_runs(folder: Path, kind: str) -> list[Path]:
    """A cv's folds (`fold_<i>`, or `repeat_<r>/fold_<i>`) or a seeds folder's runs (`seed_<n>`)."""
    prefix = "seed_" if kind == "seeds" else "fold_"
    return sorted(folder.glob(f"{prefix}*")) or sorted(folder.glob(f"repeat_*/{prefix}*"))


def child_of(folder: Path, run: Path, kind: str) -> tuple[str, dict]:
    """(the nested run's name, its tags) for run folder `run` of group `folder`: `fold_2` or
    `repeat_1/fold_2` with nnctl.fold 2; `seed_42` with nnctl.seed 42."""
    tag, prefix = ("nnctl.seed", "seed_") if kind == "seeds" else ("nnctl.fold", "fold_")
    name = run.name if run.parent == folder else f"{run.parent.name}/{run.name}"
    return name, {tag: run.name[len(prefix):], "nnctl.state": "complete"}


def _read_summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


def cv_summary(summary: dict) -> dict:
    out = {}
    for key, stats in summary.items():
        if isinstance(stats, dict) and "mean" in stats:  # not a seeds summary's `representative`
            out[f"{key}_mean"], out[f"{key}_std"] = stats.get("mean"), stats.get("std")
    return out


def sweep_tracker(sweep_file, overrides=(), resume=None, uri: str | None = None, runs_dir=None) -> SweepTracker | None:
    """The tracker of a sweep whose base config (or --track `uri`) turns tracking on; None when
    off. The experiment defaults to the sweep file's stem; a local store must lie outside
    `runs_dir` (a resumed sweep's: the folder it is in)."""
    from ..sweep.saved import read_saved_sweep
    from ..sweep.spec import load_sweep, trial_config
    from .client import target_for

    if resume is not None:
        sweep, stem = read_saved_sweep(Path(resume) / "sweep.yaml"), STAMP.sub("", Path(resume).name)
    else:
        sweep, stem = load_sweep(sweep_file, list(overrides)), Path(sweep_file).stem
    runs = [Path(resume).parent] if resume is not None else [runs_dir] if runs_dir is not None else []
    target = target_for(trial_config(sweep, {}).tracking, stem, uri, runs_dirs=runs)
    return None if target is None else SweepTracker(target)


def cv_tracker(config, overrides=(), uri: str | None = None, also=None, kind: str = "cv",
               runs_dir=None) -> CvTracker | None:
    """The tracker of a cv (or, with kind "seeds", of `train --seeds`) whose config (or --track
    `uri`) turns tracking on; None when off. A local store must lie outside `runs_dir`."""
    from ..config import load_config
    from .client import target_for

    target = target_for(load_config(config, list(overrides)).tracking, Path(config).stem, uri,
                        runs_dirs=[runs_dir] if runs_dir is not None else [])
    return None if target is None else CvTracker(target, also, kind)


# --- after the fact: `nnctl track` on a sweep or cv folder ----------------------------------------
def upload_sweep(folder: Path, target: Target) -> str | None:
    from ..sweep.saved import read_trials

    parent = ParentRun(target, "sweep")
    summary = json.loads((folder / "summary.json").read_text()) if (folder / "summary.json").exists() else {}
    parent.open(folder.name, folder, {"sweep.metric": summary.get("metric", ""), "sweep.goal": summary.get("goal", "")})
    skip = {"trial", "state", "value", "epochs", "seconds", "node", "run", "error"}
    for number, row in sorted(read_trials(folder / "trials.csv").items()):
        params = {k: v for k, v in row.items() if k not in skip and v != ""}
        run = folder / "trials" / f"{number:03d}"
        add_trial(parent, number, row["state"], run if run.is_dir() else None, params, _value(row.get("value")),
                  row.get("error"))
    return parent.close("completed", sweep_summary(folder), [folder / name for name in SWEEP_FILES])


def upload_cv(folder: Path, target: Target, kind: str = "cv") -> str | None:
    """A finished cv folder (or, with kind "seeds", a `train --seeds` folder) as a parent run
    with its folds (seeds) nested."""
    parent = ParentRun(target, kind)
    parent.open(folder.name, folder)
    for run in group_runs(folder, kind):
        name, tags = child_of(folder, run, kind)
        parent.add_child(name, run, tags)
    summary = _read_summary(folder)
    files = SEEDS_FILES if kind == "seeds" else CV_FILES
    return parent.close("completed", cv_summary(summary), [folder / name for name in files])
