"""The sweep driver: asks Optuna for trials, runs them as jobs on a runner, tells Optuna the
results, and keeps the sweep folder current (trials.csv, summary.json, best.yaml) so an
interrupted sweep keeps every finished trial."""
from __future__ import annotations

import csv
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import yaml

from ..config import dump_config
from ..config.typed import Config
from ..errors import NnctlError
from ..jsonfmt import dumps
from ..runs.folder import check_name, ensure_writable, folder_lock, run_name, unique_folder
from .members import group_size, members_per_job
from .propose import DUPLICATE, Proposer
from .saved import check_journal, read_saved_sweep, read_trials
from .space import decode, distributions, flow, grid_size, journal_writes_whole, optuna_module, pruner, sampler
from .spec import load_sweep, trial_config

STUDY = "nnctl"
JOURNAL = "study.journal"


class SweepCallback:
    """What the sweep's display may implement; every method is optional."""

    def on_start(self, info: dict) -> None: ...

    def on_trial(self, row: dict, best: dict | None) -> None: ...


def make_folder(runs_dir, name: str, what: str = "sweep") -> Path:
    check_name(name, what)
    return unique_folder(ensure_writable(runs_dir), run_name(name))


def _study(folder: Path, sweep: dict, iterations: int, load: bool):
    optuna = optuna_module()
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.logging.disable_default_handler()  # Optuna's messages go to the sweep's own log (see _log_to)
    storage = JournalStorage(JournalFileBackend(str(folder / JOURNAL)))
    direction = "maximize" if sweep["metric"]["goal"] == "maximize" else "minimize"
    if load:
        return optuna.load_study(study_name=STUDY, storage=storage, sampler=sampler(sweep),
                                 pruner=pruner(sweep, iterations))
    return optuna.create_study(study_name=STUDY, storage=storage, sampler=sampler(sweep),
                               pruner=pruner(sweep, iterations), direction=direction)


@contextmanager
def _log_to(folder: Path):
    """Optuna's log messages into this sweep's `sweep.log`, for as long as the sweep runs (a
    handler left behind would send a later sweep's messages here too)."""
    import logging

    logger = logging.getLogger("optuna")
    handler = logging.FileHandler(folder / "sweep.log")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()


def make_runner(workers: int, ray_address: str | None, folder: Path):
    from .runners import LocalRunner, RayRunner

    if ray_address:
        runner = RayRunner(ray_address, folder)
        capacity = max(1, int(runner.ray.cluster_resources().get("CPU", 1)))
        return runner, capacity
    return LocalRunner(workers), workers


class _Table:
    """The sweep's rows, written to trials.csv / summary.json / best.yaml after every trial."""

    def __init__(self, folder: Path, sweep: dict):
        self.folder, self.sweep = folder, sweep
        self.rows: list[dict] = []
        self.goal = sweep["metric"]["goal"]

    def best(self) -> dict | None:
        done = [r for r in self.rows if r["state"] == "complete" and r["value"] is not None]
        if not done:
            return None
        return (max if self.goal == "maximize" else min)(done, key=lambda r: r["value"])

    def add(self, row: dict) -> None:
        self.rows = [r for r in self.rows if r["trial"] != row["trial"]] + [row]
        self.rows.sort(key=lambda r: r["trial"])
        self.write()

    def write(self) -> None:
        params = list(self.sweep["parameters"])
        columns = ["trial", "state"] + params + ["value", "epochs", "seconds", "node", "run", "error"]
        tmp = self.folder / ".trials.csv"
        with open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(columns)
            for r in self.rows:
                writer.writerow([r["trial"], r["state"]] + [flow(r["params"][p]) if p in r["params"] else ""
                                                            for p in params]
                                + ["" if r["value"] is None else f"{r['value']:.8g}", r["epochs"],
                                   f"{r['seconds']:.3f}", r["node"], r["run"], r.get("error") or ""])
        os.replace(tmp, self.folder / "trials.csv")
        best = self.best()
        counts = {s: sum(r["state"] == s for r in self.rows) for s in ("complete", "pruned", "failed")}
        summary = {"metric": self.sweep["metric"]["name"], "goal": self.goal, "counts": counts,
                   "best": None if best is None else {"trial": best["trial"], "value": best["value"],
                                                      "params": best["params"], "run": best["run"]}}
        (self.folder / "summary.json").write_text(dumps(summary, indent=2) + "\n")
        if best is not None:
            (self.folder / "best.yaml").write_text(dump_config(trial_config(self.sweep, best["params"])))


def _save_sweep(folder: Path, sweep: dict) -> None:
    (folder / "sweep.yaml").write_text(yaml.safe_dump(sweep, sort_keys=False, default_flow_style=None,
                                                      allow_unicode=True))


