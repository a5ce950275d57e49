"""Sweep and cross-validation folders as `nnctl runs` lists them, beside the runs: kind,
status and the best (sweep) or mean (cv) value of their metric."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import yaml

from .driver import JOURNAL
from .space import grid_size

STAMP = re.compile(r"-(\d{8}-\d{6})(?:-\d+)?$")
FOLD = re.compile(r"^fold_\d+$")


def list_searches(folder) -> list[dict]:
    """Every sweep and cv folder in `folder`, as `list_runs` gives runs (kind `sweep` or `cv`)."""
    found = []
    for path in Path(folder).iterdir():
        if path.is_dir() and not path.name.startswith("."):
            entry = _sweep(path) if (path / "sweep.yaml").exists() and (path / JOURNAL).exists() else _cv(path)
            if entry is not None:
                found.append(entry)
    return found


def _entry(path: Path, kind: str, status: str, summary: dict | None, progress: str) -> dict:
    stamp = STAMP.search(path.name)
    started = time.mktime(time.strptime(stamp.group(1), "%Y%m%d-%H%M%S")) if stamp else path.stat().st_mtime
    return {"name": path.name, "path": str(path), "kind": kind, "status": status, "epochs": progress,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)), "modified": started,
            "summary": summary}  # {"label", "value"[, "std"]}: the best trial's metric, or the folds' mean


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
    folds = [p for p in path.iterdir() if FOLD.match(p.name) and p.is_dir()]
    if not folds and not (path / "folds.csv").exists() and not re.search(r"-cv\d+-\d{8}-\d{6}", path.name):
        return None
    summary = _read(path / "summary.json")
    total = summary.get("folds") if isinstance(summary, dict) else None
    if total is None:
        named = re.search(r"-cv(\d+)-\d{8}-\d{6}", path.name)
        total = int(named.group(1)) if named else "?"
    said = None
    if isinstance(summary, dict):
        name = next((k for k in summary if k.startswith("val_") and k != "val_loss"), "val_loss")
        score = summary.get(name) or {}
        if isinstance(score, dict) and isinstance(score.get("mean"), (int, float)):
            said = {"label": name[4:], "value": score["mean"], "std": score.get("std")}
    status = "completed" if isinstance(summary, dict) else "incomplete"
    return _entry(path, "cv", status, said, f"{len(folds)}/{total} folds")
