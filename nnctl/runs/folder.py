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
from contextlib import contextmanager
from pathlib import Path

from ..atomic import follow_umask
from ..errors import NnctlError
from ..jsonfmt import dumps

TMP_PREFIX = ".tmp-"


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
def atomic_run_folder(runs_dir, name: str):
    """Yields a temporary folder to fill; on success it is renamed to a unique
    `<runs_dir>/<name>-<timestamp>[-N]` (stored in `.final` on the yielded path's holder)."""
    runs_dir = Path(runs_dir)
    tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{name}-", dir=runs_dir))
    holder = {"tmp": tmp, "final": None}
    try:
        yield holder
        follow_umask(tmp, folder=True)  # mkdtemp makes it private; a run is shared like any output
        base = run_name(name)
        for n in range(1, 1000):
            final = runs_dir / (base if n == 1 else f"{base}-{n}")
            try:
                os.rename(tmp, final)  # fails if `final` exists and is not empty
                holder["final"] = final
                break
            except OSError:
                if not final.exists():
                    raise
        else:  # pragma: no cover - a thousand runs in one second
            raise NnctlError("could not find a free run folder name", str(runs_dir))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_history(path, history: list[dict]) -> None:
    columns = list(history[0]) if history else ["epoch", "train_loss", "learning_rate", "seconds"]
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for row in history:
            writer.writerow({k: _number(v) for k, v in row.items()})


def _number(v):
    return f"{v:.8g}" if isinstance(v, float) else v


def write_json(path, data: dict) -> None:
    with open(path, "w") as fh:
        fh.write(dumps(data, indent=2, ensure_ascii=False) + "\n")


def read_history(run) -> list[dict]:
    path = Path(run) / "history.csv"
    if not path.exists():
        raise NnctlError("no history.csv in this folder", str(run), "pass a run folder written by `nnctl train`")
    with open(path, newline="") as fh:
        return [{k: float(v) if v not in ("", None) else float("nan") for k, v in row.items()}
                for row in csv.DictReader(fh)]


def list_runs(runs_dir) -> list[dict]:
    """Every complete run in `runs_dir`, newest first, with its metrics.json contents."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    runs = []
    for folder in runs_dir.iterdir():
        if folder.name.startswith(TMP_PREFIX) or not (folder / "model.npz").exists():
            continue
        try:
            metrics = json.loads((folder / "metrics.json").read_text())
        except (OSError, ValueError):
            metrics = {}
        runs.append({"name": folder.name, "path": str(folder), "modified": (folder / "model.npz").stat().st_mtime,
                     **metrics})
    return sorted(runs, key=lambda r: (r.get("created") or "", r["modified"]), reverse=True)