def write_files(folder: Path, files: dict) -> None:
    for relative, data in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def run_sweep(sweep_path=None, overrides=(), runs_dir="runs", name: str | None = None, workers: int | None = None,
              ray_address: str | None = None, resume=None, callback: SweepCallback | None = None,
              separate: bool = False) -> dict:
    """Run (or with `resume`, continue) a sweep; returns {"folder", "rows", "best", "status",
    "members", "note"}. KeyboardInterrupt stops it with every finished trial kept (status
    "interrupted"). Trials that differ only in what a member holds on its own train up to
    `members` at a time as the members of one pass in a job (`members_per_job`; `note`: why
    not, when they could not), unless `separate`: one trial per job."""
    callback = callback or SweepCallback()
    optuna_module()  # before anything is written: a missing Optuna leaves nothing behind
    if resume is not None:
        folder = Path(resume)
        if not (folder / "sweep.yaml").exists() or not (folder / JOURNAL).exists():
            raise NnctlError("not a sweep folder (no sweep.yaml and study.journal)", str(folder),
                             "pass a folder that `nnctl sweep` wrote")
        check_journal(folder / JOURNAL)
        sweep = read_saved_sweep(folder / "sweep.yaml")
    else:
        sweep = load_sweep(sweep_path, overrides)
    base_cfg = trial_config(sweep, {})  # the base config must be valid on its own
    if ray_address and sweep["early_terminate"]:
        raise NnctlError("early_terminate needs the trials to report to the study file, which a Ray cluster's "
                         "nodes cannot reach", "early_terminate", "run it locally (--workers), or drop early_terminate")
    if sweep["folds"]:
        from .cv import check_folds

        check_folds(base_cfg, sweep["folds"], "folds")
    total = grid_size(sweep["parameters"]) if sweep["method"] == "grid" else sweep["trials"]
    if resume is None:
        folder = make_folder(runs_dir, Path(sweep_path).stem if name is None else name)
    with folder_lock(folder, "this sweep is running: another `nnctl sweep` is writing in its folder",
                     "wait for it to end, or stop it (Ctrl-C) and resume it then"), _log_to(folder):
        return _run(sweep, folder, total, base_cfg, resume, workers, ray_address, callback, separate)


def _run(sweep, folder, total, base_cfg, resume, workers, ray_address, callback, separate=False) -> dict:
    """The sweep in its folder: see `run_sweep`."""
    try:
        if resume is None:
            _save_sweep(folder, sweep)
        (folder / "trials").mkdir(exist_ok=True)
        study = _study(folder, sweep, base_cfg.training.iterations, load=resume is not None)
        table = _Table(folder, sweep)
        dists = distributions(sweep["parameters"])
        proposer = Proposer(study, sweep, dists, *_recover(study, folder, sweep, table))
        members, note = (1, None) if separate else members_per_job(sweep, ray_address)
        runner, capacity = make_runner(workers or os.cpu_count() or 1, ray_address, folder)
    except BaseException:
        if resume is None:  # a sweep that could not start leaves no folder
            shutil.rmtree(folder, ignore_errors=True)
        raise
    callback.on_start({"total": total, "done": len(table.rows), "workers": capacity, "folder": str(folder),
                       "parameters": list(sweep["parameters"]), "metric": sweep["metric"], "members": members,
                       "note": note})
    pending, status = {}, "completed"  # a job's handle -> [(trial, params)] of the trials it trains
    datasets: dict = {}
    try:
        while True:
            while len(pending) < capacity and len(table.rows) + _running(pending) < total:
                left = total - len(table.rows) - _running(pending)
                group = _next_trials(sweep, proposer, table, folder, ray_address, runner, datasets, callback, study,
                                     group_size(members, left, capacity - len(pending)), total - _running(pending))
                if not group:
                    break
                jobs = [job for job, _, _ in group]
                job = jobs[0] if len(jobs) == 1 else {"members": jobs}
                pending[runner.submit(job)] = [(trial, params) for _, trial, params in group]
            if not pending:
                break
            for handle, result in runner.wait(pending):
                _finish_job(study, table, callback, pending.pop(handle), result, folder)
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (see cli.errors_handled)
        status = "interrupted"
        runner.close(cancel=True)  # its workers are gone before their trials' folders are removed
        for trial, params in (t for trials in pending.values() for t in trials):
            with journal_writes_whole():
                study.tell(trial, state=optuna_module().trial.TrialState.FAIL)
            shutil.rmtree(folder / "trials" / f"{trial.number:03d}", ignore_errors=True)
    else:
        runner.close()
    for leftover in (folder / "trials").glob(".tmp-*"):  # a stopped trial's half-written run folder (or probe file)
        shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink(missing_ok=True)
    table.write()
    if table.rows and all(r["state"] == "failed" for r in table.rows) and status == "completed":
        status = "failed"
    return {"folder": folder, "rows": table.rows, "best": table.best(), "status": status,
            "used_up": proposer.used_up, "members": members, "note": note}


def _running(pending: dict) -> int:
    return sum(len(trials) for trials in pending.values())


