"""Run folders: `runs/<name>-<YYYYMMDD-HHMMSS>/` written atomically, and listed.

A run is written into a hidden temporary folder beside its final place and renamed into place
when complete, so an interrupted or failed run never looks like a finished one.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..atomic import follow_umask, write_text_atomic
from ..errors import NnctlError
from ..jsonfmt import dumps

TMP_PREFIX = ".tmp-"
LOCK = ".lock"  # held (flock) by the process writing a run folder, released by the kernel if it dies


def ensure_writable(runs_dir) -> Path:
    """Create the runs folder if needed and prove it is writable, before any training."""
    runs_dir = Path(runs_dir)
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=runs_dir, prefix=TMP_PREFIX):
            pass
    except OSError as exc:
        raise NnctlError(f"cannot write to the runs folder: {exc.strerror or exc}", str(runs_dir),
                         "pass a writable folder with --runs-dir")
    return runs_dir


def check_name(name: str) -> str:
    """A run name is one folder name: no path separators, not '.' or '..'."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name or name.startswith(TMP_PREFIX):
        raise NnctlError(f"a run name must be one folder name, not a path (got '{name}')", "--name",
                         "use letters, digits, '-' and '_', e.g. --name iris-lr0.1; --runs-dir picks the folder")
    return name


def run_name(name: str, now: float | None = None) -> str:
    return f"{name}-{time.strftime('%Y%m%d-%H%M%S', time.localtime(now))}"


@contextmanager
def atomic_run_folder(runs_dir, name: str, exact: str | None = None, started: float | None = None):
    """Yields a temporary folder to fill; on success it is renamed to a unique
    `<runs_dir>/<name>-<timestamp>[-N]`, or to `<runs_dir>/<exact>` (a sweep's `trials/007`),
    stored in the yielded holder's "final". The timestamp is `started` (the run's start, as
    metrics.json's `created` says), or now."""
    import fcntl

    runs_dir = Path(runs_dir)
    tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{name}-", dir=runs_dir))
    holder = {"tmp": tmp, "final": None}
    lock = open(tmp / LOCK, "w")
    try:
        # while this process lives the folder is a run in progress; once it is killed, the lock is
        # gone and `nnctl runs` lists the folder as incomplete
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield holder
        (tmp / LOCK).unlink()
        follow_umask(tmp, folder=True)  # mkdtemp makes it private; a run is shared like any output
        base = exact or run_name(name, started)
        for n in range(1, 1000 if exact is None else 2):
            final = runs_dir / (base if n == 1 else f"{base}-{n}")
            try:
                os.rename(tmp, final)  # fails if `final` exists and is not empty
                holder["final"] = final
                break
            except OSError:
                if not final.exists():
                    raise
        else:
            raise NnctlError("could not find a free run folder name" if exact is None else "the run folder exists",
                             str(runs_dir / base))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        lock.close()


