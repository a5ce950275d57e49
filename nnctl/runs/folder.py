"""Run folders: `runs/<name>-<YYYYMMDD-HHMMSS>/` written atomically, and listed.

A run is written into a hidden temporary folder beside its final place and renamed into place
when complete, so an interrupted or failed run never looks like a finished one.
"""
from __future__ import annotations

import csv
import json
import math
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..atomic import DISK_FULL, follow_umask, naming_errors
from ..errors import NnctlError
from ..jsonfmt import dumps
from ..npzfile import read_npz

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
        base = exact or run_name(name)
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
            truth = _target_in_its_units(y, model.meta.get("target_scaler"))
            writer.writerow(["target", "prediction"])
            writer.writerows(zip(map(_number, truth.tolist()), map(_number, model.values_from_inputs(X).tolist())))
            return
        proba = model.proba_from_inputs(X)
        classes = np.asarray(model.classes, dtype=object)
        writer.writerow(["target", "prediction"] + [f"p_{c}" for c in model.classes])
        for truth, predicted, p in zip(classes[np.asarray(y, dtype=np.int64)], classes[proba.argmax(axis=1)], proba):
            writer.writerow([truth, predicted] + [f"{v:.8g}" for v in p])


def _target_in_its_units(y, scaler):
    """The regression truth as the data wrote it. Training keeps it scaled in its own dtype, so
    mapping it back leaves noise below that dtype's precision (a 0 came back as 2.43e-08):
    each value is rounded to the decimals its precision supports."""
    import numpy as np

    scaled = np.asarray(y).reshape(len(y), -1)[:, 0]
    truth = scaled.astype(np.float64)
    if not scaler:
        return truth
    scale, offset = scaler["scale"][0], scaler["offset"][0]
    truth = truth * scale + offset
    eps = np.finfo(scaled.dtype).eps if scaled.dtype.kind == "f" else np.finfo(np.float64).eps
    error = (abs(offset) + np.abs(truth - offset)) * eps  # what the scaled value's last bit is worth
    with np.errstate(divide="ignore"):
        decimals = np.floor(-np.log10(2 * error))
    q = 10.0 ** np.clip(decimals, -300, 300)
    return np.where(error > 0, np.round(truth * q) / q + 0.0, truth)  # + 0.0: -0 reads as 0


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
        return parse_history(csv.DictReader(fh), path)


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
            # only `meta`, its header checked first: a listing never reads a checkpoint's weights
            arrays = read_npz(checkpoint, "checkpoint", "corrupt or truncated", "", names=("meta",),
                              limit=lambda name, header: None if header.dtype == np.uint8 else "`meta` is not bytes")
            meta = json.loads(arrays["meta"].tobytes().decode())
            if not isinstance(meta.get("name"), str) or not isinstance(meta.get("completed"), int):
                raise ValueError("meta lacks `name` or `completed`")
            entry.update(name=meta["name"], epochs=meta["completed"], created=str(meta.get("created", "")),
                         modified=checkpoint.stat().st_mtime)
        except (NnctlError, OSError, ValueError, KeyError, AttributeError, UnicodeDecodeError) as exc:
            # listed, marked; `--resume` says in full what is wrong
            entry["damaged"] = f"checkpoint.npz: {getattr(exc, 'message', exc)}"
    return entry


RUN_KEYS = {"status": str, "created": str, "task": str, "architecture": str, "metric": str, "epochs": int,
            "best_epoch": int, "seconds": (int, float), "resumed_from": str,
            "train": dict, "validation": dict, "test": dict}
DAMAGED = "the run folder is damaged: train again, or restore the file"


def read_metrics(folder) -> dict:
    """A run folder's metrics.json; an NnctlError naming the file when it is missing, not JSON,
    or holds a value of the wrong kind (a hand-edited or damaged file)."""
    path = Path(folder) / "metrics.json"
    try:
        metrics = json.loads(path.read_text())
    except FileNotFoundError:
        raise NnctlError("not a run folder: it has no metrics.json", str(folder),
                         "pass run folders written by `nnctl train` (`nnctl runs` lists them)")
    except (ValueError, RecursionError) as exc:
        raise NnctlError(f"metrics.json is not valid JSON ({str(exc)[:80]})", str(path), DAMAGED)
    if not isinstance(metrics, dict):
        raise NnctlError(f"metrics.json holds a JSON {type(metrics).__name__}, not an object", str(path), DAMAGED)
    for key, kind in RUN_KEYS.items():
        value = metrics.get(key)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise NnctlError(f"metrics.json's `{key}` is {value!r:.40}, which is not what nnctl writes there",
                             str(path), DAMAGED)
    for part in ("train", "validation", "test"):
        for key, value in (metrics.get(part) or {}).items():
            if not isinstance(value, (dict, list)) and value is not None and (
                    not isinstance(value, (int, float)) or isinstance(value, bool)):
                raise NnctlError(f"metrics.json's `{part}.{key}` is {value!r:.40}, not a number", str(path), DAMAGED)
    return metrics


def _metrics(folder: Path) -> dict:
    """A finished run's metrics for listing; a damaged metrics.json gives status `damaged` and
    what is wrong, so one bad file never hides the other runs."""
    if not (folder / "metrics.json").exists():
        return {}
    try:
        return read_metrics(folder)
    except NnctlError as exc:
        return {"status": "damaged", "damaged": f"metrics.json: {exc.message}"}
    except OSError as exc:
        return {"status": "damaged", "damaged": f"metrics.json: {exc.strerror or exc}"}


MAX_EPOCH = 10 ** 9


def parse_history(raw_rows, path) -> list[dict]:
    """history.csv's rows (as csv.DictReader gives them) as floats, NaN for an empty cell; an
    NnctlError naming the file and line for a ragged row, a value that is not a number, or an
    epoch that is not a whole number after the one before."""
    rows, previous = [], 0
    for line, raw in enumerate(raw_rows, start=2):
        if None in raw or None in raw.values():
            raise NnctlError(f"history.csv line {line} has {'more' if None in raw else 'fewer'} cells than its header",
                             str(path), DAMAGED)
        row = {k: _float(v, line, k, path) for k, v in raw.items()}
        epoch = row.get("epoch", math.nan)
        if not (epoch.is_integer() and previous < epoch <= MAX_EPOCH):
            raise NnctlError(f"history.csv line {line}: epoch {epoch:g} is not a whole number after {previous:g} "
                             f"(and at most {MAX_EPOCH:,})", str(path), DAMAGED)
        previous = epoch
        rows.append(row)
    return rows


def _float(text: str, line: int, column: str, path) -> float:
    if text == "":
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise NnctlError(f"history.csv line {line}: {column} is '{text[:40]}', not a number", str(path), DAMAGED)


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
        runs.append({**_metrics(folder), "name": folder.name, "path": str(folder),
                     "modified": (folder / "model.npz").stat().st_mtime})
    return sorted(runs, key=lambda r: (r.get("created") or "", r["modified"]), reverse=True)