def _next_trials(sweep, proposer, table, folder, ray_address, runner, datasets, callback, study, n: int,
                 total: int) -> list:
    """Up to `n` new trials as [(job, trial, params)], while the table's rows and these stay
    under `total`; a trial whose config is not valid is finished as failed on the way."""
    group = []
    while len(group) < n and len(table.rows) + len(group) < total:
        trial = proposer.next()
        if trial is None:
            break
        params = decode(trial.params, sweep["parameters"])
        job, invalid = _job(sweep, params, trial, folder, ray_address, runner, datasets)
        if invalid is None:
            group.append((job, trial, params))
        else:  # the sampled config is not valid: a failed trial, and on to the next
            _finish(study, table, callback, trial, params, invalid, folder)
    return group


def _job(sweep, params, trial, folder, ray_address, runner, datasets):
    """(the job of one trial, None); or, when its config is not valid, (None, the failed result)."""
    try:
        cfg = trial_config(sweep, params)
    except NnctlError as exc:
        return None, {"state": "failed", "value": None, "epochs": 0, "seconds": 0.0, "node": "", "run": "",
                      "error": str(exc).splitlines()[0]}
    job = {"cfg": cfg, "runs_dir": str(folder / "trials"), "folder": f"{trial.number:03d}",
           "metric": sweep["metric"], "folds": sweep["folds"]}
    if ray_address:
        _ship_data(job, cfg, sweep["folds"], runner, datasets)
    elif sweep["early_terminate"] and not sweep["folds"]:
        job["prune"] = {"journal": str(folder / JOURNAL), "study": STUDY, "trial_id": trial._trial_id,
                        "sweep": {"early_terminate": sweep["early_terminate"]},
                        "iterations": cfg.training.iterations}
    return job, None


def _ship_data(job: dict, cfg: Config, folds, runner, datasets: dict) -> None:
    """Prepare each distinct dataset once on the driver and put it in Ray's object store: the
    cluster's nodes need no access to the driver's files."""
    from ..data import load_dataset

    key = dumps({"data": cfg.data, "seed": cfg.seed, "task": cfg.model.task,
                 "dtype": cfg.training.dtype, "folds": folds})
    if key not in datasets:
        if folds:
            datasets[key] = ("datasets_ref", runner.put(key, {i: load_dataset(cfg, fold=(i, folds))
                                                              for i in range(folds)}))
        else:
            datasets[key] = ("dataset_ref", runner.put(key, load_dataset(cfg)))
    slot, ref = datasets[key]
    job[slot] = ref


def _finish_job(study, table: _Table, callback, trials: list, result: dict, folder: Path) -> None:
    """Record a finished job's trials (one, or the members it trained); an interrupt while they
    are recorded still records every one of them (they are finished), then stops the sweep."""
    interrupted = None
    for (trial, params), one in zip(trials, result.get("members") or [result]):
        try:
            write_files(folder / "trials", one.pop("files", {}))  # paths start with the trial's folder
            _finish(study, table, callback, trial, params, one, folder)
        except KeyboardInterrupt as exc:
            interrupted = exc
    if interrupted is not None:
        raise interrupted


def _finish(study, table: _Table, callback, trial, params, result: dict, folder: Path) -> None:
    states = optuna_module().trial.TrialState
    with journal_writes_whole():
        if result["state"] == "complete":
            study.tell(trial, result["value"])
        else:
            study.tell(trial, state=states.PRUNED if result["state"] == "pruned" else states.FAIL)
    run = folder / "trials" / f"{trial.number:03d}"
    row = {"trial": trial.number, "state": result["state"], "params": params, "value": result["value"],
           "epochs": result["epochs"], "seconds": result["seconds"], "node": result["node"],
           "run": str(run) if run.exists() else "", "error": result.get("error")}
    table.add(row)
    callback.on_trial(row, table.best())


def _recover(study, folder: Path, sweep: dict, table: _Table) -> tuple[list, list]:
    """Rows of trials a previous run of this sweep finished, and the Optuna params of (those
    trials, the trials it left unfinished). An unfinished trial (running when it was killed, or
    failed by an interrupt) is failed, its folder removed, and its parameters are run again."""
    optuna = optuna_module()
    states = optuna.trial.TrialState
    old = read_trials(folder / "trials.csv")
    tried, unfinished = [], []
    for t in study.get_trials(deepcopy=False):
        if t.state == states.WAITING or t.user_attrs.get(DUPLICATE):
            continue  # enqueued but never started, or a repeated proposal set aside
        if t.state == states.RUNNING or (t.state == states.FAIL and t.number not in old):
            if t.state == states.RUNNING:
                study.tell(t.number, state=states.FAIL)
            shutil.rmtree(folder / "trials" / f"{t.number:03d}", ignore_errors=True)
            unfinished.append(t.params)
            continue
        tried.append(t.params)
        r = old.get(t.number, {})
        table.rows.append({"trial": t.number, "state": {states.COMPLETE: "complete", states.PRUNED: "pruned"}.get(
            t.state, "failed"), "params": decode(t.params, sweep["parameters"]), "value": t.value,
            "epochs": int(r.get("epochs") or 0), "seconds": float(r.get("seconds") or 0.0),
            "node": r.get("node", ""), "run": r.get("run", ""), "error": r.get("error") or None})
    return tried, unfinished