class RunFolder:
    """One run folder's files: their names, and how each is written and read back. Everything
    that touches a run folder's files goes through here, so a name or a format changes in one
    place."""

    CONFIG = "config.yaml"
    MODEL = "model.npz"
    CHECKPOINT = "checkpoint.npz"
    METRICS = "metrics.json"
    HISTORY = "history.csv"
    DIAGNOSTICS = "diagnostics.csv"
    VALIDATION = "validation.csv"  # the validation part's predictions
    TEST = "test.csv"  # the test part's predictions (data.test_path)
    PLOT = "loss.png"
    REPORT = "report.html"

    def __init__(self, path):
        self.path = Path(path)

    def file(self, name: str) -> Path:
        return self.path / name

    def has(self, name: str) -> bool:
        return (self.path / name).exists()

    # --- writing (into the temporary folder, before it is renamed into place) --------------
    def write_config(self, text: str) -> None:
        self.file(self.CONFIG).write_text(text)

    def write_metrics(self, metrics: dict) -> None:
        self.file(self.METRICS).write_text(_metrics_text(metrics))

    def update_metrics(self, **changes) -> None:
        """Change keys of a finished run's metrics.json, atomically (a sweep marks a pruned
        trial's run `pruned` once its pruner has stopped it)."""
        metrics = {**self.read_metrics(), **changes}
        write_text_atomic(self.file(self.METRICS), _metrics_text(metrics))

    def write_history(self, history: list[dict]) -> None:
        columns = list(history[0]) if history else ["epoch", "train_loss", "learning_rate", "seconds"]
        with open(self.file(self.HISTORY), "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            for row in history:
                writer.writerow({k: _number(v) for k, v in row.items()})

    def write_diagnostics(self, rows: list[dict]) -> None:
        """diagnostics.csv in long format, one row per logged epoch and layer; dead_fraction is
        empty for layers outside the ReLU family."""
        with open(self.file(self.DIAGNOSTICS), "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(DIAGNOSTIC_COLUMNS)
            for row in rows:
                writer.writerow(["" if row.get(k) is None else _number(row[k]) for k in DIAGNOSTIC_COLUMNS])

    def write_predictions(self, name: str, model, X, y) -> None:
        """A part's truth and the saved model's predictions (VALIDATION or TEST), so a report
        needs nothing but the run folder: `target`, `prediction`, and `p_<class>` columns;
        for regression both in the target's own units. `y` as the dataset holds it."""
        if model.task == "regression":
            truth = np.asarray(y, dtype=np.float64).reshape(len(y), -1)[:, 0]
            scaler = model.meta.get("target_scaler")
            if scaler:
                truth = truth * scaler["scale"][0] + scaler["offset"][0]
            self.write_outputs(name, model, truth, model.values_from_inputs(X))
        else:
            self.write_outputs(name, model, y, model.proba_from_inputs(X))

    def write_outputs(self, name: str, model, truth, outputs) -> None:
        """`write_predictions` from the truth (class indices, or the target in its units) and the
        model's outputs (probabilities (rows, classes), or predicted values)."""
        with open(self.file(name), "w", newline="") as fh:
            writer = csv.writer(fh)
            if model.task == "regression":
                writer.writerow(["target", "prediction"])
                writer.writerows(zip(map(_number, np.asarray(truth, dtype=np.float64).tolist()),
                                     map(_number, np.asarray(outputs, dtype=np.float64).reshape(len(truth), -1)[:, 0]
                                         .tolist())))
                return
            classes = np.asarray(model.classes, dtype=object)
            writer.writerow(["target", "prediction"] + [f"p_{c}" for c in model.classes])
            for t, predicted, p in zip(classes[np.asarray(truth, dtype=np.int64)], classes[outputs.argmax(axis=1)],
                                       outputs):
                writer.writerow([t, predicted] + [f"{v:.8g}" for v in p])

    # --- reading ------------------------------------------------------------------------------
    def read_config(self) -> str:
        """The resolved config as written; empty when the folder has none."""
        return self.file(self.CONFIG).read_text() if self.has(self.CONFIG) else ""

    def read_metrics(self) -> dict:
        """metrics.json; a missing, unreadable or non-object one is an NnctlError naming it."""
        path = self.file(self.METRICS)
        try:
            metrics = json.loads(path.read_text())
        except FileNotFoundError:
            raise NnctlError(f"not a run folder: it has no {self.METRICS}", str(self.path), NOT_A_RUN_HINT)
        except (ValueError, UnicodeDecodeError):
            raise NnctlError(f"{self.METRICS} is not valid JSON", str(path))
        if not isinstance(metrics, dict):
            raise NnctlError(f"{self.METRICS} is not a JSON object", str(path))
        return metrics

    def read_rows(self, name: str) -> list[dict] | None:
        """A CSV file of the folder as rows of text; None when the folder has no such file."""
        try:
            with open(self.file(name), newline="") as fh:
                return list(csv.DictReader(fh))
        except FileNotFoundError:
            return None

    def read_predictions(self, name: str) -> tuple[list[str], list[dict]] | None:
        """A part's predictions (VALIDATION or TEST): (classes, rows), classes from the
        `p_<class>` columns (none for a regression). Rows hold `target` and `prediction`, and the
        probabilities only with two classes, where ROC and PR need them: with thousands of
        classes, holding every probability would take gigabytes for nothing. None when the
        folder has no such file."""
        try:
            fh = open(self.file(name), newline="")
        except FileNotFoundError:
            return None
        with fh:
            reader = csv.reader(fh)
            header = next(reader, [])
            classes = [c[2:] for c in header if c.startswith("p_")]
            keep = [i for i, c in enumerate(header) if c in ("target", "prediction") or
                    (len(classes) == 2 and c.startswith("p_"))]
            return classes, [{header[i]: row[i] for i in keep} for row in reader if len(row) == len(header)]

    def read_history(self) -> list[dict]:
        """history.csv as numbers (an empty cell is NaN)."""
        rows = self.read_rows(self.HISTORY)
        if rows is None:
            raise NnctlError(f"no {self.HISTORY} in this folder", str(self.path),
                             "pass a run folder written by `nnctl train`")
        return [{k: float(v) if v not in ("", None) else float("nan") for k, v in row.items()} for row in rows]


NOT_A_RUN_HINT = "pass run folders written by `nnctl train` (`nnctl runs` lists them)"
DIAGNOSTIC_COLUMNS = ("epoch", "layer", "grad_norm", "weight_norm", "update_ratio", "dead_fraction")


def _metrics_text(metrics: dict) -> str:
    return dumps(metrics, indent=2, ensure_ascii=False) + "\n"


def _number(v):
    return f"{v:.8g}" if isinstance(v, float) else v


def is_running(folder: Path) -> bool:
    """True while a live process holds the folder's lock."""
    import fcntl

    try:
        with open(folder / LOCK) as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
    except OSError:
        return False
    return False


def _incomplete(folder: Path) -> dict | None:
    """What `nnctl runs` shows of a run folder whose training was killed (its writer is gone)."""
    if not (folder / RunFolder.CONFIG).exists() or is_running(folder):
        return None
    entry = {"name": folder.name[len(TMP_PREFIX):], "path": str(folder), "status": "incomplete", "epochs": 0,
             "modified": folder.stat().st_mtime}
    checkpoint = folder / RunFolder.CHECKPOINT
    if checkpoint.exists():
        try:
            with zipfile.ZipFile(checkpoint) as archive, archive.open("meta.npy") as fh:
                meta = json.loads(np.lib.format.read_array(fh, allow_pickle=False).tobytes().decode())
            entry.update(name=meta["name"], epochs=meta["completed"], created=meta.get("created", ""),
                         modified=checkpoint.stat().st_mtime)
            if meta.get("resumed_from"):
                entry["resumed_from"] = meta["resumed_from"]
        except (OSError, ValueError, KeyError, UnicodeDecodeError, zipfile.BadZipFile):
            pass  # a damaged checkpoint: listed, and --resume will say what is wrong
    return entry


def list_runs(runs_dir, incomplete_only: bool = False) -> list[dict]:
    """Every run in `runs_dir`, newest first (kind `run`): complete ones with their
    metrics.json contents, and those killed before they completed (status `incomplete`;
    resumable when they hold a checkpoint, `resumed` with `resumed_as` once a run in the same
    folder continued them). `incomplete_only` lists just the latter."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    runs, continued = [], {}
    for folder in runs_dir.iterdir():
        if folder.name.startswith(TMP_PREFIX):
            entry = _incomplete(folder) if folder.is_dir() else None
        else:
            entry = _complete(folder)
        if entry is None:
            continue
        entry["kind"] = "run"
        runs.append(entry)
        if entry.get("resumed_from"):
            continued[Path(str(entry["resumed_from"])).name] = entry["path"]
    for entry in runs:
        if entry["status"] == "incomplete" and Path(entry["path"]).name in continued:
            entry.update(status="resumed", resumed_as=continued[Path(entry["path"]).name])
    if incomplete_only:
        runs = [r for r in runs if r["status"] in ("incomplete", "resumed") and Path(r["path"]).name.startswith(TMP_PREFIX)]
    return sorted(runs, key=lambda r: (str(r.get("created") or ""), r["modified"]), reverse=True)


def _complete(folder: Path) -> dict | None:
    run = RunFolder(folder)
    if not run.has(run.MODEL):
        return None
    try:
        metrics = json.loads(run.file(run.METRICS).read_text())
    except (OSError, ValueError):
        metrics = {}
    return {"name": folder.name, "path": str(folder), "modified": run.file(run.MODEL).stat().st_mtime, **metrics}


def resumed_as(source) -> list[str]:
    """The runs beside `source` (a killed run's folder) that continued it, complete or not."""
    source = Path(source)
    return [r["path"] for r in list_runs(source.parent)
            if r.get("resumed_from") and Path(str(r["resumed_from"])).name == source.name]


@contextmanager
def claim_for_resume(source):
    """Held while `source` is being resumed: a killed run is continued once. A second resume,
    at the same time (its lock is held) or after one (a run beside it continued it), is an
    NnctlError naming the run to resume instead. A complete run may be continued again and
    again, each time to a new run folder, like training on from a saved model."""
    import fcntl

    source = Path(source) if source is not None else None
    if source is None or not (source.is_dir() and source.name.startswith(TMP_PREFIX)):
        yield
        return
    done = resumed_as(source)
    if done:
        raise NnctlError(f"that run was already resumed, as {done[0]}", str(source),
                         f"continue that one: nnctl train --resume {done[0]} (or delete {source})")
    try:
        lock = open(source / LOCK, "a")
    except OSError:  # a folder we cannot write to: nothing to hold, the check above stands
        yield
        return
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise NnctlError("that run is being resumed by another process", str(source),
                             "wait for it to finish; `nnctl runs` then shows the run it continued in")
        yield
