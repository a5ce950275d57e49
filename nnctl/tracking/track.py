"""`nnctl track RUN... --uri URI`: finished folders copied into MLflow after the fact — runs
trained without tracking, runs the server missed, old runs; a sweep or cv folder becomes a
parent run with its trials or folds nested.

    done = track_folders(["runs/iris-20260101-120000"], "http://127.0.0.1:5000")
"""
from __future__ import annotations

import re
from pathlib import Path

import yaml

from ..errors import NnctlError
from ..runs.folder import NOT_A_RUN_HINT, RunFolder
from ..sweep.listing import STAMP  # a folder name's `-YYYYMMDD-HHMMSS[-N]`
from .client import Target, client_for, experiment_id, require_mlflow, resolve_uri
from .live import not_logged
from .sweeps import upload_cv, upload_sweep
from .upload import close_run, log_folder, now_ms, owned
from .uris import check_store


# what a cv or seeds folder's name adds to the config's stem: iris-cv5-..., iris-cv5x3-..., iris-seeds5-...
GROUP_SUFFIX = {"cv": r"-cv\d+(x\d+)?$", "seeds": r"-seeds\d+$"}


def kind_of(folder: Path) -> str:
    """run | sweep | cv | seeds, told by the files nnctl writes in each; anything else is an NnctlError."""
    if folder.is_dir():
        if RunFolder(folder).has(RunFolder.METRICS) and RunFolder(folder).has(RunFolder.MODEL):
            return "run"
        if (folder / "sweep.yaml").exists() and (folder / "trials").is_dir():
            return "sweep"
        if (folder / "folds.csv").exists() and (folder / "summary.json").exists():
            return "cv"
        if (folder / "seeds.csv").exists() and (folder / "summary.json").exists():
            return "seeds"
    raise NnctlError("not a finished run, sweep or cv folder", str(folder), NOT_A_RUN_HINT)


def _experiment(folder: Path, kind: str, given: str | None) -> str:
    """--experiment, else the config's tracking.experiment, else the folder's name without its time stamp
    (the config file's stem, as when the run was tracked live)."""
    if given:
        return given
    if kind == "run":
        try:
            config = yaml.safe_load(RunFolder(folder).read_config()) or {}
            named = (config.get("tracking") or {}).get("experiment")
            if named:
                return str(named)
        except (OSError, ValueError, yaml.YAMLError, AttributeError):
            pass  # the name below serves
    name = STAMP.sub("", folder.name)
    return re.sub(GROUP_SUFFIX.get(kind, "$^"), "", name)


def track_folders(folders, uri: str, experiment: str | None = None, tags: dict | None = None) -> list[dict]:
    """Upload each folder; returns one {folder, kind, run_id, state, warning, note} per folder,
    where state is logged | already (tracking.json names a run the server has in full) | failed,
    and note says why a run was logged as a new one rather than the one tracking.json names."""
    require_mlflow("nnctl track")
    uri = resolve_uri(uri, "--uri")
    folders = [Path(f) for f in folders]
    kinds = [kind_of(f) for f in folders]  # every folder checked before anything is sent
    check_store(uri, "--uri", {f.resolve().parent for f in folders})
    done = []
    for folder, kind in zip(folders, kinds):
        target = Target.of(uri, _experiment(folder, kind, experiment), None, tags)
        if kind == "run":
            done.append(upload_run(folder, target))
        else:
            warning = upload_sweep(folder, target) if kind == "sweep" else upload_cv(folder, target, kind)
            record = RunFolder(folder).read_tracking() or {}
            done.append({"folder": folder, "kind": kind, "run_id": record.get("run_id"),
                         "state": "failed" if warning else "logged", "warning": warning, "note": None})
    return done


def upload_run(folder: Path, target: Target) -> dict:
    """One run folder: into the MLflow run its tracking.json names when the server still has it
    and it is this folder's (left incomplete by a failure: only what it lacks is sent), else into
    a new run; a run of another folder (a copied or edited tracking.json) is never written into."""
    files = RunFolder(folder)
    previous = files.read_tracking() or {}
    out = {"folder": folder, "kind": "run", "run_id": None, "state": "logged", "warning": None, "note": None}
    client = client_for(target.address)
    try:
        same, other = False, None
        if previous.get("uri") == target.uri:
            same, other = owned(client, previous.get("run_id"), folder)
        if same and previous.get("logged"):
            return {**out, "run_id": previous["run_id"], "state": "already"}
        if same:
            run_id, experiment = previous["run_id"], previous.get("experiment_id")
        else:
            experiment = experiment_id(client, target.experiment, target.uri)
            run_id = client.create_run(experiment, run_name=folder.name, tags=target.tags).info.run_id
            if other:
                out["note"] = (f"tracking.json named MLflow run {previous['run_id']}, which is {other}'s: "
                               "logged as a new run, that one left as it is")
        out["run_id"] = run_id
        log_folder(client, run_id, folder, target.tags, continued=same)
        close_run(client, run_id, str(files.read_metrics().get("status", "completed")))
    except NnctlError:  # the folder's own fault (a damaged file), said as such
        raise
    except Exception as exc:
        out.update(state="failed", warning=not_logged(f"run {folder.name}", folder, target, exc))
        return out
    files.write_tracking({"uri": target.uri, "experiment_id": experiment, "run_id": run_id, "logged": True,
                          "at": now_ms()})
    return out
