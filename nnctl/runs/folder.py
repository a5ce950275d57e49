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
from functools import partial
from pathlib import Path

import numpy as np

from ..atomic import DISK_FULL, follow_umask, naming_errors
from ..errors import NnctlError
from ..jsonfmt import dumps

TMP_PREFIX = ".tmp-"
CHECKPOINT = "checkpoint.npz"
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


def unique_folder(parent: Path, base: str, take=os.mkdir, tries: int = 999, what: str = "folder") -> Path:
    """The first of `<parent>/<base>`, `<base>-2`, `<base>-3`, ... that `take(path)` succeeds on:
    a mkdir, or the rename of a finished run, both of which fail on a folder that exists (and is
    not empty), so two runs started in the same second never share a folder. An NnctlError
    once `tries` names are taken."""
    for n in range(1, tries + 1):
        path = parent / (base if n == 1 else f"{base}-{n}")
        try:
            take(path)
            return path
        except OSError:
            if not path.exists():
                raise
    raise NnctlError(f"could not find a free {what} name" if tries > 1 else f"the {what} exists", str(parent / base))


@contextmanager
def atomic_run_folder(runs_dir, name: str, exact: str | None = None):
    """Yields a temporary folder to fill; on success it is renamed to a unique
    `<runs_dir>/<name>-<timestamp>[-N]`, or to `<runs_dir>/<exact>` (a sweep's `trials/007`),
    stored in the yielded holder's "final"."""
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
        tries = 999 if exact is None else 1
        holder["final"] = unique_folder(runs_dir, exact or run_name(name), partial(os.rename, tmp), tries, "run folder")
    except OSError as exc:
        if exc.errno in DISK_FULL and (tmp / CHECKPOINT).exists():
            # as after kill -9: the last whole checkpoint stays, and the run can be resumed
            raise NnctlError(exc.strerror, exc.filename or str(tmp),
                             f"the run is kept with its last checkpoint: free some space, then continue it with "
                             f"nnctl train --resume {tmp}") from exc
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        lock.close()


def write_text(path, text: str) -> None:
    with naming_errors(path), open(path, "w") as fh:
        fh.write(text)


def write_history(path, history: list[dict]) -> None:
    columns = list(history[0]) if history else ["epoch", "train_loss", "learning_rate", "seconds"]
    with naming_errors(path), open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for row in history:
            writer.writerow({k: _number(v) for k, v in row.items()})


DIAGNOSTIC_COLUMNS = ("epoch", "layer", "grad_norm", "weight_norm", "update_ratio", "dead_fraction")


def write_diagnostics(path, rows: list[dict]) -> None:
    """diagnostics.csv in long format, one row per logged epoch and layer; dead_fraction is
    empty for layers outside the ReLU family."""
    with naming_errors(path), open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(DIAGNOSTIC_COLUMNS)
        for row in rows:
            writer.writerow(["" if row.get(k) is None else _number(row[k]) for k in DIAGNOSTIC_COLUMNS])


def write_predictions(path, model, X, y) -> None:
    """The validation part's truth and the saved model's predictions (validation.csv), so a
    report needs nothing but the run folder: `target`, `prediction`, and `p_<class>` columns."""
    import numpy as np

    with naming_errors(path), open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        if model.task == "regression":
            scaler = model.meta.get("target_scaler")
            truth = np.asarray(y, dtype=np.float64).reshape(len(y), -1)[:, 0]
            if scaler:
                truth = truth * scaler["scale"][0] + scaler["offset"][0]
            writer.writerow(["target", "prediction"])
            writer.writerows(zip(map(_number, truth.tolist()), map(_number, model.values_from_inputs(X).tolist())))
            return
        proba = model.proba_from_inputs(X)
        classes = np.asarray(model.classes, dtype=object)
        writer.writerow(["target", "prediction"] + [f"p_{c}" for c in model.classes])
        for truth, predicted, p in zip(classes[np.asarray(y, dtype=np.int64)], classes[proba.argmax(axis=1)], proba):
            writer.writerow([truth, predicted] + [f"{v:.8g}" for v in p])


def _number(v):
    return f"{v:.8g}" if isinstance(v, float) else v


def write_json(path, data: dict) -> None:
    with naming_errors(path), open(path, "w") as fh:
        fh.write(dumps(data, indent=2, ensure_ascii=False) + "\n")


def read_history(run) -> list[dict]:
    path = Path(run) / "history.csv"
    if not path.exists():
        raise NnctlError("no history.csv in this folder", str(run), "pass a run folder written by `nnctl train`")
    with open(path, newline="") as fh:
        return [{k: float(v) if v not in ("", None) else float("nan") for k, v in row.items()}
                for row in csv.DictReader(fh)]


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
    if not (folder / "config.yaml").exists() or is_running(folder):
        return None
    entry = {"name": folder.name[len(TMP_PREFIX):], "path": str(folder), "status": "incomplete", "epochs": 0,
             "modified": folder.stat().st_mtime}
    checkpoint = folder / "checkpoint.npz"
    if checkpoint.exists():
        try:
            with zipfile.ZipFile(checkpoint) as archive, archive.open("meta.npy") as fh:
                meta = json.loads(np.lib.format.read_array(fh, allow_pickle=False).tobytes().decode())
            entry.update(name=meta["name"], epochs=meta["completed"], created=meta.get("created", ""),
                         modified=checkpoint.stat().st_mtime)
        except (OSError, ValueError, KeyError, UnicodeDecodeError, zipfile.BadZipFile):
            pass  # a damaged checkpoint: listed, and --resume will say what is wrong
    return entry


def list_runs(runs_dir, incomplete_only: bool = False) -> list[dict]:
    """Every run in `runs_dir`, newest first: complete ones with their metrics.json contents,
    and those killed before they completed (status `incomplete`; resumable when they hold a
    checkpoint). `incomplete_only` lists just the latter."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    runs = []
    for folder in runs_dir.iterdir():
        if folder.name.startswith(TMP_PREFIX):
            entry = _incomplete(folder) if folder.is_dir() else None
            if entry is not None:
                runs.append(entry)
            continue
        if incomplete_only or not (folder / "model.npz").exists():
            continue
        try:
            metrics = json.loads((folder / "metrics.json").read_text())
        except (OSError, ValueError):
            metrics = {}
        runs.append({"name": folder.name, "path": str(folder), "modified": (folder / "model.npz").stat().st_mtime,
                     **metrics})
    return sorted(runs, key=lambda r: (r.get("created") or "", r["modified"]), reverse=True)
