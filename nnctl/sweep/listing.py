"""Sweep, cross-validation and seeds folders as `nnctl runs` lists them, beside the runs: kind,
status and the best (sweep) or mean (cv, seeds) value of their metric."""
from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path

import yaml

from .driver import JOURNAL
from .space import grid_size

STAMP = re.compile(r"-(\d{8}-\d{6})(?:-\d+)?$")
FOLD = re.compile(r"^fold_\d+$")
REPEAT = re.compile(r"^repeat_\d+$")
CV_NAME = re.compile(r"-cv(\d+)(?:x(\d+))?-\d{8}-\d{6}")
SEEDS_NAME = re.compile(r"-seeds(\d+)-\d{8}-\d{6}")
SEED = re.compile(r"^seed_\d+$")


def list_searches(folder) -> list[dict]:
    """Every sweep, cv and seeds folder in `folder`, as `list_runs` gives runs (kind `sweep`,
    `cv` or `seeds`)."""
    found = []
    for path in Path(folder).iterdir():
        if path.is_dir() and not path.name.startswith("."):
            if (path / "sweep.yaml").exists() and (path / JOURNAL).exists():
                entry = _sweep(path)
            else:
                entry = _seeds(path) if (path / "seeds.csv").exists() or SEEDS_NAME.search(path.name) else _cv(path)
            if entry is not None:
                found.append(entry)
    return found


def _entry(path: Path, kind: str, status: str, summary: dict | None, progress: str) -> dict:
    stamp = STAMP.search(path.name)
    started = time.mktime(time.strptime(stamp.group(1), "%Y%m%d-%H%M%S")) if stamp else path.stat().st_mtime
    # modified breaks ties between folders started in the same second (their stamps are whole seconds)
    return {"name": path.name, "path": str(path), "kind": kind, "status": status, "epochs": progress,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)), "modified": path.stat().st_mtime,
            "summary": summary}  # {"label", "value"[, "std"]}: the best trial's metric, or the folds' mean


def _real(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _mean_std(label: str, score) -> dict | None:
    """A cv's or seeds' {"mean", "std"} as a listing's summary; a damaged one (a mean of true, a
    std of -1 or "x") is left out, or its std alone, rather than listed as a score."""
    if not isinstance(score, dict) or not _real(score.get("mean")):
        return None
    std = score.get("std")
    return {"label": label, "value": score["mean"], "std": std if _real(std) and std >= 0 else None}


def _read(path: Path):
    try:
        return json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())
    except (OSError, ValueError, yaml.YAMLError):
        return None


def _sweep(path: Path) -> dict | None:
    sweep, summary = _read(path / "sweep.yaml"), _read(path / "summary.json")
    if not isinstance(sweep, dict):
        return None
    try:
        total = grid_size(sweep["parameters"]) if sweep.get("method") == "grid" else int(sweep.get("trials") or 0)
    except (KeyError, TypeError, ValueError):
        total = 0
    counts = (summary or {}).get("counts") or {} if isinstance(summary, dict) else {}
    done = sum(v for v in counts.values() if isinstance(v, int))
    best = (summary or {}).get("best") if isinstance(summary, dict) else None
    said = None
    if isinstance(best, dict) and isinstance(best.get("value"), (int, float)):
        said = {"label": f"best {summary.get('metric', '')}", "value": best["value"]}
    pruned = f", {counts['pruned']} pruned" if counts.get("pruned") else ""
    status = "completed" if total and done >= total else "incomplete"
    return _entry(path, "sweep", status, said, f"{done}/{total or '?'} trials{pruned}")


def _cv(path: Path) -> dict | None:
    repeats = [p for p in path.iterdir() if REPEAT.match(p.name) and p.is_dir()]
    folds = [p for where in [path, *repeats] for p in where.iterdir() if FOLD.match(p.name) and p.is_dir()]
    named = CV_NAME.search(path.name)
    if not folds and not (path / "folds.csv").exists() and not named:
        return None
    summary = _read(path / "summary.json")
    total = None
    if isinstance(summary, dict) and isinstance(summary.get("folds"), int):
        repeats = summary.get("repeats", 1)
        total = summary["folds"] * (repeats if isinstance(repeats, int) else 1)
    if total is None:
        total = int(named.group(1)) * int(named.group(2) or 1) if named else "?"
    said = None
    if isinstance(summary, dict):
        name = next((k for k in summary if k.startswith("val_") and k != "val_loss"), "val_loss")
        said = _mean_std(name[4:], summary.get(name))
    status = "completed" if isinstance(summary, dict) else "incomplete"
    return _entry(path, "cv", status, said, f"{len(folds)}/{total} folds")


def _seeds(path: Path) -> dict:
    runs = [p for p in path.iterdir() if SEED.match(p.name) and p.is_dir()]
    summary = _read(path / "summary.json")
    named = SEEDS_NAME.search(path.name)
    total = len(summary["seeds"]) if isinstance(summary, dict) and isinstance(summary.get("seeds"), list) else \
        int(named.group(1)) if named else "?"
    said = None
    if isinstance(summary, dict):
        name = summary.get("metric")
        if isinstance(name, str):
            said = _mean_std(name[4:] if name.startswith("val_") else name, summary.get(name))
    status = "completed" if isinstance(summary, dict) else "incomplete"
    return _entry(path, "seeds", status, said, f"{len(runs)}/{total} seeds")
