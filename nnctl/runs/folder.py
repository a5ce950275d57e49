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
from functools import partial
from pathlib import Path

import numpy as np

from ..atomic import DISK_FULL, follow_umask, naming_errors, write_text_atomic
from ..errors import NnctlError
from ..jsonfmt import dumps
from ..npzfile import read_npz

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


NAME_LIMIT = 100


def check_name(name: str, what: str = "run") -> str:
    """A run, sweep or cv name is one folder name: no path separators, no leading dot (hidden, and
    '.' / '..' / the temporary prefix), no control characters (a newline breaks the `runs` table
    and `tail -1` of stdout), at most NAME_LIMIT characters."""
    if not name or name.startswith(".") or "/" in name or "\\" in name:
        raise NnctlError(f"a {what} name must be one folder name: not a path, not empty, not starting with '.' "
                         f"(got {name!r})", "--name",
                         "use letters, digits, '-' and '_', e.g. --name iris-lr0.1; --runs-dir picks the folder")
    if any(ord(c) < 32 or ord(c) == 127 for c in name) or len(name) > NAME_LIMIT:
        raise NnctlError(f"a {what} name must be one line of at most {NAME_LIMIT} characters (got {name!r}, {len(name)} "
                         "characters)", "--name", "use letters, digits, '-' and '_', e.g. --name iris-lr0.1")
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
        tries = 999 if exact is None else 1
        holder["final"] = unique_folder(runs_dir, exact or run_name(name, started), partial(os.rename, tmp), tries,
                                        "run folder")
    except OSError as exc:
        if exc.errno in DISK_FULL and (tmp / RunFolder.CHECKPOINT).exists():
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
    IMPORTANCE = "importance.csv"  # permutation importance per column (report.importance)
    PLOT = "loss.png"
    REPORT = "report.html"
    ONNX = "model.onnx"
    TRACKING = "tracking.json"  # where a copy of the run was logged (MLflow's URI and run id)

    def __init__(self, path):
        self.path = Path(path)

    def file(self, name: str) -> Path:
        return self.path / name

    def has(self, name: str) -> bool:
        return (self.path / name).exists()

    # --- writing (into the temporary folder, before it is renamed into place) --------------
    def write_config(self, text: str) -> None:
        with naming_errors(self.file(self.CONFIG)), open(self.file(self.CONFIG), "w") as fh:
            fh.write(text)

    def write_metrics(self, metrics: dict) -> None:
        with naming_errors(self.file(self.METRICS)), open(self.file(self.METRICS), "w") as fh:
            fh.write(_metrics_text(metrics))

    def update_metrics(self, **changes) -> None:
        """Change keys of a finished run's metrics.json, atomically (a sweep marks a pruned
        trial's run `pruned` once its pruner has stopped it)."""
        metrics = {**self.read_metrics(), **changes}
        write_text_atomic(self.file(self.METRICS), _metrics_text(metrics))

    def write_history(self, history: list[dict]) -> None:
        columns = list(history[0]) if history else ["epoch", "train_loss", "learning_rate", "seconds"]
        with naming_errors(self.file(self.HISTORY)), open(self.file(self.HISTORY), "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            for row in history:
                writer.writerow({k: _number(v) for k, v in row.items()})

    def write_diagnostics(self, rows: list[dict]) -> None:
        """diagnostics.csv in long format, one row per logged epoch and layer; dead_fraction is
        empty for layers outside the ReLU family."""
        with naming_errors(self.file(self.DIAGNOSTICS)), open(self.file(self.DIAGNOSTICS), "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(DIAGNOSTIC_COLUMNS)
            for row in rows:
                writer.writerow(["" if row.get(k) is None else _number(row[k]) for k in DIAGNOSTIC_COLUMNS])

    def write_predictions(self, name: str, model, X, y, rows=None) -> None:
        """A part's truth and the saved model's predictions (VALIDATION or TEST), so a report
        needs nothing but the run folder: `target`, `prediction`, and `p_<class>` columns;
        for regression both in the target's own units. `y` as the dataset holds it. `rows`:
        each row's place in its file (0-based), written as `row` (see `write_outputs`)."""
        if model.targets is not None:
            self.write_target_outputs(name, model, y, model.network_outputs(X), rows)
        elif model.task == "regression":
            truth = _target_in_its_units(y, model.meta.get("target_scaler"))
            self.write_outputs(name, model, truth, model.values_from_inputs(X), rows)
        else:
            self.write_outputs(name, model, y, model.proba_from_inputs(X), rows)

    def write_outputs(self, name: str, model, truth, outputs, rows=None) -> None:
        """`write_predictions` from the truth (class indices, or the target in its units) and the
        model's outputs (probabilities (rows, classes), or predicted values). `rows` (0-based
        places in the file) become the last column, `row`: the data row, 1 for the first after
        the header, as nnctl's errors count them, so a row the report names can be found."""
        numbered = rows is not None
        row_cells = [str(int(r) + 1) for r in np.asarray(rows).tolist()] if numbered else None
        with naming_errors(self.file(name)), open(self.file(name), "w", newline="") as fh:
            writer = csv.writer(fh)
            if model.task == "regression":
                writer.writerow(["target", "prediction"] + (["row"] if numbered else []))
                columns = [map(_number, np.asarray(truth, dtype=np.float64).tolist()),
                           map(_number, np.asarray(outputs, dtype=np.float64).reshape(len(truth), -1)[:, 0].tolist())]
                writer.writerows(zip(*columns, *([row_cells] if numbered else [])))
                return
            classes = np.asarray(model.classes, dtype=object)
            writer.writerow(["target", "prediction"] + [f"p_{c}" for c in model.classes] + (["row"] if numbered else []))
            for i, (t, predicted, p) in enumerate(zip(classes[np.asarray(truth, dtype=np.int64)],
                                                      classes[outputs.argmax(axis=1)], outputs)):
                writer.writerow([t, predicted] + [f"{v:.8g}" for v in p] + ([row_cells[i]] if numbered else []))

    def write_target_outputs(self, name: str, model, y, outputs, rows=None) -> None:
        """`write_predictions` of a model of several targets, from y (rows, targets) as the
        dataset holds it and the model's outputs (rows, Σ outputs): per target `<t>` (the
        truth), `<t>_prediction` and `p_<t>_<class>` columns, then `row`."""
        header, columns = [], []
        for j, view in enumerate(model.targets):
            if view.task == "regression":
                truth = _target_in_its_units(y[:, j:j + 1], view.spec.get("target_scaler"))
                header += [view.name, f"{view.name}_prediction"]
                columns += [[_number(v) for v in np.ravel(truth).tolist()],
                            [_number(v) for v in view.values(outputs).tolist()]]
                continue
            classes, p = np.asarray(view.classes, dtype=object), view.proba(outputs)
            header += [view.name, f"{view.name}_prediction"] + [f"p_{view.name}_{c}" for c in view.classes]
            columns += [classes[y[:, j].astype(np.int64)], classes[p.argmax(axis=1)]]
            columns += [[f"{v:.8g}" for v in p[:, i]] for i in range(p.shape[1])]
        if rows is not None:
            header.append("row")
            columns.append([str(int(r) + 1) for r in np.asarray(rows).tolist()])
        with naming_errors(self.file(name)), open(self.file(name), "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows(zip(*columns))

    def write_importance(self, columns: list[dict]) -> None:
        """importance.csv: `column`, `importance`, `std`, most important first (as `nnctl
        explain --output` writes it); several targets: a `target` column first, each target's
        columns in turn. metrics.json's `importance` says how it was measured."""
        targeted = bool(columns) and "target" in columns[0]
        with naming_errors(self.file(self.IMPORTANCE)), open(self.file(self.IMPORTANCE), "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow((("target",) if targeted else ()) + IMPORTANCE_COLUMNS)
            writer.writerows(([c["target"]] if targeted else []) + [c["column"], _number(c["importance"]),
                                                                     _number(c["std"])] for c in columns)

    # --- reading ------------------------------------------------------------------------------
    def write_tracking(self, record: dict) -> None:
        write_text_atomic(self.file(self.TRACKING), dumps(record, indent=2) + "\n")

    def read_tracking(self) -> dict | None:
        """tracking.json, or None when the run was never logged (or the file is unreadable: it
        only saves a lookup, and the run is then logged as a new one)."""
        try:
            record = json.loads(self.file(self.TRACKING).read_text())
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None

    def read_config(self) -> str:
        """The resolved config as written; empty when the folder has none."""
        return self.file(self.CONFIG).read_text() if self.has(self.CONFIG) else ""

    def read_metrics(self) -> dict:
        """metrics.json; a missing, unreadable or damaged one is an NnctlError naming it."""
        return read_metrics(self.path)

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
        probabilities only with two classes, where ROC and PR need them (and `row`, the data
        row in its file, when the run wrote it): with thousands of
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
            keep = [i for i, c in enumerate(header) if c in ("target", "prediction", "row") or
                    (len(classes) == 2 and c.startswith("p_"))]
            return classes, [{header[i]: row[i] for i in keep} for row in reader if len(row) == len(header)]

    def read_importance(self) -> list[dict] | None:
        """importance.csv as [{column, importance, std}] with numbers; None when the folder has
        none; an NnctlError naming the file and line when it is damaged."""
        rows = self.read_rows(self.IMPORTANCE)
        if rows is None:
            return None
        path, read = self.file(self.IMPORTANCE), []
        for line, row in enumerate(rows, start=2):
            if None in row or None in row.values() or any(k not in row for k in IMPORTANCE_COLUMNS):
                raise NnctlError(f"{self.IMPORTANCE} line {line} does not have its header's cells", str(path), DAMAGED)
            try:
                read.append({**({"target": row["target"]} if "target" in row else {}), "column": row["column"],
                             "importance": float(row["importance"]), "std": float(row["std"])})
            except ValueError:
                raise NnctlError(f"{self.IMPORTANCE} line {line}: importance and std must be numbers", str(path),
                                 DAMAGED)
        return read

    def read_history(self) -> list[dict]:
        """history.csv as numbers (an empty cell is NaN); a damaged one is an NnctlError naming
        the file and line."""
        path = self.file(self.HISTORY)
        if not path.exists():
            raise NnctlError(f"no {self.HISTORY} in this folder", str(self.path),
                             "pass a run folder written by `nnctl train`")
        with open(path, newline="") as fh:
            return parse_history(csv.DictReader(fh), path)


NOT_A_RUN_HINT = "pass run folders written by `nnctl train` (`nnctl runs` lists them)"
IMPORTANCE_COLUMNS = ("column", "importance", "std")
DIAGNOSTIC_COLUMNS = ("epoch", "layer", "grad_norm", "weight_norm", "update_ratio", "dead_fraction", "grad_norm_total")


def _metrics_text(metrics: dict) -> str:
    return dumps(metrics, indent=2, ensure_ascii=False) + "\n"


def _target_in_its_units(y, scaler):
    """The regression truth as the data wrote it. Training keeps it scaled in its own dtype, so
    mapping it back leaves noise below that dtype's precision (a 0 came back as 2.43e-08):
    each value is rounded to the decimals its precision supports."""
    import numpy as np

    from ..data.scaling import from_training, is_linear

    scaled = np.asarray(y).reshape(len(y), -1)[:, 0]
    truth = scaled.astype(np.float64)
    if not scaler:
        return truth
    if not is_linear(scaler):
        return from_training(truth, scaler)
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


@contextmanager
def folder_lock(folder: Path, busy: str, hint: str):
    """Holds `folder`'s lock (the same `.lock` a run in progress holds) while a sweep or cv
    driver writes in it, so `is_running` sees it and a second driver is refused (NnctlError
    `busy`) instead of failing the first one's trials. The kernel releases it if the process dies."""
    import fcntl

    fh = open(Path(folder) / LOCK, "a")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise NnctlError(busy, str(folder), hint)
        yield
    finally:
        fh.close()


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
            # only `meta`, its header checked first: a listing never reads a checkpoint's weights
            arrays = read_npz(checkpoint, "checkpoint", "corrupt or truncated", "", names=("meta",),
                              limit=lambda name, header: None if header.dtype == np.uint8 else "`meta` is not bytes")
            meta = json.loads(arrays["meta"].tobytes().decode())
            if not isinstance(meta.get("name"), str) or not isinstance(meta.get("completed"), int):
                raise ValueError("meta lacks `name` or `completed`")
            entry.update(name=meta["name"], epochs=meta["completed"], created=str(meta.get("created", "")),
                         modified=checkpoint.stat().st_mtime)
            if meta.get("resumed_from"):
                entry["resumed_from"] = str(meta["resumed_from"])
        except (NnctlError, OSError, ValueError, KeyError, AttributeError, UnicodeDecodeError) as exc:
            # listed, marked; `--resume` says in full what is wrong
            entry["damaged"] = f"{RunFolder.CHECKPOINT}: {getattr(exc, 'message', exc)}"
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
            if not isinstance(value, (dict, list, str)) and value is not None and (
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
        if entry.get("status") == "incomplete" and Path(entry["path"]).name in continued:
            entry.update(status="resumed", resumed_as=continued[Path(entry["path"]).name])
    if incomplete_only:
        runs = [r for r in runs if r.get("status") in ("incomplete", "resumed") and Path(r["path"]).name.startswith(TMP_PREFIX)]
    return sorted(runs, key=lambda r: (str(r.get("created") or ""), r["modified"]), reverse=True)


def _complete(folder: Path) -> dict | None:
    run = RunFolder(folder)
    if not run.has(run.MODEL):
        return None
    metrics = _metrics(folder)
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
